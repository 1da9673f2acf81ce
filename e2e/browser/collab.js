// Two people (two browser contexts, two tokens) open one file and type
// into it at once, emoji and newlines included: both editors and the file
// on disk end identical. Along the way: the token leaves the address bar
// and no log, the other's cursor shows with their name, presence and chat
// work, and the page's budgets are measured (first load size, time to a
// usable editor, keystroke latency between the two browsers).
'use strict';

const fs = require('fs');
const path = require('path');
const lib = require('./lib');

const file = 'notes/shared.md';
const onDisk = () => fs.readFileSync(path.join(process.env.CONMAN_WORKSPACE, file), 'utf8');

lib.main(async () => {
  const browser = await lib.launch();
  const a = await lib.openIDE(browser, process.env.CONMAN_TOKEN_A, { name: 'alice' });
  const b = await lib.openIDE(browser, process.env.CONMAN_TOKEN_B, { name: 'bob' });

  // The token is gone from the address bar.
  for (const ide of [a, b]) {
    const href = await ide.page.evaluate(() => location.href);
    if (href.includes('token')) lib.fail(`${ide.name}: the address still holds the token: ${href}`);
  }

  // What the first load transferred (a fresh context: nothing cached).
  const transferred = await a.page.evaluate(() =>
    performance
      .getEntriesByType('navigation')
      .concat(performance.getEntriesByType('resource'))
      .reduce((n, e) => n + (e.transferSize || 0), 0),
  );
  lib.metric('first_load_transfer_bytes', transferred, 'bytes');

  const edA = await lib.openFile(a, file);
  const edB = await lib.openFile(b, file);
  const start = await lib.settled(a, file);
  if (start !== '# Shared notes\n\nStart here 💃\n') lib.fail(`alice sees ${JSON.stringify(start)}`);

  // Presence: each sees the other, with the file they have open.
  await lib.waitFor(b, 'alice in the people list', () => !!document.querySelector('.person[data-user="alice"] .person-file'));
  await lib.waitFor(
    b,
    "alice's marker in the tree",
    () => !!document.querySelector('.tree-item[data-path="notes/shared.md"] .opener-dot'),
  );

  // Keystroke latency: alice types on a line of her own; bob's page notes
  // when each character arrives (a mutation observer on his editor), hers
  // when each key went down.
  await edA.click();
  await a.page.keyboard.press('Control+End');
  await a.page.keyboard.type('@', { delay: 20 });
  await lib.waitFor(
    b,
    'the marker line',
    (p) =>
      window.conmanIDE
        .documents()
        .find((d) => d.path === p)
        .text.includes('@'),
    file,
  );
  await b.page.evaluate((p) => {
    window.__arrivals = [];
    const seen = { n: 0 };
    const el = document.querySelector(`.editor[data-path="${p}"] .cm-content`);
    new MutationObserver(() => {
      const t = performance.timeOrigin + performance.now();
      const text = window.conmanIDE.documents().find((d) => d.path === p).text;
      const n = text.length - text.lastIndexOf('@') - 1;
      while (seen.n < n) window.__arrivals[seen.n++] = t;
    }).observe(el, { childList: true, subtree: true, characterData: true });
  }, file);
  await a.page.evaluate(() => {
    window.__keys = [];
    window.addEventListener('keydown', () => window.__keys.push(performance.timeOrigin + performance.now()), true);
  });
  const probe = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ';
  await a.page.keyboard.type(probe, { delay: 40 });
  await lib.waitFor(b, 'every probe key', (n) => (window.__arrivals || []).length >= n, probe.length);
  const keys = await a.page.evaluate(() => window.__keys);
  const arrivals = await b.page.evaluate(() => window.__arrivals);
  const latencies = arrivals
    .slice(0, probe.length)
    .map((t, i) => t - keys[i])
    .sort((x, y) => x - y);
  const pct = (q) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)];
  lib.metric('keystroke_latency_p50_ms', pct(0.5).toFixed(1), 'ms');
  lib.metric('keystroke_latency_p95_ms', pct(0.95).toFixed(1), 'ms');
  lib.metric('keystroke_latency_max_ms', latencies[latencies.length - 1].toFixed(1), 'ms');

  // Both type at once: alice at the end, bob after the title.
  await a.page.keyboard.press('Enter');
  await edB.click();
  await b.page.keyboard.press('Control+Home');
  await b.page.keyboard.press('End');
  const textA = 'alice 💃 types here\nsecond line 🤖👻 日本\nthird é line';
  const textB = '\nbob adds 🎉 a line\nand 𝔘 another';
  await Promise.all([a.page.keyboard.type(textA, { delay: 15 }), b.page.keyboard.type(textB, { delay: 15 })]);
  const finalA = await lib.converged([a, b], file);
  for (const piece of [textA, textB.slice(1), '@' + probe]) {
    if (!finalA.includes(piece)) lib.fail(`${JSON.stringify(piece)} is missing from ${JSON.stringify(finalA)}`);
  }
  if (!finalA.startsWith('# Shared notes\nbob adds')) lib.fail(`bob's line is not after the title: ${JSON.stringify(finalA)}`);

  // The file on disk follows (the daemon writes it shortly after an edit).
  const deadline = Date.now() + 10000;
  while (onDisk() !== finalA) {
    if (Date.now() > deadline) lib.fail(`on disk ${JSON.stringify(onDisk())}, in the editors ${JSON.stringify(finalA)}`);
    await lib.sleep(100);
  }

  // Each sees the other's cursor, with their name.
  await a.page.keyboard.press('ArrowLeft');
  await b.page.keyboard.press('ArrowLeft');
  await lib.waitFor(a, "bob's cursor", () =>
    [...document.querySelectorAll('.remote-caret-label')].some((e) => e.textContent === 'bob'),
  );
  await lib.waitFor(b, "alice's cursor", () =>
    [...document.querySelectorAll('.remote-caret-label')].some((e) => e.textContent === 'alice'),
  );

  // The view of the README's screenshot: two files open, bob's cursor, a
  // command in the terminal.
  await a.page.locator('.tree-item[data-path="main.py"] > .tree-row').click();
  await lib.settled(a, 'main.py');
  await a.page.locator('.tab-pane[data-tab="terminal:shell"] .xterm').click();
  await a.page.keyboard.type("PS1='~/demo $ '; clear\n", { delay: 5 });
  await lib.waitFor(a, 'the short prompt', () => (window.conmanIDE.terminal('shell') || '').startsWith('~/demo $'));
  await a.page.keyboard.type('python3 main.py\n', { delay: 5 });
  await lib.waitFor(a, 'the program output', () => (window.conmanIDE.terminal('shell') || '').includes('hello from conman'));
  await a.page.locator('.tab[data-path="notes/shared.md"] .tab-label').click();
  await b.page.keyboard.press('ArrowUp');
  await lib.waitFor(a, "bob's cursor", () =>
    [...document.querySelectorAll('.remote-caret-label')].some((e) => e.textContent === 'bob' && e.offsetParent !== null),
  );

  // Chat.
  await a.page.fill('.chat-input', 'hello bob 👋');
  await a.page.press('.chat-input', 'Enter');
  await lib.waitFor(b, 'the chat message', () =>
    [...document.querySelectorAll('.chat-message')].some((m) => m.textContent.includes('hello bob 👋')),
  );
  await b.page.fill('.chat-input', 'hi alice, I took the title');
  await b.page.press('.chat-input', 'Enter');
  await lib.waitFor(a, 'the answer', () =>
    [...document.querySelectorAll('.chat-message')].some((m) => m.textContent.includes('I took the title')),
  );
  await lib.sleep(200);
  await lib.screenshot(a, 'workspace');

  // A toast from the operator reaches everyone.
  await lib.ask('TOAST The workspace restarts at noon');
  for (const ide of [a, b]) {
    await lib.waitFor(ide, 'the toast', () =>
      [...document.querySelectorAll('.toast')].some((t) => t.textContent.includes('restarts at noon')),
    );
  }

  // Time to a usable editor: reload bob's page, which reopens the file.
  await b.page.reload();
  const ready = await lib.waitFor(
    b,
    'the editor after a reload',
    (p) => {
      const d = window.conmanIDE && window.conmanIDE.documents().find((x) => x.path === p);
      return d && d.phase === 'ready' && d.loadedAt !== null ? d.loadedAt : null;
    },
    file,
  );
  lib.metric('editor_ready_after_load_ms', ready.toFixed(0), 'ms');
  if ((await lib.doc(b, file)).text !== finalA) lib.fail('bob reloaded a different text');

  await lib.screenshot(b, 'collaboration-bob');
  lib.checkLogs(a);
  lib.checkLogs(b);
  await browser.close();
});
