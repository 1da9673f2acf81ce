// The file tree: listings through the files service, live updates through
// fsevents (every expanded directory is watched, and watched again after a
// reconnect), and, for read-write users, create, rename, delete and
// drag-to-move.

import type { Channel } from '@replit/crosis';
import { api } from '@replit/protocol';
import { colourOf } from '../colors';
import { isOpen, request, type Connection } from '../connection';
import { basename, debounce, dirname, fill, h, join } from '../dom';
import type { Toasts } from '../toasts';

interface Entry {
  name: string;
  path: string;
  dir: boolean;
}

/** Someone who has a file open. */
export interface Opener {
  userId: number;
  name: string;
}

export interface TreeOptions {
  conn: Connection;
  readOnly: boolean;
  toasts: Toasts;
  openFile(path: string): void;
  moved(from: string, to: string): void;
  removed(path: string): void;
}

/** An inline name field: for a new file or folder in dir, or to rename path. */
type Editing = { kind: 'file' | 'folder'; dir: string } | { kind: 'rename'; path: string } | null;

export class FileTree {
  readonly element: HTMLElement;
  private readonly list = h('ul', { class: 'tree', role: 'tree', 'aria-label': 'Files' });
  private files: Channel | null = null;
  private events: Channel | null = null;
  private readonly listings = new Map<string, Entry[]>();
  private readonly expanded = new Set<string>(['']);
  private readonly stale = new Set<string>();
  private selectedDir = '';
  private selectedPath = '';
  private editing: Editing = null;
  private openers = new Map<string, Opener[]>();
  private readonly refreshSoon = debounce(() => void this.refreshStale(), 40);

  constructor(private readonly opts: TreeOptions) {
    const tools = opts.readOnly
      ? null
      : h(
          'div',
          { class: 'panel-tools' },
          h(
            'button',
            { class: 'tool mutating', title: 'New file', 'aria-label': 'New file', onclick: () => this.startCreate('file') },
            '+ File',
          ),
          h(
            'button',
            {
              class: 'tool mutating',
              title: 'New folder',
              'aria-label': 'New folder',
              onclick: () => this.startCreate('folder'),
            },
            '+ Folder',
          ),
        );
    this.element = h(
      'section',
      { class: 'panel files-panel', 'aria-label': 'Files' },
      h('header', { class: 'panel-header' }, h('h2', {}, 'Files'), tools),
      this.list,
    );
    if (!opts.readOnly) this.makeDropTarget(this.list, '');
  }

  start(): void {
    this.opts.conn.openChannel(
      { service: 'files' },
      {
        open: (ch) => {
          this.files = ch;
          for (const dir of this.expanded) this.stale.add(dir);
          void this.refreshStale();
        },
        close: () => (this.files = null),
      },
    );
    this.opts.conn.openChannel(
      { service: 'fsevents' },
      {
        open: (ch) => {
          this.events = ch;
          ch.onCommand((cmd) => {
            if (cmd.body === 'fileEvent' && cmd.fileEvent) this.onEvent(cmd.fileEvent);
          });
          this.watch([...this.expanded]);
        },
        close: () => (this.events = null),
      },
    );
  }

  /** reveal expands the directories above path and marks it as selected. */
  async reveal(path: string | null): Promise<void> {
    if (!path) return;
    this.selectedPath = path;
    this.selectedDir = dirname(path);
    const parts = path.split('/');
    const closed: string[] = [];
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!this.expanded.has(dir)) closed.push(dir);
    }
    for (const dir of closed) this.expanded.add(dir);
    this.watch(closed);
    await Promise.all(closed.map((dir) => this.load(dir)));
    this.render();
  }

  /** setOpeners marks who has which file open. */
  setOpeners(openers: Map<string, Opener[]>): void {
    this.openers = openers;
    this.render();
  }

  private watch(dirs: string[]): void {
    if (!isOpen(this.events) || dirs.length === 0) return;
    this.events.send({ subscribeFile: { files: dirs.map((d) => ({ path: d || '.' })) } });
  }

  private onEvent(ev: api.IFileEvent): void {
    const path = ev.file?.path ?? '';
    this.touch(dirname(path));
    const Op = api.FileEvent.Op;
    if (ev.op === Op.Move && ev.dest?.path) {
      this.touch(dirname(ev.dest.path));
      this.forget(path);
      this.opts.moved(path, ev.dest.path);
    } else if (ev.op === Op.Remove) {
      this.forget(path);
      this.opts.removed(path);
    }
  }

  /** touch marks a directory's listing as out of date. */
  private touch(dir: string): void {
    if (!this.listings.has(dir)) return;
    this.stale.add(dir);
    this.refreshSoon();
  }

  /** forget drops what is known below a path that is gone. */
  private forget(path: string): void {
    for (const dir of [...this.listings.keys()]) {
      if (dir === path || dir.startsWith(path + '/')) this.listings.delete(dir);
    }
    for (const dir of [...this.expanded]) {
      if (dir === path || dir.startsWith(path + '/')) this.expanded.delete(dir);
    }
  }

  private async refreshStale(): Promise<void> {
    const dirs = [...this.stale];
    this.stale.clear();
    await Promise.all(dirs.map((d) => this.load(d)));
    this.render();
  }

  private async load(dir: string): Promise<void> {
    try {
      const reply = await request(this.files, { readdir: { path: dir || '.' } });
      const entries = (reply.files?.files ?? []).map((f) => ({
        name: f.path ?? '',
        path: join(dir, f.path ?? ''),
        dir: f.type === api.File.Type.DIRECTORY,
      }));
      entries.sort((a, b) => Number(b.dir) - Number(a.dir) || a.name.localeCompare(b.name));
      this.listings.set(dir, entries);
    } catch (e) {
      if (dir !== '' && /no such file|not a directory/.test((e as Error).message)) {
        this.forget(dir);
      } else if (isOpen(this.files)) {
        this.opts.toasts.show(`Could not list ${dir || 'the workspace'}: ${(e as Error).message}`, 'error');
      }
    }
  }

  private async toggle(dir: string): Promise<void> {
    this.selectedDir = dir;
    if (this.expanded.has(dir)) {
      this.expanded.delete(dir);
      this.render();
      return;
    }
    this.expanded.add(dir);
    this.watch([dir]);
    await this.load(dir);
    this.render();
  }

  private startCreate(kind: 'file' | 'folder'): void {
    const dir = this.selectedDir;
    if (dir && !this.expanded.has(dir)) void this.toggle(dir);
    this.editing = { kind, dir };
    this.render();
  }

  private async finishEdit(value: string): Promise<void> {
    const editing = this.editing;
    this.editing = null;
    const name = value.trim();
    if (!editing || !name) {
      this.render();
      return;
    }
    try {
      if (editing.kind === 'rename') {
        const to = join(dirname(editing.path), name);
        if (to !== editing.path) await this.move(editing.path, to);
      } else if (editing.kind === 'file') {
        const path = join(editing.dir, name);
        await request(this.files, { write: { path, content: new Uint8Array() } });
        this.opts.openFile(path);
      } else {
        await request(this.files, { mkdir: { path: join(editing.dir, name) } });
      }
    } catch (e) {
      this.opts.toasts.show((e as Error).message, 'error');
    }
    this.touch(editing.kind === 'rename' ? dirname(editing.path) : editing.dir);
    this.render();
  }

  private async move(from: string, to: string): Promise<void> {
    await request(this.files, { move: { oldPath: from, newPath: to } });
  }

  private async remove(entry: Entry): Promise<void> {
    if (!confirm(`Delete ${entry.path}${entry.dir ? ' and everything in it' : ''}?`)) return;
    try {
      await request(this.files, { remove: { path: entry.path } });
    } catch (e) {
      this.opts.toasts.show((e as Error).message, 'error');
    }
  }

  private makeDropTarget(el: HTMLElement, dir: string): void {
    el.addEventListener('dragover', (ev) => {
      if (!ev.dataTransfer?.types.includes('application/x-conman-path')) return;
      ev.preventDefault();
      ev.stopPropagation();
      el.classList.add('drop-target');
    });
    el.addEventListener('dragleave', () => el.classList.remove('drop-target'));
    el.addEventListener('drop', (ev) => {
      el.classList.remove('drop-target');
      const from = ev.dataTransfer?.getData('application/x-conman-path');
      if (!from) return;
      ev.preventDefault();
      ev.stopPropagation();
      const to = join(dir, basename(from));
      if (to === from || dir === from || dir.startsWith(from + '/')) return;
      this.move(from, to).catch((e: Error) => this.opts.toasts.show(e.message, 'error'));
    });
  }

  private nameField(initial: string, label: string): HTMLInputElement {
    const input = h('input', { class: 'tree-input', value: initial, 'aria-label': label, spellcheck: 'false' });
    let done = false;
    const finish = (save: boolean) => {
      if (done) return;
      done = true;
      if (save) void this.finishEdit(input.value);
      else {
        this.editing = null;
        this.render();
      }
    };
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') finish(true);
      if (ev.key === 'Escape') finish(false);
    });
    input.addEventListener('blur', () => finish(input.value.trim() !== '' && input.value !== initial));
    queueMicrotask(() => {
      input.focus();
      const dot = initial.lastIndexOf('.');
      input.setSelectionRange(0, dot > 0 ? dot : initial.length);
    });
    return input;
  }

  private render(): void {
    const active = document.activeElement;
    if (
      this.editing &&
      active instanceof HTMLInputElement &&
      active.classList.contains('tree-input') &&
      this.list.contains(active)
    ) {
      // Do not take the name field away from under the person typing.
      return;
    }
    fill(this.list, ...this.renderDir('', 0));
  }

  private renderDir(dir: string, depth: number): HTMLElement[] {
    const items: HTMLElement[] = [];
    const editing = this.editing;
    if (editing && editing.kind !== 'rename' && editing.dir === dir) {
      items.push(
        h(
          'li',
          { class: 'tree-item' },
          h(
            'div',
            { class: 'tree-row', style: `padding-left:${depth * 14 + 8}px` },
            h('span', { class: 'tree-icon' }, editing.kind === 'folder' ? '▸' : '·'),
            this.nameField('', editing.kind === 'folder' ? 'New folder name' : 'New file name'),
          ),
        ),
      );
    }
    for (const entry of this.listings.get(dir) ?? []) items.push(this.renderEntry(entry, depth));
    return items;
  }

  private renderEntry(entry: Entry, depth: number): HTMLElement {
    const open = entry.dir && this.expanded.has(entry.path);
    const renaming = this.editing?.kind === 'rename' && this.editing.path === entry.path;
    const openers = this.openers.get(entry.path) ?? [];
    const row = h(
      'div',
      {
        class: `tree-row${this.selectedPath === entry.path ? ' selected' : ''}`,
        style: `padding-left:${depth * 14 + 8}px`,
        role: 'treeitem',
        'aria-expanded': entry.dir ? String(open) : null,
        draggable: this.opts.readOnly ? null : 'true',
        title: entry.path,
      },
      h('span', { class: 'tree-icon' }, entry.dir ? (open ? '▾' : '▸') : '·'),
      renaming ? this.nameField(entry.name, `New name for ${entry.path}`) : h('span', { class: 'tree-name' }, entry.name),
      h(
        'span',
        { class: 'tree-openers' },
        ...openers.map((o) =>
          h('span', { class: 'opener-dot', title: `${o.name} has this open`, style: `background:${colourOf(o.userId)}` }),
        ),
      ),
      this.opts.readOnly || renaming
        ? null
        : h(
            'span',
            { class: 'tree-actions' },
            h(
              'button',
              {
                class: 'tool mutating',
                title: 'Rename',
                'aria-label': `Rename ${entry.path}`,
                onclick: (ev: Event) => {
                  ev.stopPropagation();
                  this.editing = { kind: 'rename', path: entry.path };
                  this.render();
                },
              },
              '✎',
            ),
            h(
              'button',
              {
                class: 'tool mutating',
                title: 'Delete',
                'aria-label': `Delete ${entry.path}`,
                onclick: (ev: Event) => {
                  ev.stopPropagation();
                  void this.remove(entry);
                },
              },
              '✕',
            ),
          ),
    );
    row.addEventListener('click', () => {
      this.selectedPath = entry.path;
      if (entry.dir) void this.toggle(entry.path);
      else {
        this.selectedDir = dirname(entry.path);
        this.opts.openFile(entry.path);
      }
    });
    if (!this.opts.readOnly) {
      row.addEventListener('dragstart', (ev) => {
        ev.dataTransfer?.setData('application/x-conman-path', entry.path);
        if (ev.dataTransfer) ev.dataTransfer.effectAllowed = 'move';
      });
      if (entry.dir) this.makeDropTarget(row, entry.path);
    }
    const item = h('li', { class: 'tree-item', 'data-path': entry.path, 'data-kind': entry.dir ? 'dir' : 'file' }, row);
    if (open) item.append(h('ul', { role: 'group' }, ...this.renderDir(entry.path, depth + 1)));
    return item;
  }
}
