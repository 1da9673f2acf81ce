// Terminals on the shared `shell` service, one tab each. A terminal is a
// named channel: everyone who opens the same name shares the shell, and a
// page that opens it (again) gets the scrollback replayed, once, into a
// cleared terminal. The names a browser had open are remembered.

import type { Channel } from '@replit/crosis';
import { isOpen, type Connection } from '../connection';
import { h } from '../dom';
import type { TabbedPanel } from './tabbed';
import { TermView } from './term';

const storageKey = 'conman.terminals';

interface Shell {
  name: string;
  view: TermView;
  channel: Channel | null;
  close(): void;
}

export class Shells {
  private readonly shells = new Map<string, Shell>();

  constructor(
    private readonly conn: Connection,
    private readonly panel: TabbedPanel,
    private readonly readOnly: boolean,
  ) {}

  /** newButton is the "+" that opens another terminal (read-write users only). */
  newButton(): HTMLElement | null {
    if (this.readOnly) return null;
    return h(
      'button',
      { class: 'tool mutating new-terminal', title: 'New terminal', 'aria-label': 'New terminal', onclick: () => this.create() },
      '+',
    );
  }

  start(): void {
    let names: string[] = [];
    try {
      names = JSON.parse(localStorage.getItem(storageKey) ?? '[]');
    } catch {
      // A damaged entry is forgotten.
    }
    if (!Array.isArray(names) || names.length === 0) names = ['shell'];
    names.forEach((n, i) => this.open(String(n), i === 0));
  }

  /** text is what the terminal named name shows (for inspection). */
  text(name: string): string | null {
    return this.shells.get(name)?.view.text() ?? null;
  }

  private create(): void {
    let n = 2;
    while (this.shells.has(`shell-${n}`)) n++;
    this.open(`shell-${n}`, true);
    this.save();
  }

  private open(name: string, show: boolean): void {
    if (this.shells.has(name)) return;
    const shell: Shell = {
      name,
      channel: null,
      close: () => {},
      view: new TermView({
        readOnly: this.readOnly,
        label: `Terminal ${name}`,
        input: (data) => {
          if (isOpen(shell.channel)) shell.channel.send({ input: data });
        },
        resize: (rows, cols) => {
          if (isOpen(shell.channel) && !this.readOnly) shell.channel.send({ resizeTerm: { rows, cols } });
        },
      }),
    };
    this.shells.set(name, shell);
    shell.close = this.conn.openChannel(
      { service: 'shell', name },
      {
        open: (ch) => {
          shell.channel = ch;
          // The daemon replays the scrollback to every session that
          // attaches: start from a clean screen so nothing shows twice.
          shell.view.reset();
          ch.onCommand((cmd) => {
            if (cmd.body === 'output' && cmd.output) shell.view.write(cmd.output);
          });
          shell.view.reportSize();
        },
        close: () => (shell.channel = null),
      },
    );
    const title = name === 'shell' ? 'Shell' : `Shell ${name.replace(/^shell-/, '')}`;
    this.panel.add(
      {
        id: `terminal:${name}`,
        title,
        element: shell.view.element,
        close: name === 'shell' ? undefined : () => this.closeShell(name),
        shown: (byUser) => {
          shell.view.refit();
          if (byUser) shell.view.focus();
        },
      },
      show,
    );
  }

  private closeShell(name: string): void {
    const shell = this.shells.get(name);
    if (!shell) return;
    shell.close();
    shell.view.dispose();
    this.shells.delete(name);
    this.panel.remove(`terminal:${name}`);
    this.save();
  }

  private save(): void {
    localStorage.setItem(storageKey, JSON.stringify([...this.shells.keys()]));
  }
}
