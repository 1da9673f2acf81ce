// Short notices in the corner: the daemon's toasts and the page's own.

import { h } from './dom';

export type ToastKind = 'info' | 'warning' | 'error';

export class Toasts {
  readonly element = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });

  show(text: string, kind: ToastKind = 'info', ms = 6000): void {
    const toast = h('div', { class: `toast toast-${kind}` }, text);
    const close = () => toast.remove();
    toast.append(h('button', { class: 'toast-close', 'aria-label': 'Dismiss', onclick: close }, '×'));
    this.element.append(toast);
    while (this.element.children.length > 5) this.element.firstElementChild?.remove();
    setTimeout(close, ms);
  }
}
