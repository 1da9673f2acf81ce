// The editor area: one tab per open file. The open files are remembered
// for the browser tab (sessionStorage), so a reload opens them again.

import type { Connection } from '../connection';
import { basename, fill, h } from '../dom';
import type { Toasts } from '../toasts';
import type { Identity } from '../token';
import { OpenDocument } from './document';

const storageKey = 'conman.tabs';

export interface TabsOptions {
  conn: Connection;
  identity: Identity;
  toasts: Toasts;
  /** Called with the file shown (null: none). */
  activeChanged(path: string | null): void;
}

export class EditorTabs {
  readonly element: HTMLElement;
  private readonly bar = h('div', { class: 'tabbar', role: 'tablist', 'aria-label': 'Open files' });
  private readonly body = h('div', { class: 'editor-body' });
  private readonly empty = h('div', { class: 'editor-empty' }, 'Open a file from the tree.');
  private readonly docs = new Map<string, OpenDocument>();
  private active: string | null = null;

  constructor(private readonly opts: TabsOptions) {
    this.element = h('section', { class: 'editor-area', 'aria-label': 'Editor' }, this.bar, this.body);
    this.body.append(this.empty);
  }

  /** restore opens the files that were open before a reload. */
  restore(): void {
    let saved: { open?: string[]; active?: string | null } = {};
    try {
      saved = JSON.parse(sessionStorage.getItem(storageKey) ?? '{}');
    } catch {
      // A damaged entry is forgotten.
    }
    for (const path of saved.open ?? []) this.open(path, false);
    if (saved.active && this.docs.has(saved.active)) this.activate(saved.active, false);
  }

  open(path: string, focus = true): void {
    if (!this.docs.has(path)) {
      const doc = new OpenDocument({ ...this.opts, path, changed: () => this.renderBar() });
      this.docs.set(path, doc);
      doc.element.hidden = true;
      this.body.append(doc.element);
    }
    this.activate(path, focus);
  }

  close(path: string): void {
    const doc = this.docs.get(path);
    if (!doc) return;
    doc.destroy();
    this.docs.delete(path);
    if (this.active === path) {
      const next = [...this.docs.keys()].pop() ?? null;
      this.active = null;
      if (next) this.activate(next, false);
      else this.showNone();
    }
    this.save();
    this.renderBar();
  }

  /** moved follows a file that was renamed or moved. */
  moved(from: string, to: string): void {
    for (const path of [...this.docs.keys()]) {
      if (path === from || path.startsWith(from + '/')) {
        const wasActive = this.active === path;
        this.close(path);
        this.open(to + path.slice(from.length), wasActive);
      }
    }
  }

  /** removed closes the tabs of a file or directory that is gone. */
  removed(path: string): void {
    for (const p of [...this.docs.keys()]) {
      if (p === path || p.startsWith(path + '/')) this.close(p);
    }
  }

  activePath(): string | null {
    return this.active;
  }

  documents(): OpenDocument[] {
    return [...this.docs.values()];
  }

  private activate(path: string, focus: boolean): void {
    this.active = path;
    this.empty.remove();
    for (const [p, doc] of this.docs) doc.element.hidden = p !== path;
    const doc = this.docs.get(path);
    if (doc) {
      doc.view.requestMeasure();
      if (focus) doc.focus();
    }
    this.save();
    this.renderBar();
    this.opts.activeChanged(path);
  }

  private showNone(): void {
    this.body.append(this.empty);
    this.opts.activeChanged(null);
  }

  private save(): void {
    sessionStorage.setItem(storageKey, JSON.stringify({ open: [...this.docs.keys()], active: this.active }));
  }

  private renderBar(): void {
    const tabs = [...this.docs.values()].map((doc) => {
      const selected = doc.path === this.active;
      const saving = doc.client.unacknowledged;
      const state = !doc.client.loaded ? 'loading' : saving ? 'saving' : 'saved';
      return h(
        'div',
        {
          class: `tab${selected ? ' tab-active' : ''}`,
          role: 'tab',
          'aria-selected': String(selected),
          title: doc.path,
          'data-path': doc.path,
          'data-state': state,
        },
        h('button', { class: 'tab-label', onclick: () => this.activate(doc.path, true) }, basename(doc.path)),
        h('span', { class: `tab-state tab-state-${state}`, 'aria-label': state }),
        h('button', { class: 'tab-close', 'aria-label': `Close ${doc.path}`, onclick: () => this.close(doc.path) }, '×'),
      );
    });
    fill(this.bar, ...tabs);
  }
}
