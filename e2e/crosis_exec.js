// The official JavaScript client (@replit/crosis, unmodified) against a real
// conman daemon's process services: an exec channel runs `echo hello`
// (state Running, output, state Stopped, then the ok reply), a failing
// command gets its error reply, and a shared shell channel takes the
// smallest size of two sessions and echoes what is typed.
//
// Environment: CONMAN_HTTP (http://host:port) and CONMAN_TOKEN.
// Prints "PASS" at the end; anything else on stdout is logged by the test.
'use strict';

const { Client } = require('@replit/crosis');
const WebSocket = require('ws');

const base = process.env.CONMAN_HTTP;
const token = process.env.CONMAN_TOKEN;

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

function connect() {
  const client = new Client();
  client.setUnrecoverableErrorHandler((e) => fail('unrecoverable: ' + e.message));
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
    () => {},
  );
  return client;
}

// openChannel resolves with the channel and a log of what it received.
function openChannel(client, options) {
  return new Promise((resolve) => {
    const log = [];
    client.openChannel(options, ({ channel, error }) => {
      if (error) fail(options.service + ' open: ' + error.message);
      channel.onCommand((cmd) => log.push(cmd));
      resolve({ channel, log });
    });
  });
}

const outputOf = (log) => log.map((c) => c.output || '').join('');

async function main() {
  const a = connect();

  // exec: echo hello.
  const exec = await openChannel(a, { service: 'exec' });
  const res = await exec.channel.request({ exec: { args: ['echo', 'hello'] } });
  if (res.channelClosed) fail('exec channel closed');
  if (!res.ok) fail('exec echo: ' + JSON.stringify(res));
  // Everything streamed came before the reply.
  const states = exec.log.filter((c) => c.state !== undefined && c.state !== null).map((c) => c.state);
  if (JSON.stringify(states) !== '[1,0]') fail('exec states ' + JSON.stringify(states));
  if (outputOf(exec.log) !== 'hello\n') fail('exec output ' + JSON.stringify(outputOf(exec.log)));

  const bad = await exec.channel.request({ exec: { args: ['sh', '-c', 'exit 3'] } });
  if (bad.error !== 'exit status 3') fail('exec exit 3: ' + JSON.stringify(bad));

  // shell: two sessions share one; the terminal takes the smaller size.
  const b = connect();
  const sa = await openChannel(a, { service: 'shell', name: 'crosis-shell' });
  const sb = await openChannel(b, { service: 'shell', name: 'crosis-shell' });
  sa.channel.send({ resizeTerm: { rows: 40, cols: 100 } });
  sb.channel.send({ resizeTerm: { rows: 30, cols: 120 } });
  // Requests make sure both resizes were handled before we look.
  const r1 = await sa.channel.request({ resizeTerm: { rows: 40, cols: 100 } });
  const r2 = await sb.channel.request({ resizeTerm: { rows: 30, cols: 120 } });
  if (!r1.ok || !r2.ok) fail('resize: ' + JSON.stringify([r1, r2]));
  sa.channel.send({ input: 'echo "SIZE[$(stty size)]"\r' });
  await waitFor('the shared size in a', () => outputOf(sa.log).includes('SIZE[30 100]'));
  await waitFor('the shared size in b', () => outputOf(sb.log).includes('SIZE[30 100]'));
  sb.channel.send({ input: 'echo "hello from ""b"\r' });
  await waitFor('b typing, seen by a', () => outputOf(sa.log).includes('hello from b'));

  a.destroy();
  b.destroy();
  console.log('PASS');
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
