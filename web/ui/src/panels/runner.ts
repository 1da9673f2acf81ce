// The run button and its console, on the `shellrun2` service (channel
// `shellrunner`): Run starts the project's run command (restarting it when
// it runs), Stop ends it, the console shows its output and takes input,
// and the state badge follows what the daemon says.

import type { Channel } from '@replit/crosis';
import { api } from '@replit/protocol';
import { isOpen, request, type Connection } from '../connection';
import { h } from '../dom';
import type { Toasts } from '../toasts';
import { TermView } from './term';

export type RunState = 'unknown' | 'running' | 'stopped';

export class Runner {
  /** The controls in the top bar. */
  readonly controls: HTMLElement;
  readonly console: TermView;
  private channel: Channel | null = null;
  private state: RunState = 'unknown';
  private readonly badge = h(
    'span',
    { class: 'run-state', 'data-state': 'unknown', role: 'status', 'aria-label': 'Run state' },
    '…',
  );
  private readonly runButton: HTMLButtonElement | null;
  private readonly stopButton: HTMLButtonElement | null;
  private busy = false;

  constructor(
    private readonly conn: Connection,
    readOnly: boolean,
    private readonly toasts: Toasts,
    private readonly showConsole: () => void,
  ) {
    this.runButton = readOnly
      ? null
      : h('button', { class: 'run-button mutating', 'aria-label': 'Run', onclick: () => void this.run() }, '▶ Run');
    this.stopButton = readOnly
      ? null
      : h('button', { class: 'stop-button mutating', 'aria-label': 'Stop', onclick: () => void this.stop() }, '■ Stop');
    this.controls = h('div', { class: 'run-controls' }, this.runButton, this.stopButton, this.badge);
    this.console = new TermView({
      readOnly,
      label: 'Console',
      input: (data) => {
        if (isOpen(this.channel)) this.channel.send({ input: data });
      },
      resize: (rows, cols) => {
        if (isOpen(this.channel) && !readOnly) this.channel.send({ resizeTerm: { rows, cols } });
      },
    });
    this.render();
  }

  start(): void {
    this.conn.openChannel(
      { service: 'shellrun2', name: 'shellrunner' },
      {
        open: (ch) => {
          this.channel = ch;
          this.console.reset();
          ch.onCommand((cmd) => {
            if (cmd.body === 'output' && cmd.output) this.console.write(cmd.output);
            if (cmd.body === 'state') this.setState(cmd.state === api.State.Running ? 'running' : 'stopped');
          });
          this.console.reportSize();
          this.render();
        },
        close: () => {
          this.channel = null;
          this.setState('unknown');
        },
      },
    );
  }

  getState(): RunState {
    return this.state;
  }

  private setState(state: RunState): void {
    this.state = state;
    this.render();
  }

  private async run(): Promise<void> {
    this.showConsole();
    await this.act({ runMain: {} });
  }

  private async stop(): Promise<void> {
    await this.act({ clear: {} });
  }

  private async act(cmd: api.ICommand): Promise<void> {
    this.busy = true;
    this.render();
    try {
      await request(this.channel, cmd);
    } catch (e) {
      const text = (e as Error).message;
      this.toasts.show(text, 'error');
      this.console.write(`\r\n\x1b[31m${text}\x1b[0m\r\n`);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  private render(): void {
    const connected = isOpen(this.channel);
    const labels: Record<RunState, string> = { unknown: '…', running: 'Running', stopped: 'Stopped' };
    this.badge.textContent = labels[this.state];
    this.badge.dataset.state = this.state;
    if (this.runButton) {
      this.runButton.disabled = !connected || this.busy;
      this.runButton.textContent = this.state === 'running' ? '↻ Restart' : '▶ Run';
    }
    if (this.stopButton) this.stopButton.disabled = !connected || this.busy || this.state !== 'running';
  }
}
