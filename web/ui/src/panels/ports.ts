// The ports listening in the workspace, from channel 0's portOpen and
// portClose. The daemon greets every new connection with the open ports,
// so the list starts over on each one.

import type { api } from '@replit/protocol';
import type { Connection } from '../connection';
import { fill, h } from '../dom';

export class Ports {
  readonly element: HTMLElement;
  private readonly list = h('ul', { class: 'ports', 'aria-label': 'Open ports' });
  private readonly open = new Map<string, api.IPortOpen>();

  constructor(conn: Connection) {
    this.element = h('div', { class: 'ports-panel' }, this.list);
    conn.onConnected(() => {
      this.open.clear();
      this.render();
    });
    conn.onChannel0((cmd) => {
      if (cmd.body === 'portOpen' && cmd.portOpen) {
        this.open.set(key(cmd.portOpen), cmd.portOpen);
        this.render();
      } else if (cmd.body === 'portClose' && cmd.portClose) {
        this.open.delete(key(cmd.portClose));
        this.render();
      }
    });
    this.render();
  }

  private render(): void {
    const ports = [...this.open.values()].sort((a, b) => (a.port ?? 0) - (b.port ?? 0));
    fill(
      this.list,
      ...(ports.length
        ? ports.map((p) =>
            h(
              'li',
              { class: 'port', 'data-port': String(p.port ?? 0) },
              p.forwarded
                ? h(
                    'a',
                    {
                      href: `${location.protocol}//${location.hostname}:${p.port}/`,
                      target: '_blank',
                      rel: 'noopener noreferrer',
                    },
                    `:${p.port}`,
                  )
                : h('span', { class: 'port-number' }, `:${p.port}`),
              h('span', { class: 'muted' }, ` ${p.address ?? ''}${p.forwarded ? '' : ' (inside only)'}`),
            ),
          )
        : [h('li', { class: 'muted' }, 'No ports open.')]),
    );
  }
}

const key = (p: { port?: number | null; address?: string | null }): string => `${p.address ?? ''}:${p.port ?? 0}`;
