// Two editors built as the official client builds them, the unmodified
// @replit/crosis transport and the reference OT type ot-text-unicode, type
// into one file at once through a real conman daemon.
//
// Each editor keeps one op in flight and composes what it types meanwhile
// into a pending op; transforms both against every packet from the other
// (the server's stored op wins ties, so ours is the "right" side); checks
// the CRC-32 of every packet against its copy of the server's document;
// and recognises the echo of its own op (by user id and nonce), which must
// equal, component by component, its in-flight op as it transformed it.
//
// Environment: CONMAN_HTTP (http://host:port), CONMAN_TOKEN_A and
// CONMAN_TOKEN_B (tokens of two users), CONMAN_UID_A and CONMAN_UID_B
// (their user ids), CONMAN_FILE (the file, which exists), CONMAN_OPS (ops
// each editor types). Prints "DOC <json text>" and "PASS" at the end.
'use strict';

const { Client } = require('@replit/crosis');
const WebSocket = require('ws');
const zlib = require('zlib');
const { type } = require('ot-text-unicode');

const base = process.env.CONMAN_HTTP;
const file = process.env.CONMAN_FILE;
const opsEach = Number(process.env.CONMAN_OPS || 150);

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 120000).unref();

// A small seeded generator (mulberry32), so runs repeat.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ot-text-unicode mutates delete components in normalize and compose:
// every call gets its own copy.
const copy = (op) => op.map((c) => (typeof c === 'object' ? { ...c } : c));

function fromWire(comps) {
  return (comps || []).map((c) => {
    if (c.skip) return c.skip;
    if (c.delete) return { d: c.delete };
    if (c.insert) return c.insert;
    fail('empty component in ' + JSON.stringify(comps));
    return 0;
  });
}

function toWire(op) {
  return op.map((c) => {
    if (typeof c === 'number') return { skip: c };
    if (typeof c === 'string') return { insert: c };
    return { delete: c.d };
  });
}

const crcOf = (text) => zlib.crc32(Buffer.from(text, 'utf8')) >>> 0;

const pieces = ['a', 'b', 'xyz', ' ', '\n', 'é', 'ñ', '💃', '🤖👻', '日本', 'ok\n'];

class Editor {
  constructor(name, token, userId, seed) {
    this.name = name;
    this.token = token;
    this.userId = userId;
    this.random = rng(seed);
    this.version = -1; // not yet linked
    this.server = '';
    this.local = '';
    this.inflight = null;
    this.nonce = 0;
    this.echoed = false;
    this.pending = null;
    this.sent = 0;
    this.typed = 0;
    this.packets = 0;
    this.waiters = [];
  }

  fail(msg) {
    fail(this.name + ': ' + msg);
  }

  // Connects and links; resolves once the document is in hand.
  start() {
    this.client = new Client();
    this.client.setUnrecoverableErrorHandler((e) => this.fail('unrecoverable: ' + e.message));
    this.client.open(
      {
        context: {},
        WebSocketClass: WebSocket,
        getNextRetryDelayMs: () => 200,
        fetchConnectionMetadata: async () => ({
          token: this.token,
          gurl: base.replace(/^http/, 'ws'),
          conmanURL: base,
          dotdevHostname: '',
          error: null,
        }),
      },
      () => {},
    );
    return new Promise((resolve) => {
      this.ready = resolve;
      this.client.openChannel({ service: 'ot', name: 'ot:' + file }, ({ channel, error }) => {
        if (error) this.fail('open: ' + error.message);
        this.channel = channel;
        channel.onCommand((cmd) => this.onCommand(cmd));
      });
    });
  }

  init(version, contents) {
    this.version = version;
    this.server = contents;
    this.local = contents;
    this.ready();
  }

  onCommand(cmd) {
    if (cmd.otstatus) {
      const st = cmd.otstatus;
      if (st.linkedFile) {
        if (st.linkedFile.path !== file) this.fail('linked to ' + st.linkedFile.path);
        this.init(st.version, st.contents);
        return;
      }
      this.channel.request({ otLinkFile: { file: { path: file } } }).then((res) => {
        const r = res.otLinkFileResponse;
        if (!r) this.fail('otLinkFile answered with ' + JSON.stringify(res));
        this.init(r.version, Buffer.from(r.linkedFile.content || []).toString('utf8'));
      });
      return;
    }
    if (cmd.ot) this.onPacket(cmd.ot);
    if (cmd.error) this.fail('error ' + cmd.error);
  }

  onPacket(p) {
    if (this.version < 0) this.fail('packet before the document');
    if (p.version !== this.version + 1 || p.spookyVersion !== p.version) {
      this.fail(`packet ${p.version}/${p.spookyVersion} after version ${this.version}`);
    }
    let op = fromWire(p.op);
    if (JSON.stringify(type.normalize(copy(op))) !== JSON.stringify(op)) {
      this.fail(`version ${p.version}: ${JSON.stringify(op)} is not normalised`);
    }
    this.server = type.apply(this.server, op);
    if (crcOf(this.server) !== p.crc32 >>> 0) {
      this.fail(`version ${p.version}: crc ${crcOf(this.server)} but the packet says ${p.crc32}`);
    }
    this.version = p.version;
    this.packets++;
    if (this.inflight && p.userId === this.userId && p.nonce === this.nonce) {
      // Our echo: component by component our op as we transformed it.
      if (op.length !== this.inflight.length || op.some((c, i) => JSON.stringify(c) !== JSON.stringify(this.inflight[i]))) {
        this.fail(`echo ${JSON.stringify(op)} differs from the op in flight ${JSON.stringify(this.inflight)}`);
      }
      this.inflight = null;
      this.echoed = true;
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
      this.local = type.apply(this.local, op);
    }
    this.wake();
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  until(cond) {
    return new Promise((resolve) => {
      const check = () => (cond() ? resolve() : this.waiters.push(check));
      check();
    });
  }

  send() {
    if (this.inflight || this.outstanding || !this.pending) return;
    this.inflight = this.pending;
    this.pending = null;
    this.nonce = Math.floor(this.random() * 4294967295) >>> 0;
    this.echoed = false;
    this.outstanding = true;
    this.sent++;
    this.channel
      .request({ ot: { spookyVersion: this.version, op: toWire(this.inflight), nonce: this.nonce } })
      .then((reply) => {
        if (!reply.ok) this.fail('ot answered with ' + JSON.stringify(reply));
        if (!this.echoed) this.fail('ok before the echo');
        this.outstanding = false;
        this.send();
        this.wake();
      });
  }

  typeOne() {
    const points = [...this.local];
    const pos = Math.floor(this.random() * (points.length + 1));
    const op = [pos];
    if (pos < points.length && this.random() < 0.35) {
      op.push({ d: 1 + Math.floor(this.random() * Math.min(5, points.length - pos)) });
    }
    if (op.length === 1 || this.random() < 0.5) {
      op.push(pieces[Math.floor(this.random() * pieces.length)]);
    }
    const norm = type.normalize(op);
    this.local = type.apply(this.local, norm);
    this.pending = this.pending ? type.compose(copy(this.pending), copy(norm)) : norm;
    this.typed++;
    this.send();
  }

  // Types opsEach edits, a few milliseconds apart.
  async type() {
    while (this.typed < opsEach) {
      this.typeOne();
      await new Promise((r) => setTimeout(r, Math.floor(this.random() * 4)));
    }
    await this.until(() => !this.inflight && !this.outstanding && !this.pending);
  }
}

async function main() {
  const a = new Editor('A', process.env.CONMAN_TOKEN_A, Number(process.env.CONMAN_UID_A), 1);
  const b = new Editor('B', process.env.CONMAN_TOKEN_B, Number(process.env.CONMAN_UID_B), 2);
  await a.start();
  await b.start();
  if (a.version !== b.version || a.server !== b.server) fail('the editors start apart');
  const start = a.version;
  await Promise.all([a.type(), b.type()]);
  const total = start + a.sent + b.sent;
  await Promise.all([a.until(() => a.version === total), b.until(() => b.version === total)]);
  if (a.local !== a.server || b.local !== b.server || a.server !== b.server) {
    fail(`diverged: A ${JSON.stringify(a.local)}, B ${JSON.stringify(b.local)}`);
  }
  const flushed = await a.channel.request({ flush: {} });
  if (!flushed.ok) fail('flush answered with ' + JSON.stringify(flushed));
  console.log(`typed ${a.typed}+${b.typed} edits as ${a.sent}+${b.sent} ops; ${total} versions`);
  console.log('DOC ' + JSON.stringify(a.server));
  a.client.destroy();
  b.client.destroy();
  console.log('PASS');
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
