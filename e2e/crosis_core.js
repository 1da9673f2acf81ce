// The official JavaScript client (@replit/crosis, unmodified) against a real
// conman daemon: connect, open a named and an anonymous channel on the
// diagnostic service, request/reply, close (closeChanRes arrives), then
// survive a daemon restart: crosis reconnects and re-opens its channels.
//
// Environment: CONMAN_HTTP (http://host:port) and CONMAN_TOKEN.
// Talks to the Go test on stdio: prints "RESTART" when the daemon should be
// killed and restarted, waits for a line "GO", prints "PASS" at the end.
'use strict';

const { Client } = require('@replit/crosis');
const WebSocket = require('ws');
const readline = require('readline');

const base = process.env.CONMAN_HTTP;
const token = process.env.CONMAN_TOKEN;
const stdin = readline.createInterface({ input: process.stdin });
const lines = [];
let lineWaiter = null;
stdin.on('line', (l) => {
  if (lineWaiter) {
    const w = lineWaiter;
    lineWaiter = null;
    w(l);
  } else {
    lines.push(l);
  }
});
const nextLine = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => (lineWaiter = r)));

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 60000).unref();

function waitFor(what, cond, ms = 20000) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      const v = cond();
      if (v) return resolve(v);
      if (Date.now() - start > ms) return reject(new Error('timed out waiting for ' + what));
      setTimeout(tick, 10);
    };
    tick();
  });
}

async function main() {
  const client = new Client();
  client.setUnrecoverableErrorHandler((e) => fail('unrecoverable: ' + e.message));
  const closeStatuses = [];
  client.onDebugLog((log) => {
    if (log.type === 'breadcrumb' && log.message === 'requestCloseChannel:closeChanRes') {
      closeStatuses.push(log.data);
    }
  });
  let connects = 0;
  client.open(
    {
      context: {},
      WebSocketClass: WebSocket,
      getNextRetryDelayMs: () => 200,
      fetchConnectionMetadata: async () => ({
        token,
        gurl: base.replace(/^http/, 'ws'),
        conmanURL: base,
        dotdevHostname: '',
        error: null,
      }),
    },
    ({ channel, error }) => {
      if (error) return;
      if (!channel) return;
      connects++;
    },
  );

  // A named channel: re-opened by crosis after every reconnect.
  const named = { opens: 0, channel: null, rosters: 0 };
  client.openChannel({ service: 'conman.debug', name: 'crosis-named' }, ({ channel, error }) => {
    if (error) fail('named open: ' + error.message);
    named.opens++;
    named.channel = channel;
    channel.onCommand((cmd) => {
      if (cmd.roster) named.rosters++;
    });
    return () => {
      named.channel = null;
    };
  });

  // An anonymous channel, closed by the client.
  const anon = { channel: null, closedWith: null };
  const closeAnon = client.openChannel({ service: 'conman.debug' }, ({ channel, error }) => {
    if (error) fail('anonymous open: ' + error.message);
    anon.channel = channel;
    return (reason) => {
      anon.closedWith = reason;
    };
  });

  await waitFor('both channels', () => named.channel && anon.channel);
  if (connects !== 1) fail('expected one connection, got ' + connects);
  await waitFor('roster on the named channel', () => named.rosters >= 1);

  const r1 = await named.channel.request({ debug: { text: 'hello named' } });
  if (r1.error || !r1.ok) fail('named request: ' + JSON.stringify(r1));
  const r2 = await anon.channel.request({ debug: { text: 'hello anonymous' } });
  if (r2.error || !r2.ok) fail('anonymous request: ' + JSON.stringify(r2));

  closeAnon();
  await waitFor('closeChanRes for the anonymous channel', () => closeStatuses.length >= 1);
  await waitFor('anonymous cleanup', () => anon.closedWith !== null);

  // Restart the daemon under crosis's feet.
  console.log('RESTART');
  const go = await nextLine();
  if (go !== 'GO') fail('unexpected line ' + go);
  await waitFor('reconnect', () => connects >= 2, 30000);
  await waitFor('named channel re-opened', () => named.opens >= 2 && named.channel);
  const r3 = await named.channel.request({ debug: { text: 'hello again' } });
  if (r3.error || !r3.ok) fail('request after reconnect: ' + JSON.stringify(r3));

  client.destroy();
  console.log('PASS');
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
