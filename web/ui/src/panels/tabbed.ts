// A panel with tabs: the bottom panel (terminals, console, packages) and
// the side panel (people, chat, ports).

import { fill, h } from '../dom';

export interface PanelTab {
  id: string;
  title: string;
  element: HTMLElement;
  /** Set for tabs that can be closed. */
  close?(): void;
  /** Called when the tab is shown; byUser when the person picked it. */
  shown?(byUser: boolean): void;
}

export class TabbedPanel {
  readonly element: HTMLElement;
  private readonly bar = h('div', { class: 'tabbar', role: 'tablist' });
  private readonly tabsEl = h('div', { class: 'tabbar-tabs' });
  private readonly body = h('div', { class: 'panel-body' });
  private readonly tabs: PanelTab[] = [];
  private active = '';

  constructor(label: string, className: string, extra: HTMLElement | null = null) {
    this.bar.append(this.tabsEl);
    if (extra) this.bar.append(extra);
    this.element = h('section', { class: `tabbed ${className}`, 'aria-label': label }, this.bar, this.body);
  }

  add(tab: PanelTab, show = false): void {
    this.tabs.push(tab);
    tab.element.hidden = true;
    tab.element.classList.add('tab-pane');
    tab.element.setAttribute('data-tab', tab.id);
    this.body.append(tab.element);
    if (show || !this.active) this.show(tab.id);
    else this.render();
  }

  remove(id: string): void {
    const i = this.tabs.findIndex((t) => t.id === id);
    if (i < 0) return;
    const [tab] = this.tabs.splice(i, 1);
    tab.element.remove();
    if (this.active === id) {
      this.active = '';
      const next = this.tabs[Math.max(0, i - 1)];
      if (next) this.show(next.id);
    }
    this.render();
  }

  show(id: string, byUser = false): void {
    const tab = this.tabs.find((t) => t.id === id);
    if (!tab) return;
    this.active = id;
    for (const t of this.tabs) t.element.hidden = t !== tab;
    this.render();
    tab.shown?.(byUser);
  }

  has(id: string): boolean {
    return this.tabs.some((t) => t.id === id);
  }

  private render(): void {
    fill(
      this.tabsEl,
      ...this.tabs.map((t) =>
        h(
          'div',
          {
            class: `tab${t.id === this.active ? ' tab-active' : ''}`,
            role: 'tab',
            'aria-selected': String(t.id === this.active),
            'data-tab': t.id,
          },
          h('button', { class: 'tab-label', onclick: () => this.show(t.id, true) }, t.title),
          t.close ? h('button', { class: 'tab-close', 'aria-label': `Close ${t.title}`, onclick: () => t.close?.() }, '×') : null,
        ),
      ),
    );
  }
}
