// The workspace page: lays the panels out and wires them to one
// connection.

import { colourOf } from './colors';
import { Connection, type Status } from './connection';
import { h } from './dom';
import { EditorTabs } from './editor/tabs';
import { exposeInspector } from './inspect';
import { Chat } from './panels/chat';
import { Packages } from './panels/packages';
import { Ports } from './panels/ports';
import { Presence } from './panels/presence';
import { Runner } from './panels/runner';
import { Shells } from './panels/shells';
import { TabbedPanel } from './panels/tabbed';
import { FileTree } from './panels/tree';
import { Toasts } from './toasts';
import type { Identity } from './token';

const statusText: Record<Status, string> = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  failed: 'Disconnected',
};

export class App {
  private readonly conn: Connection;
  private readonly toasts = new Toasts();

  constructor(private readonly identity: Identity) {
    this.conn = new Connection(identity);
  }

  mount(root: HTMLElement): void {
    const { conn, toasts, identity } = this;
    const readOnly = identity.readOnly;

    const tabs = new EditorTabs({
      conn,
      identity,
      toasts,
      activeChanged: (path) => {
        presence.showing(path);
        void tree.reveal(path);
      },
    });
    const tree = new FileTree({
      conn,
      readOnly,
      toasts,
      openFile: (path) => tabs.open(path),
      moved: (from, to) => tabs.moved(from, to),
      removed: (path) => tabs.removed(path),
    });
    const presence = new Presence({
      conn,
      identity,
      openFile: (path) => tabs.open(path),
      openersChanged: (o) => tree.setOpeners(o),
    });
    const chat = new Chat(conn, identity);
    const ports = new Ports(conn);
    const packages = new Packages(conn, readOnly, toasts);

    const bottomExtra = h('div', { class: 'tabbar-extra' });
    const bottom = new TabbedPanel('Terminals, console and packages', 'bottom-panel', bottomExtra);
    const shells = new Shells(conn, bottom, readOnly);
    const runner = new Runner(conn, readOnly, toasts, () => bottom.show('console'));
    const plus = shells.newButton();
    if (plus) bottomExtra.append(plus);

    const conn0 = h(
      'div',
      { class: 'conn', 'data-state': 'connecting', role: 'status', 'aria-live': 'polite' },
      h('span', { class: 'conn-dot' }),
      h('span', { class: 'conn-text' }, statusText.connecting),
    );
    const failureText = h('span', { class: 'failure-text' });
    const failure = h(
      'div',
      { class: 'failure', role: 'alert', hidden: true },
      h('strong', {}, 'The connection to the workspace failed: '),
      failureText,
      ' ',
      h('button', { onclick: () => location.reload() }, 'Reload'),
    );

    const me = h(
      'div',
      { class: 'me' },
      h(
        'span',
        { class: 'avatar', style: `background:${colourOf(identity.userId)}` },
        identity.userName.slice(0, 1).toUpperCase(),
      ),
      h('span', {}, identity.userName),
      readOnly ? h('span', { class: 'badge read-only-badge' }, 'read-only') : null,
    );

    const splitter = h('div', {
      class: 'splitter',
      role: 'separator',
      'aria-orientation': 'horizontal',
      'aria-label': 'Resize the bottom panel',
    });
    const center = h('main', { class: 'center' }, tabs.element, splitter, bottom.element);
    this.makeSplitter(splitter, center);

    const side = h(
      'aside',
      { class: 'side' },
      h(
        'section',
        { class: 'panel people-panel', 'aria-label': 'People' },
        h('header', { class: 'panel-header' }, h('h2', {}, 'People')),
        presence.element,
      ),
      h(
        'section',
        { class: 'panel ports-section', 'aria-label': 'Ports' },
        h('header', { class: 'panel-header' }, h('h2', {}, 'Ports')),
        ports.element,
      ),
      h(
        'section',
        { class: 'panel chat-panel', 'aria-label': 'Chat' },
        h('header', { class: 'panel-header' }, h('h2', {}, 'Chat')),
        chat.element,
      ),
    );

    const ide = h(
      'div',
      { class: 'ide', 'data-readonly': String(readOnly), 'data-connection': 'connecting' },
      h(
        'header',
        { class: 'topbar' },
        h('div', { class: 'brand' }, 'conman'),
        runner.controls,
        h('div', { class: 'spacer' }),
        conn0,
        me,
      ),
      failure,
      h('aside', { class: 'left' }, tree.element),
      center,
      side,
      toasts.element,
    );
    root.replaceChildren(ide);
    conn.onStatus((status, detail) => {
      conn0.dataset.state = status;
      conn0.querySelector('.conn-text')!.textContent = statusText[status];
      conn0.title = detail;
      ide.dataset.connection = status;
      if (status === 'failed') failure.hidden = false;
      failureText.textContent = detail;
    });

    shells.start();
    bottom.add({ id: 'console', title: 'Console', element: runner.console.element, shown: () => runner.console.refit() });
    bottom.add({ id: 'packages', title: 'Packages', element: packages.element });

    conn.onChannel0((cmd) => {
      if (cmd.body === 'toast' && cmd.toast?.text) toasts.show(cmd.toast.text);
    });
    exposeInspector({ conn, tabs, shells, runner, presence });

    conn.start();
    tree.start();
    presence.start();
    chat.start();
    runner.start();
    packages.start();
    tabs.restore();
  }

  /** makeSplitter lets the bar between the editor and the bottom panel be dragged. */
  private makeSplitter(bar: HTMLElement, center: HTMLElement): void {
    bar.addEventListener('pointerdown', (down) => {
      down.preventDefault();
      bar.setPointerCapture(down.pointerId);
      const move = (ev: PointerEvent) => {
        const rect = center.getBoundingClientRect();
        const height = Math.min(Math.max(rect.bottom - ev.clientY, 80), rect.height - 120);
        center.style.setProperty('--bottom-height', `${height}px`);
      };
      const up = () => {
        bar.removeEventListener('pointermove', move);
        bar.removeEventListener('pointerup', up);
      };
      bar.addEventListener('pointermove', move);
      bar.addEventListener('pointerup', up);
    });
  }
}
