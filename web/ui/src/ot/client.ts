// The editor's OT client, which behaves as the official one does:
//
//   - it keeps one op in flight and composes what is typed meanwhile into
//     a pending op, sent when the daemon has echoed the one in flight;
//   - every packet must carry the next version, and its CRC-32 must match
//     the client's copy of the daemon's document after applying it;
//   - it recognises the echo of its own op (by user id and nonce) and
//     checks that it is, component by component, the op in flight as the
//     client transformed it; other packets are transformed against the op
//     in flight and the pending one (the daemon's stored op wins ties, so
//     ours is the "right" side) and handed to the editor;
//   - after a reconnect it catches up with otFetchRequest from the last
//     version it applied, recognising its own op there if the daemon had
//     committed it, and then sends what is still unacknowledged.
//
// Anything that does not add up (a gap, a bad CRC, a refused op) makes it
// link again and take the daemon's document as it is.
//
// Positions and lengths in ops are code points (see codepoints.ts).

import type { api } from '@replit/protocol';
import { type, type TextOp } from 'ot-text-unicode';
import type { Reply } from '../connection';
import { crc32Text } from './crc32';
import { copy, fromWire, sameOp, toWire } from './wire';

/** The part of a crosis channel the client uses. */
export interface OTChannel {
  readonly status: string;
  request(cmd: api.ICommand): Promise<Reply>;
}

/** The editor's side. */
export interface OTHost {
  /** The document was loaded or reloaded: show text. */
  reset(text: string): void;
  /** Others changed the document: apply op (in the editor's current text). */
  remote(op: TextOp): void;
  /** Something worth telling the person. */
  warn(message: string): void;
  /** The client's state changed (for indicators). */
  changed(): void;
}

/** Where the client is with the current channel. */
export type Phase = 'detached' | 'opening' | 'linking' | 'catching-up' | 'ready';

const decoder = new TextDecoder();
const randomNonce = (): number => (Math.floor(Math.random() * 0xfffffffe) + 1) >>> 0;

export class OTClient {
  /** The last version applied; -1 before the document is first loaded. */
  version = -1;
  /** The daemon's document at version. */
  server = '';
  /** The op sent and not yet echoed, and its nonce. */
  inflight: TextOp | null = null;
  private nonce = 0;
  /** What was typed since the op in flight was sent. */
  pending: TextOp | null = null;
  phase: Phase = 'detached';

  private channel: OTChannel | null = null;
  /** Live packets that arrive while catching up. */
  private buffered: api.IOTPacket[] = [];
  /** Changes with every attach, detach and reload, so that late replies are ignored. */
  private epoch = 0;
  /** Set when the client's copy cannot be trusted: the next document is taken as it is. */
  private mustReload = false;

  constructor(
    readonly path: string,
    private readonly userId: number,
    private readonly host: OTHost,
  ) {}

  get loaded(): boolean {
    return this.version >= 0;
  }

  /** unacknowledged reports whether some local edit has not been echoed yet. */
  get unacknowledged(): boolean {
    return this.inflight !== null || this.pending !== null;
  }

  /** attach starts using a newly opened channel; otstatus follows on it. */
  attach(channel: OTChannel): void {
    this.channel = channel;
    this.epoch++;
    this.buffered = [];
    this.setPhase('opening');
  }

  /** detach forgets the channel (it closed); the document and unsent edits are kept. */
  detach(): void {
    this.channel = null;
    this.epoch++;
    this.buffered = [];
    this.setPhase('detached');
  }

  /** handle takes every message that arrives on the channel. */
  handle(cmd: api.Command): void {
    switch (cmd.body) {
      case 'otstatus':
        if (this.phase === 'opening' && cmd.otstatus) this.onStatus(cmd.otstatus);
        break;
      case 'ot':
        if (cmd.ot) this.onPacket(cmd.ot);
        break;
    }
  }

  /** edit takes an op typed in the editor (code points, normal form). */
  edit(op: TextOp): void {
    if (op.length === 0) return;
    this.pending = this.pending ? type.compose(copy(this.pending), copy(op)) : op;
    this.flush();
    this.host.changed();
  }

  private setPhase(phase: Phase): void {
    this.phase = phase;
    this.host.changed();
  }

  private onStatus(st: api.IOTStatus): void {
    if (st.linkedFile && st.linkedFile.path) {
      this.load(st.version ?? 0, st.contents ?? '', false);
      return;
    }
    this.link(false);
  }

  /** link asks for the document; reload makes the client take it as it is. */
  private link(reload: boolean): void {
    const ch = this.channel;
    if (!ch || ch.status !== 'open') return;
    const epoch = ++this.epoch;
    this.buffered = [];
    this.setPhase('linking');
    ch.request({ otLinkFile: { file: { path: this.path } } }).then((reply) => {
      if (epoch !== this.epoch || reply.channelClosed) return;
      const res = reply.otLinkFileResponse;
      if (!res) {
        this.host.warn(`${this.path}: ${reply.error || 'the daemon did not link the file'}`);
        return;
      }
      this.load(res.version ?? 0, decoder.decode(res.linkedFile?.content ?? new Uint8Array()), reload);
    });
  }

  /** load takes the document at version v: the first time, after a reconnect, or to reload. */
  private load(v: number, text: string, reload: boolean): void {
    if (!this.loaded || reload || this.mustReload || v < this.version) {
      this.mustReload = false;
      if (this.loaded && v < this.version) {
        this.host.warn(`${this.path}: the daemon's history is older than this page's; reloaded its copy`);
      }
      this.version = v;
      this.server = text;
      this.inflight = null;
      this.pending = null;
      this.setPhase('ready');
      this.host.reset(text);
      return;
    }
    this.setPhase('catching-up');
    void this.catchUp(v);
  }

  /** catchUp fetches the versions after the last one applied, up to target, then goes live. */
  private async catchUp(target: number): Promise<void> {
    const epoch = this.epoch;
    while (this.version < target) {
      const ch = this.channel;
      if (!ch || ch.status !== 'open') return;
      const reply = await ch.request({ otFetchRequest: { versionFrom: this.version + 1, versionTo: target } });
      if (epoch !== this.epoch || reply.channelClosed) return;
      const packets = reply.otFetchResponse?.packets ?? [];
      if (packets.length === 0) {
        this.reload(`could not fetch versions ${this.version + 1}–${target}: ${reply.error || 'none came'}`);
        return;
      }
      for (const p of packets) {
        if ((p.version ?? 0) <= this.version) continue;
        if (!this.apply(p)) return;
      }
    }
    const live = this.buffered;
    this.buffered = [];
    this.setPhase('ready');
    for (const p of live) {
      if ((p.version ?? 0) <= this.version) continue;
      if (!this.apply(p)) return;
    }
    if (this.inflight) this.send();
    else this.flush();
  }

  private onPacket(p: api.IOTPacket): void {
    switch (this.phase) {
      case 'catching-up':
        this.buffered.push(p);
        return;
      case 'ready':
        if (this.apply(p)) this.flush();
        return;
      default:
      // Before the document is in hand (or while reloading) packets are
      // part of what the reply brings.
    }
  }

  /** apply applies a packet from the daemon; false means the client is reloading. */
  private apply(p: api.IOTPacket): boolean {
    const version = p.version || p.spookyVersion || 0;
    if (version !== this.version + 1) {
      this.reload(`version ${version} arrived after ${this.version}`);
      return false;
    }
    let op: TextOp;
    let next: string;
    try {
      op = fromWire(p.op);
      next = type.apply(this.server, op);
    } catch (e) {
      this.reload(`version ${version} does not apply: ${(e as Error).message}`);
      return false;
    }
    if (crc32Text(next) !== (p.crc32 ?? 0) >>> 0) {
      this.reload(`version ${version} fails its CRC check`);
      return false;
    }
    this.server = next;
    this.version = version;
    if (this.inflight && this.isEcho(p, op)) {
      if (!sameOp(op, this.inflight)) {
        this.reload(`version ${version} echoes an op other than the one sent`);
        return false;
      }
      this.inflight = null;
    } else {
      if (this.inflight) {
        const mine = this.inflight;
        this.inflight = type.transform(copy(mine), copy(op), 'right');
        op = type.transform(copy(op), copy(mine), 'left');
      }
      if (this.pending) {
        const mine = this.pending;
        this.pending = type.transform(copy(mine), copy(op), 'right');
        op = type.transform(copy(op), copy(mine), 'left');
      }
      if (op.length > 0) this.host.remote(op);
    }
    this.host.changed();
    return true;
  }

  /** isEcho recognises the packet of the op in flight: by author and nonce, or, from a daemon that sends neither, by its components. */
  private isEcho(p: api.IOTPacket, op: TextOp): boolean {
    if (p.nonce || p.userId) return p.nonce === this.nonce && p.userId === this.userId;
    return this.inflight !== null && sameOp(op, this.inflight);
  }

  /** flush sends the pending op when nothing is in flight. */
  private flush(): void {
    if (this.inflight || !this.pending || this.phase !== 'ready') return;
    this.inflight = this.pending;
    this.pending = null;
    this.send();
  }

  /** send sends the op in flight, based on the last version applied. */
  private send(): void {
    const ch = this.channel;
    if (!this.inflight || !ch || ch.status !== 'open' || this.phase !== 'ready') return;
    const epoch = this.epoch;
    this.nonce = randomNonce();
    ch.request({ ot: { spookyVersion: this.version, op: toWire(this.inflight), nonce: this.nonce } }).then((reply) => {
      if (epoch !== this.epoch || reply.channelClosed) return;
      if (reply.body === 'error') this.reload(`the daemon refused an edit: ${reply.error}`);
    });
  }

  /** resync is reload for the editor: its text no longer matches the client's. */
  resync(reason: string): void {
    this.reload(reason);
  }

  /** reload links again and takes the daemon's document; unacknowledged edits are dropped. */
  private reload(reason: string): void {
    const lost = this.unacknowledged ? ' (edits not yet saved were dropped)' : '';
    this.host.warn(`${this.path}: ${reason}; reloading the document${lost}`);
    this.mustReload = true;
    this.link(true);
  }
}
