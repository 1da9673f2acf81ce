// Shared helpers of the browser tests: Debian's Chromium driven by
// playwright-core, the IDE page opened with a token, waiting on the page's
// state, screenshots and metrics.
//
// Environment: CONMAN_HTTP (http://host:port of the daemon),
// CONMAN_ARTIFACTS (where screenshots and metrics go), CONMAN_CHROMIUM
// (default /usr/bin/chromium).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const base = process.env.CONMAN_HTTP;
const artifacts = process.env.CONMAN_ARTIFACTS || fs.mkdtempSync(path.join(os.tmpdir(), 'conman-browser-'));
fs.mkdirSync(artifacts, { recursive: true });

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}

/** deadline ends the script if it runs longer than ms. */
function deadline(ms) {
  setTimeout(() => fail(`timed out after ${ms / 1000} s`), ms).unref();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** launch starts headless Chromium with a fresh profile and no background traffic. */
function launch() {
  return chromium.launch({
    executablePath: process.env.CONMAN_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * openIDE opens the page as the daemon's URL would, in a context of its
 * own (one user), and waits until it is connected. The console of the page
 * is kept in logs.
 */
async function openIDE(browser, token, { name = 'page', viewport = { width: 1440, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  // What the page itself logs (console calls and uncaught exceptions, not
  // the browser's own network reports), and every HTTP request it makes.
  const logs = [];
  const requests = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Runtime.enable');
  cdp.on('Runtime.consoleAPICalled', (e) =>
    logs.push(`${e.type}: ${e.args.map((a) => (a.value !== undefined ? String(a.value) : a.description || '')).join(' ')}`),
  );
  cdp.on('Runtime.exceptionThrown', (e) =>
    logs.push(`pageerror: ${e.exceptionDetails.exception ? e.exceptionDetails.exception.description : e.exceptionDetails.text}`),
  );
  page.on('request', (r) => requests.push({ url: r.url(), referer: r.headers()['referer'] || '' }));
  const started = Date.now();
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  const ide = { name, context, page, logs, requests, token, started };
  await waitFor(ide, 'connected', () => window.conmanIDE && window.conmanIDE.status() === 'connected');
  return ide;
}

/**
 * waitFor polls pred(arg) in the page until it is truthy and returns its
 * value. It fails at once, with the page's reason, when the page's
 * connection failed (for instance because the daemon lacks a service).
 */
async function waitFor(ide, what, pred, arg, timeout = 20000) {
  const start = Date.now();
  let last;
  for (;;) {
    const state = await ide.page.evaluate(() => {
      const i = window.conmanIDE;
      if (i && i.status() === 'failed') {
        const el = document.querySelector('.failure-text');
        return { failed: (el && el.textContent) || 'the connection failed' };
      }
      return null;
    });
    if (state && state.failed) throw new Error(`${ide.name}: waiting for ${what}: the page failed: ${state.failed}`);
    try {
      last = await ide.page.evaluate(pred, arg);
    } catch (e) {
      last = 'error: ' + e.message;
    }
    if (last && !(typeof last === 'string' && last.startsWith('error: '))) return last;
    if (Date.now() - start > timeout) {
      throw new Error(`${ide.name}: timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    }
    await sleep(50);
  }
}

/** doc returns the editor state of path in the page, or null. */
function doc(ide, path) {
  return ide.page.evaluate((p) => window.conmanIDE.documents().find((d) => d.path === p) || null, path);
}

/** openFile clicks path in the file tree (expanding its directories) and waits for the editor. */
async function openFile(ide, filePath) {
  const parts = filePath.split('/');
  for (let i = 1; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    const row = ide.page.locator(`.tree-item[data-path="${dir}"] > .tree-row`);
    await row.waitFor({ timeout: 20000 });
    if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
  }
  await ide.page.locator(`.tree-item[data-path="${filePath}"] > .tree-row`).click({ timeout: 20000 });
  await waitFor(
    ide,
    `${filePath} loaded`,
    (p) => {
      const d = window.conmanIDE.documents().find((x) => x.path === p);
      return d && d.phase === 'ready' && d.loadedAt !== null;
    },
    filePath,
  );
  return ide.page.locator(`.editor[data-path="${filePath}"] .cm-content`);
}

/** settled waits until every edit of path is acknowledged and returns its text. */
async function settled(ide, filePath, timeout = 20000) {
  const d = await waitFor(
    ide,
    `${filePath} settled`,
    (p) => {
      const x = window.conmanIDE.documents().find((y) => y.path === p);
      return x && x.phase === 'ready' && !x.unacknowledged ? x : null;
    },
    filePath,
    timeout,
  );
  return d.text;
}

/**
 * converged waits until every page has every edit of path acknowledged and
 * all show the same text at the same version, and returns the text.
 */
async function converged(ides, filePath, timeout = 30000) {
  const start = Date.now();
  for (;;) {
    const docs = [];
    for (const ide of ides) docs.push(await settled(ide, filePath, Math.max(1000, timeout - (Date.now() - start))));
    const states = await Promise.all(ides.map((ide) => doc(ide, filePath)));
    if (states.every((d) => d.text === states[0].text && d.version === states[0].version && !d.unacknowledged))
      return states[0].text;
    if (Date.now() - start > timeout) {
      throw new Error(
        `${filePath}: the pages did not converge: ${states.map((d) => `v${d.version} ${JSON.stringify(d.text)}`).join(' / ')}`,
      );
    }
    await sleep(50);
  }
}

async function screenshot(ide, name) {
  const file = path.join(artifacts, name + '.png');
  await ide.page.screenshot({ path: file });
  console.log(`screenshot ${file}`);
  return file;
}

/** metric reports a measurement to the Go test (which logs it). */
function metric(name, value, unit) {
  console.log(`METRIC ${name} ${value} ${unit}`);
}

/**
 * checkLogs fails when the page logged an error or its token, or sent the
 * token in an HTTP request (its address or a Referer: only the websocket's
 * address carries it, as the protocol has it).
 */
function checkLogs(ide) {
  const token = ide.token;
  for (const line of ide.logs) {
    if (line.includes(token) || line.includes(encodeURIComponent(token))) fail(`${ide.name}: the page logged its token`);
    if (line.startsWith('pageerror:')) fail(`${ide.name}: ${line}`);
  }
  for (const r of ide.requests) {
    const first = r.url === ide.requests[0].url && r === ide.requests[0];
    // The first request is the page itself, whose fragment never leaves the browser.
    const url = first ? r.url.replace(/#.*$/, '') : r.url;
    if (url.includes(token) || r.referer.includes(token))
      fail(`${ide.name}: a request carried the token: ${r.url.slice(0, 60)}…`);
  }
}

// Lines from the Go test on stdin ("GO" after a restart).
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

/** ask prints a request for the Go test (e.g. RESTART) and waits for its "GO". */
async function ask(what) {
  console.log(what);
  const reply = await nextLine();
  if (reply !== 'GO') fail(`expected GO after ${what}, got ${reply}`);
}

/** main runs fn and exits: 0 after PASS, 1 with the error. */
function main(fn, ms = 150000) {
  deadline(ms);
  fn().then(
    () => {
      console.log('PASS');
      process.exit(0);
    },
    (e) => fail(e.stack || String(e)),
  );
}

module.exports = {
  base,
  artifacts,
  fail,
  sleep,
  launch,
  openIDE,
  waitFor,
  doc,
  openFile,
  settled,
  converged,
  screenshot,
  metric,
  checkLogs,
  ask,
  main,
};
