// The workspace's chat room, on the `chat` service: the last messages on
// joining, then everyone's messages as they come, and who is typing.

import type { Channel } from '@replit/crosis';
import type { api } from '@replit/protocol';
import { isOpen, request, type Connection } from '../connection';
import { debounce, fill, h } from '../dom';
import type { Identity } from '../token';

const room = 'general';

export class Chat {
  readonly element: HTMLElement;
  private readonly log = h('ol', { class: 'chat-log', 'aria-label': 'Chat messages', 'aria-live': 'polite' });
  private readonly typingEl = h('div', { class: 'chat-typing muted' });
  private readonly input = h('input', {
    class: 'chat-input',
    placeholder: 'Message',
    'aria-label': 'Chat message',
    maxlength: 2000,
  });
  private channel: Channel | null = null;
  private readonly typing = new Map<string, ReturnType<typeof setTimeout>>();
  private typingSent = false;
  private readonly stopTyping = debounce(() => this.sendTyping(false), 2000);

  constructor(
    private readonly conn: Connection,
    private readonly identity: Identity,
  ) {
    const form = h('form', { class: 'chat-form' }, this.input, h('button', { type: 'submit' }, 'Send'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.send();
    });
    this.input.addEventListener('input', () => {
      if (!this.typingSent && this.input.value) this.sendTyping(true);
      this.stopTyping();
    });
    this.element = h('div', { class: 'chat' }, this.log, this.typingEl, form);
  }

  start(): void {
    this.conn.openChannel(
      { service: 'chat', name: room },
      {
        open: (ch) => {
          this.channel = ch;
          ch.onCommand((cmd) => this.onCommand(cmd));
        },
        close: () => (this.channel = null),
      },
    );
  }

  private onCommand(cmd: api.Command): void {
    switch (cmd.body) {
      case 'chatScrollback':
        fill(this.log, ...(cmd.chatScrollback?.scrollback ?? []).map((m) => this.item(m)));
        this.scroll();
        break;
      case 'chatMessage':
        if (cmd.chatMessage) {
          this.setTyping(cmd.chatMessage.username ?? '', false);
          this.log.append(this.item(cmd.chatMessage));
          this.scroll();
        }
        break;
      case 'chatTyping':
        if (cmd.chatTyping) this.setTyping(cmd.chatTyping.username ?? '', !!cmd.chatTyping.typing);
        break;
    }
  }

  private item(m: api.IChatMessage, mine = false): HTMLElement {
    return h(
      'li',
      { class: `chat-message${mine ? ' mine' : ''}` },
      h('span', { class: 'chat-user' }, m.username ?? ''),
      ' ',
      h('span', { class: 'chat-text' }, m.text ?? ''),
    );
  }

  private scroll(): void {
    this.log.scrollTop = this.log.scrollHeight;
  }

  private async send(): Promise<void> {
    const text = this.input.value.trim();
    if (!text || !isOpen(this.channel)) return;
    this.input.value = '';
    this.sendTyping(false);
    const item = this.item({ username: this.identity.userName, text }, true);
    this.log.append(item);
    this.scroll();
    try {
      await request(this.channel, { chatMessage: { text } });
    } catch (e) {
      item.classList.add('failed');
      item.title = (e as Error).message;
    }
  }

  private sendTyping(typing: boolean): void {
    if (this.typingSent === typing || !isOpen(this.channel)) return;
    this.typingSent = typing;
    this.channel.send({ chatTyping: { typing } });
  }

  private setTyping(user: string, typing: boolean): void {
    clearTimeout(this.typing.get(user));
    this.typing.delete(user);
    if (typing)
      this.typing.set(
        user,
        setTimeout(() => this.setTyping(user, false), 5000),
      );
    const names = [...this.typing.keys()];
    this.typingEl.textContent = names.length ? `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…` : '';
  }
}
