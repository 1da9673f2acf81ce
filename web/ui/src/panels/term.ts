// A terminal view (xterm.js) that fits its panel: used by the shells and
// by the run console. It reports its size whenever the panel changes.

import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { h } from '../dom';

export interface TermOptions {
  readOnly: boolean;
  label: string;
  /** Keys typed (not called for read-only users). */
  input(data: string): void;
  /** The terminal's size changed. */
  resize(rows: number, cols: number): void;
}

export class TermView {
  readonly element: HTMLElement;
  private readonly term: Terminal;
  private readonly fit = new FitAddon();
  private opened = false;
  private readonly observer: ResizeObserver;

  constructor(private readonly opts: TermOptions) {
    this.element = h('div', { class: 'term', 'aria-label': opts.label });
    this.term = new Terminal({
      disableStdin: opts.readOnly,
      cursorBlink: !opts.readOnly,
      convertEol: false,
      scrollback: 5000,
      fontFamily: 'ui-monospace, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace',
      fontSize: 13,
      theme: { background: '#16181d', foreground: '#d7dae0', cursor: '#4aa3ff', selectionBackground: '#264f78' },
    });
    this.term.loadAddon(this.fit);
    if (!opts.readOnly) this.term.onData((data) => opts.input(data));
    this.observer = new ResizeObserver(() => this.refit());
    this.observer.observe(this.element);
  }

  write(data: string): void {
    this.term.write(data);
  }

  /** reset clears everything, before the daemon replays the scrollback. */
  reset(): void {
    this.term.reset();
  }

  focus(): void {
    this.term.focus();
  }

  get rows(): number {
    return this.term.rows;
  }

  get cols(): number {
    return this.term.cols;
  }

  /** text is what the terminal holds, scrollback included, one line per row. */
  text(): string {
    const buf = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) {
      const line = buf.getLine(i);
      if (!line) continue;
      const s = line.translateToString(true);
      if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return lines.join('\n');
  }

  /** refit fits the terminal to its element once it is shown and has a size. */
  refit(): void {
    if (!this.element.isConnected || this.element.clientWidth === 0 || this.element.clientHeight === 0) return;
    if (!this.opened) {
      this.term.open(this.element);
      this.opened = true;
    }
    const { rows, cols } = this.term;
    try {
      this.fit.fit();
    } catch {
      return;
    }
    if (this.term.rows !== rows || this.term.cols !== cols || !this.reported) {
      this.reported = true;
      this.opts.resize(this.term.rows, this.term.cols);
    }
  }

  private reported = false;

  /** reportSize sends the size again (after a reconnect). */
  reportSize(): void {
    if (this.opened) this.opts.resize(this.term.rows, this.term.cols);
  }

  dispose(): void {
    this.observer.disconnect();
    this.term.dispose();
    this.element.remove();
  }
}
