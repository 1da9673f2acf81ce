// The page's one connection to the daemon: the official client
// (@replit/crosis) on a websocket to the page's own host. Every panel opens
// its channels through it; crosis re-opens them after a reconnect, and the
// panels re-synchronise in their open handlers.

import { ChannelRequestPriority, Client, ConnectionState, type Channel } from '@replit/crosis';
import type { api } from '@replit/protocol';
import type { Identity } from './token';

/** What the connection indicator shows. */
export type Status = 'connecting' | 'connected' | 'reconnecting' | 'failed';

/** A panel's side of one channel. */
export interface ChannelHandlers {
  /** Called every time the channel is (re)opened, with the live channel. */
  open(channel: Channel): void;
  /** Called when it closes; crosis re-opens it when willReconnect is true. */
  close?(willReconnect: boolean): void;
}

/** The order in which channels are opened after a (re)connection. */
export type Priority = 'high' | 'normal' | 'low';

/** A reply, or the note that the channel closed before one came. */
export type Reply = api.Command & { channelClosed?: unknown };

/** The websocket close code of a refused token, and how many in a row end the retries. */
const tokenRefused = 1008;
const maxRefusals = 3;

// Reconnect quickly on loopback, backing off to a few seconds.
const retryDelay = (tries: number): number => Math.min(200 * 2 ** tries, 3000) + Math.floor(Math.random() * 100);

export class Connection {
  private readonly client = new Client<null>();
  private status: Status = 'connecting';
  private failure = '';
  private everConnected = false;
  /** Closes with code 1008 (token refused) since the last connection. */
  private refusals = 0;
  private readonly statusListeners = new Set<(status: Status, detail: string) => void>();
  private readonly chan0Listeners = new Set<(cmd: api.Command) => void>();
  private readonly chan0OpenListeners = new Set<() => void>();

  constructor(private readonly identity: Identity) {}

  /** start connects, and keeps reconnecting until the page goes away. */
  start(): void {
    this.client.setUnrecoverableErrorHandler((e) => this.setStatus('failed', e.message));
    this.client.onConnectionStateChange((state) => {
      if (this.status === 'failed') return;
      if (state === ConnectionState.CONNECTED) {
        this.refusals = 0;
        if (!this.everConnected) performance.mark('conman:connected');
        this.everConnected = true;
        this.setStatus('connected');
      } else {
        this.setStatus(this.everConnected ? 'reconnecting' : 'connecting');
      }
    });
    const { token, expires } = this.identity;
    // The daemon closes with 1008 when it refuses the token. crosis then
    // asks for a new token, but the page has only the one it was opened
    // with: after a few refusals in a row, stop and say so. crosis does not
    // report close codes, so the page's websockets count them.
    const onRefused = (): void => {
      this.refusals++;
    };
    class CountingWebSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener('close', (e) => {
          if (e.code === tokenRefused) onRefused();
        });
      }
    }
    this.client.open(
      {
        context: null,
        WebSocketClass: CountingWebSocket,
        getNextRetryDelayMs: retryDelay,
        fetchConnectionMetadata: async () => {
          performance.mark('conman:connecting');
          if (expires !== null && expires < Date.now()) {
            return { error: new Error('the access token has expired: open the address the daemon prints again') };
          }
          if (this.refusals >= maxRefusals) {
            return { error: new Error('the daemon refused the access token: open the address the daemon prints again') };
          }
          const secure = location.protocol === 'https:';
          return {
            token,
            gurl: `${secure ? 'wss' : 'ws'}://${location.host}`,
            conmanURL: `${location.protocol}//${location.host}`,
            dotdevHostname: '',
            error: null,
          };
        },
      },
      ({ channel }) => {
        channel.onCommand((cmd) => this.chan0Listeners.forEach((fn) => fn(cmd)));
        this.chan0OpenListeners.forEach((fn) => fn());
      },
    );
  }

  /**
   * openChannel opens a channel now and after every reconnect; the result
   * closes it. After a (re)connection channels are asked for in order of
   * priority: the open documents first, the packages last.
   */
  openChannel(options: { service: string; name?: string; priority?: Priority }, handlers: ChannelHandlers): () => void {
    const priority = {
      high: ChannelRequestPriority.High,
      normal: ChannelRequestPriority.Medium,
      low: ChannelRequestPriority.Low,
    }[options.priority ?? 'normal'];
    return this.client.openChannel({ service: options.service, name: options.name, priority }, ({ channel }) => {
      handlers.open(channel);
      return (reason) => handlers.close?.(reason.willReconnect);
    });
  }

  /** onChannel0 receives every message on channel 0 (toasts, ports). */
  onChannel0(fn: (cmd: api.Command) => void): void {
    this.chan0Listeners.add(fn);
  }

  /** onConnected runs on every (re)connection, before channel 0's greeting is read. */
  onConnected(fn: () => void): void {
    this.chan0OpenListeners.add(fn);
  }

  onStatus(fn: (status: Status, detail: string) => void): void {
    this.statusListeners.add(fn);
    fn(this.status, this.failure);
  }

  getStatus(): Status {
    return this.status;
  }

  private setStatus(status: Status, detail = ''): void {
    if (status === this.status && detail === this.failure) return;
    this.status = status;
    this.failure = detail;
    this.statusListeners.forEach((fn) => fn(status, detail));
  }
}

/** isOpen reports whether ch may be sent on (crosis treats sending on a closed channel as fatal). */
export function isOpen(ch: Channel | null): ch is Channel {
  return ch !== null && ch.status === 'open';
}

/**
 * request sends cmd on ch and resolves with the reply; an `error` reply,
 * a closed channel or a channel that is not open reject.
 */
export async function request(ch: Channel | null, cmd: api.ICommand): Promise<api.Command> {
  if (!isOpen(ch)) throw new Error('not connected');
  const reply: Reply = await ch.request(cmd);
  if (reply.channelClosed) throw new Error('the connection closed before the daemon answered');
  if (reply.body === 'error') throw new Error(reply.error || 'error');
  return reply;
}
