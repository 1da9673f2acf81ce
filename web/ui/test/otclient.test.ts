// The OT client against a small model of the daemon's ot service: ops are
// transformed against the history after their base (the stored op wins
// ties), every packet goes to every attached channel in version order with
// its CRC, nonce and author, requests are answered after the broadcast, and
// history can be fetched. Messages travel in order per channel and
// direction, interleaved at random.

import { describe, expect, it } from 'vitest';
import type { api } from '@replit/protocol';
import { type, type TextOp } from 'ot-text-unicode';
import type { Reply } from '../src/connection';
import { OTClient, type OTChannel } from '../src/ot/client';
import { crc32Text } from '../src/ot/crc32';
import { copy, fromWire, toWire } from '../src/ot/wire';
import { rng } from './rng';

type Msg = Record<string, unknown> & { body: string; ref?: string };
const msg = (body: string, value: unknown, ref?: string): Msg => ({ body, [body]: value, ...(ref ? { ref } : {}) });

class Server {
  text: string;
  history: api.IOTPacket[] = [];
  channels = new Set<Chan>();
  corruptNext = false;

  constructor(text: string) {
    this.text = text;
  }

  handle(ch: Chan, cmd: api.ICommand & { ref?: string }): void {
    const ref = cmd.ref;
    if (cmd.otLinkFile) {
      ch.linked = true;
      ch.toClient.push(
        msg(
          'otLinkFileResponse',
          { version: this.history.length, linkedFile: { path: 'f', content: new TextEncoder().encode(this.text) } },
          ref,
        ),
      );
    } else if (cmd.otFetchRequest) {
      const from = Math.max(1, cmd.otFetchRequest.versionFrom ?? 1);
      const to = Math.min(this.history.length, cmd.otFetchRequest.versionTo ?? 0);
      ch.toClient.push(msg('otFetchResponse', { packets: this.history.slice(from - 1, to) }, ref));
    } else if (cmd.ot) {
      let op = fromWire(cmd.ot.op);
      for (const other of this.history.slice(cmd.ot.spookyVersion ?? 0)) {
        op = type.transform(copy(op), fromWire(other.op), 'right');
      }
      op = type.normalize(op);
      this.text = type.apply(this.text, op);
      const v = this.history.length + 1;
      let crc = crc32Text(this.text);
      if (this.corruptNext) {
        this.corruptNext = false;
        crc ^= 1;
      }
      const pkt: api.IOTPacket = {
        version: v,
        spookyVersion: v,
        op: toWire(op),
        crc32: crc,
        nonce: cmd.ot.nonce,
        userId: ch.userId,
      };
      this.history.push(pkt);
      for (const c of this.channels) if (c.linked) c.toClient.push(msg('ot', pkt));
      ch.toClient.push(msg('ok', {}, ref));
    }
  }

  attach(ch: Chan): void {
    this.channels.add(ch);
    const linked = this.history.length > 0 || ch.linkedAtOpen;
    ch.linked = linked;
    ch.toClient.push(
      msg('otstatus', linked ? { contents: this.text, version: this.history.length, linkedFile: { path: 'f' } } : {}),
    );
  }
}

class Chan implements OTChannel {
  status = 'open';
  linked = false;
  linkedAtOpen = false;
  toServer: (api.ICommand & { ref?: string })[] = [];
  toClient: Msg[] = [];
  private waiting = new Map<string, (r: Reply) => void>();
  private refs = 0;

  constructor(
    readonly server: Server,
    readonly userId: number,
    readonly client: OTClient,
  ) {}

  request(cmd: api.ICommand): Promise<Reply> {
    const ref = `r${++this.refs}`;
    this.toServer.push({ ...cmd, ref });
    return new Promise((resolve) => this.waiting.set(ref, resolve));
  }

  deliverToServer(): boolean {
    const cmd = this.toServer.shift();
    if (!cmd) return false;
    this.server.handle(this, cmd);
    return true;
  }

  deliverToClient(): boolean {
    const m = this.toClient.shift();
    if (!m) return false;
    const cmd = m as unknown as api.Command;
    this.client.handle(cmd);
    if (m.ref && this.waiting.has(m.ref)) {
      this.waiting.get(m.ref)!(cmd);
      this.waiting.delete(m.ref);
    }
    return true;
  }

  close(): void {
    this.status = 'closed';
    this.server.channels.delete(this);
    this.toServer = [];
    this.toClient = [];
    for (const resolve of this.waiting.values()) resolve({ channelClosed: true } as unknown as Reply);
    this.waiting.clear();
  }
}

/** An editor: its text, the client, and its channel. */
class Editor {
  text = '';
  warnings: string[] = [];
  client: OTClient;
  chan: Chan | null = null;

  constructor(
    readonly server: Server,
    readonly userId: number,
  ) {
    this.client = new OTClient('f', userId, {
      reset: (t) => (this.text = t),
      remote: (op) => (this.text = type.apply(this.text, op)),
      warn: (m) => this.warnings.push(m),
      changed: () => {},
    });
  }

  connect(): void {
    this.chan = new Chan(this.server, this.userId, this.client);
    this.client.attach(this.chan);
    this.server.attach(this.chan);
  }

  disconnect(): void {
    this.chan?.close();
    this.chan = null;
    this.client.detach();
  }

  type(random: () => number): void {
    if (!this.client.loaded) return;
    const points = [...this.text];
    const pieces = ['a', 'b', 'xyz', ' ', '\n', 'é', '💃', '🤖👻', '日本', '\u{1D518}', 'ok\n'];
    const pos = Math.floor(random() * (points.length + 1));
    const op: TextOp = [pos];
    if (pos < points.length && random() < 0.35) op.push({ d: 1 + Math.floor(random() * Math.min(4, points.length - pos)) });
    if (op.length === 1 || random() < 0.5) op.push(pieces[Math.floor(random() * pieces.length)]);
    const norm = type.normalize(op);
    this.text = type.apply(this.text, norm);
    this.client.edit(norm);
  }
}

const settle = () => new Promise<void>((r) => setTimeout(r, 0));

async function drain(editors: Editor[]): Promise<void> {
  for (let quiet = 0; quiet < 3;) {
    let moved = false;
    for (const e of editors) {
      while (e.chan?.deliverToServer()) moved = true;
      while (e.chan?.deliverToClient()) moved = true;
    }
    await settle();
    quiet = moved ? 0 : quiet + 1;
  }
}

async function run(seed: number, steps: number, extra?: (step: number, eds: Editor[], server: Server) => void) {
  const random = rng(seed);
  const server = new Server('# notes\n\nstart 💃\n');
  const eds = [new Editor(server, 31), new Editor(server, 32), new Editor(server, 33)];
  eds[0].connect();
  eds[0].chan!.linkedAtOpen = false;
  await drain(eds);
  eds[1].connect();
  eds[2].connect();
  await drain(eds);
  for (let step = 0; step < steps; step++) {
    extra?.(step, eds, server);
    const e = eds[Math.floor(random() * eds.length)];
    const r = random();
    if (r < 0.4) e.type(random);
    else if (r < 0.7) e.chan?.deliverToServer();
    else e.chan?.deliverToClient();
    if (step % 7 === 0) await settle();
  }
  for (const e of eds) if (!e.chan) e.connect();
  await drain(eds);
  return { server, eds };
}

describe('OTClient', () => {
  it('links, then converges while three editors type at once', async () => {
    const { server, eds } = await run(1, 3000);
    for (const e of eds) {
      expect(e.text).toBe(server.text);
      expect(e.client.server).toBe(server.text);
      expect(e.client.version).toBe(server.history.length);
      expect(e.client.unacknowledged).toBe(false);
      expect(e.warnings).toEqual([]);
    }
    expect(server.history.length).toBeGreaterThan(100);
  });

  it('keeps one op in flight', async () => {
    const server = new Server('');
    const e = new Editor(server, 5);
    e.connect();
    await drain([e]);
    const random = rng(3);
    for (let i = 0; i < 10; i++) e.type(random);
    expect(e.chan!.toServer.filter((c) => c.ot).length).toBe(1);
    await drain([e]);
    expect(server.history.length).toBe(2);
    expect(server.text).toBe(e.text);
  });

  it('catches up after reconnects without losing or repeating an edit', async () => {
    const { server, eds } = await run(2, 3000, (step, all) => {
      // Editors drop their connection now and then and keep typing offline.
      if (step % 250 === 100) all[step % 3].disconnect();
      if (step % 250 === 180) for (const e of all) if (!e.chan) e.connect();
    });
    for (const e of eds) {
      expect(e.text).toBe(server.text);
      expect(e.client.version).toBe(server.history.length);
      expect(e.warnings).toEqual([]);
    }
  });

  it('recognises its own op in the fetched history after a reconnect', async () => {
    const server = new Server('abc');
    const a = new Editor(server, 1);
    const b = new Editor(server, 2);
    a.connect();
    b.connect();
    await drain([a, b]);
    a.text = type.apply(a.text, [3, '💃']);
    a.client.edit([3, '💃']);
    // The daemon commits the op, but the connection drops before the echo.
    a.chan!.deliverToServer();
    a.disconnect();
    b.text = type.apply(b.text, ['x']);
    b.client.edit(['x']);
    await drain([a, b]);
    a.connect();
    await drain([a, b]);
    expect(server.text).toBe('xabc💃');
    expect(a.text).toBe(server.text);
    expect(b.text).toBe(server.text);
    expect(server.history.length).toBe(2);
    expect(a.warnings).toEqual([]);
  });

  it('reloads the document when a packet fails its CRC check', async () => {
    const server = new Server('hello');
    const a = new Editor(server, 1);
    const b = new Editor(server, 2);
    a.connect();
    b.connect();
    await drain([a, b]);
    server.corruptNext = true;
    b.text = type.apply(b.text, [5, '!']);
    b.client.edit([5, '!']);
    await drain([a, b]);
    expect(a.warnings.join()).toMatch(/CRC/);
    expect(a.text).toBe('hello!');
    expect(a.client.version).toBe(1);
    expect(a.client.phase).toBe('ready');
  });
});
