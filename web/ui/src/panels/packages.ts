// The packages panel, on `packager3`: search the registry, read about a
// package, add and remove packages (read-write users) with the package
// manager's output streamed as it runs, and the project's dependency list.

import type { Channel } from '@replit/crosis';
import { api } from '@replit/protocol';
import { isOpen, request, type Connection } from '../connection';
import { fill, h } from '../dom';
import type { Toasts } from '../toasts';

export class Packages {
  readonly element: HTMLElement;
  private channel: Channel | null = null;
  private readonly query = h('input', {
    class: 'pkg-query',
    type: 'search',
    placeholder: 'Search packages',
    'aria-label': 'Search packages',
  });
  private readonly results = h('ul', { class: 'pkg-results', 'aria-label': 'Search results' });
  private readonly info = h('div', { class: 'pkg-info' });
  private readonly installed = h('ul', { class: 'pkg-installed', 'aria-label': 'Installed packages' });
  private readonly log = h('pre', { class: 'pkg-log', 'aria-label': 'Package manager output' });
  private readonly badge = h('span', { class: 'pkg-state', 'data-state': 'idle' });
  private busy = false;

  constructor(
    private readonly conn: Connection,
    private readonly readOnly: boolean,
    private readonly toasts: Toasts,
  ) {
    const form = h('form', { class: 'pkg-search', role: 'search' }, this.query, h('button', { type: 'submit' }, 'Search'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.search();
    });
    this.element = h(
      'div',
      { class: 'packages' },
      h('div', { class: 'pkg-col' }, form, this.results, this.info),
      h('div', { class: 'pkg-col' }, h('h3', {}, 'Dependencies ', this.badge), this.installed, this.log),
    );
  }

  start(): void {
    this.conn.openChannel(
      { service: 'packager3', priority: 'low' },
      {
        open: (ch) => {
          this.channel = ch;
          ch.onCommand((cmd) => {
            if (cmd.body === 'output' && cmd.output) this.appendLog(cmd.output);
            if (cmd.body === 'state') this.setRunning(cmd.state === api.State.Running);
          });
          void this.list();
        },
        close: () => (this.channel = null),
      },
    );
  }

  private appendLog(text: string): void {
    this.log.textContent += text.endsWith('\n') ? text : text + '\n';
    this.log.scrollTop = this.log.scrollHeight;
  }

  private setRunning(running: boolean): void {
    this.badge.dataset.state = running ? 'running' : 'idle';
    this.badge.textContent = running ? 'working…' : '';
  }

  private async search(): Promise<void> {
    const q = this.query.value.trim();
    if (!q) return;
    fill(this.results, h('li', { class: 'muted' }, 'Searching…'));
    try {
      const reply = await request(this.channel, { packageSearch: { query: q } });
      const found = reply.packageSearchResp?.results ?? [];
      fill(
        this.results,
        ...(found.length ? found.map((p) => this.resultItem(p)) : [h('li', { class: 'muted' }, 'Nothing found.')]),
      );
    } catch (e) {
      fill(this.results, h('li', { class: 'error' }, (e as Error).message));
    }
  }

  private resultItem(p: api.IPackage): HTMLElement {
    return h(
      'li',
      { class: 'pkg-item', 'data-name': p.name ?? '' },
      h('button', { class: 'pkg-name link', onclick: () => void this.showInfo(p.name ?? '') }, p.name ?? ''),
      p.version ? h('span', { class: 'pkg-version' }, p.version) : null,
      this.readOnly
        ? null
        : h(
            'button',
            { class: 'tool mutating', 'aria-label': `Add ${p.name}`, onclick: () => void this.change('add', p.name ?? '') },
            'Add',
          ),
      p.description ? h('div', { class: 'pkg-desc' }, p.description) : null,
    );
  }

  private async showInfo(name: string): Promise<void> {
    fill(this.info, h('p', { class: 'muted' }, `Loading ${name}…`));
    try {
      const reply = await request(this.channel, { packageInfo: { pkg: { name } } });
      const p = reply.packageInfoResp?.pkg;
      if (!p) throw new Error(`nothing is known about ${name}`);
      const link = (label: string, url?: string | null) =>
        url ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, label) : null;
      fill(
        this.info,
        h('h3', {}, `${p.name} `, h('span', { class: 'pkg-version' }, p.version ?? '')),
        p.description ? h('p', {}, p.description) : null,
        h(
          'p',
          { class: 'pkg-links' },
          link('home page', p.homepageURL),
          ' ',
          link('docs', p.documentationURL),
          ' ',
          link('source', p.sourceCodeURL),
        ),
        p.license ? h('p', { class: 'muted' }, `License: ${p.license}`) : null,
        p.author ? h('p', { class: 'muted' }, `Author: ${p.author}`) : null,
        (p.dependencies ?? []).length
          ? h('p', { class: 'muted' }, `Depends on: ${(p.dependencies ?? []).map((d) => d.name).join(', ')}`)
          : null,
      );
    } catch (e) {
      fill(this.info, h('p', { class: 'error' }, (e as Error).message));
    }
  }

  private async list(): Promise<void> {
    try {
      const reply = await request(this.channel, { packageListSpecfile: {} });
      const pkgs = reply.packageListSpecfileResp?.pkgs ?? [];
      fill(
        this.installed,
        ...(pkgs.length
          ? pkgs.map((p) =>
              h(
                'li',
                { class: 'pkg-item', 'data-name': p.name ?? '' },
                h('span', { class: 'pkg-name' }, p.name ?? ''),
                p.spec ? h('span', { class: 'pkg-version' }, p.spec) : null,
                this.readOnly
                  ? null
                  : h(
                      'button',
                      {
                        class: 'tool mutating',
                        'aria-label': `Remove ${p.name}`,
                        onclick: () => void this.change('remove', p.name ?? ''),
                      },
                      'Remove',
                    ),
              ),
            )
          : [h('li', { class: 'muted' }, 'No dependencies listed.')]),
      );
    } catch (e) {
      fill(this.installed, h('li', { class: 'muted' }, (e as Error).message));
    }
  }

  private async change(action: 'add' | 'remove', name: string): Promise<void> {
    if (this.busy || !isOpen(this.channel)) return;
    this.busy = true;
    this.log.textContent = '';
    try {
      const pkgs = [{ name }];
      await request(this.channel, action === 'add' ? { packageAdd: { pkgs } } : { packageRemove: { pkgs } });
      this.toasts.show(`${action === 'add' ? 'Added' : 'Removed'} ${name}`);
    } catch (e) {
      this.appendLog(`error: ${(e as Error).message}`);
      this.toasts.show(`Could not ${action} ${name}: ${(e as Error).message}`, 'error');
    } finally {
      this.busy = false;
      void this.list();
    }
  }
}
