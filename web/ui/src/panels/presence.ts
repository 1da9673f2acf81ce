// Who is here, on the presence service (channel `presencer`): one entry
// per session, with the file it has open. This page tells the others which
// file it shows.

import type { Channel } from '@replit/crosis';
import type { api } from '@replit/protocol';
import { colourOf } from '../colors';
import { isOpen, type Connection } from '../connection';
import { fill, h } from '../dom';
import type { Identity } from '../token';
import type { Opener } from './tree';

interface Member {
  user: api.IUser;
  file: string;
}

export interface PresenceOptions {
  conn: Connection;
  identity: Identity;
  openFile(path: string): void;
  /** Called with who has which file open (others only). */
  openersChanged(openers: Map<string, Opener[]>): void;
}

export class Presence {
  readonly element: HTMLElement;
  private readonly list = h('ul', { class: 'people', 'aria-label': 'People here' });
  private channel: Channel | null = null;
  private readonly members = new Map<number, Member>();
  private current = '';

  constructor(private readonly opts: PresenceOptions) {
    this.element = h('div', { class: 'presence' }, this.list);
    this.render();
  }

  start(): void {
    this.opts.conn.openChannel(
      { service: 'presence', name: 'presencer' },
      {
        open: (ch) => {
          this.channel = ch;
          this.members.clear();
          ch.onCommand((cmd) => this.onCommand(cmd));
          if (this.current) ch.send({ openFile: { file: this.current } });
        },
        close: () => {
          this.channel = null;
          this.members.clear();
          this.render();
        },
      },
    );
  }

  /** showing tells the others which file this page shows ("" for none). */
  showing(path: string | null): void {
    this.current = path ?? '';
    if (isOpen(this.channel)) this.channel.send({ openFile: { file: this.current } });
  }

  /** count is how many sessions are here. */
  count(): number {
    return this.members.size;
  }

  private onCommand(cmd: api.Command): void {
    switch (cmd.body) {
      case 'roster':
        this.members.clear();
        for (const u of cmd.roster?.user ?? []) this.members.set(u.session ?? 0, { user: u, file: '' });
        break;
      case 'join':
        if (cmd.join) this.members.set(cmd.join.session ?? 0, { user: cmd.join, file: '' });
        break;
      case 'part':
        if (cmd.part) this.members.delete(cmd.part.session ?? 0);
        break;
      case 'fileOpened': {
        const m = this.members.get(cmd.fileOpened?.session ?? 0);
        if (m) m.file = cmd.fileOpened?.file ?? '';
        break;
      }
      default:
        return;
    }
    this.render();
  }

  private render(): void {
    const me = this.opts.identity.userId;
    const people = [...this.members.values()];
    fill(
      this.list,
      ...(people.length
        ? people.map((m) => {
            const id = m.user.id ?? 0;
            const ro = (m.user.roles ?? []).includes('ro');
            return h(
              'li',
              { class: 'person', 'data-user': m.user.name ?? '', 'data-session': String(m.user.session ?? 0) },
              h('span', { class: 'avatar', style: `background:${colourOf(id)}` }, (m.user.name || '?').slice(0, 1).toUpperCase()),
              h(
                'span',
                { class: 'person-name' },
                m.user.name || 'someone',
                id === me ? h('span', { class: 'muted' }, ' (you)') : null,
                ro ? h('span', { class: 'badge' }, 'read-only') : null,
              ),
              m.file
                ? h(
                    'button',
                    { class: 'person-file link', title: `Open ${m.file}`, onclick: () => this.opts.openFile(m.file) },
                    m.file,
                  )
                : null,
            );
          })
        : [h('li', { class: 'muted' }, 'Nobody is connected.')]),
    );
    const openers = new Map<string, Opener[]>();
    for (const m of people) {
      if (!m.file || m.user.id === me) continue;
      const list = openers.get(m.file) ?? [];
      list.push({ userId: m.user.id ?? 0, name: m.user.name ?? '' });
      openers.set(m.file, list);
    }
    this.opts.openersChanged(openers);
  }
}
