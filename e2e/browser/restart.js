// The daemon is killed and started again while alice types: both pages
// show that they are reconnecting, recover on their own, and every edit
// is there afterwards (alice's typed while the daemon was down too), in
// both editors and on disk; the terminal shows nothing twice.
'use strict';

const fs = require('fs');
const path = require('path');
const lib = require('./lib');

const file = 'notes/restart.md';
const onDisk = () => fs.readFileSync(path.join(process.env.CONMAN_WORKSPACE, file), 'utf8');

/** watchStatus records the connection indicator's states in the page. */
const watchStatus = (ide) =>
  ide.page.evaluate(() => {
    window.__states = [];
    const el = document.querySelector('.conn');
    new MutationObserver(() => window.__states.push(el.dataset.state)).observe(el, {
      attributes: true,
      attributeFilter: ['data-state'],
    });
  });

lib.main(async () => {
  const browser = await lib.launch();
  const a = await lib.openIDE(browser, process.env.CONMAN_TOKEN_A, { name: 'alice' });
  const b = await lib.openIDE(browser, process.env.CONMAN_TOKEN_B, { name: 'bob' });
  const edA = await lib.openFile(a, file);
  const edB = await lib.openFile(b, file);

  // Acknowledged edits from both.
  await edA.click();
  await a.page.keyboard.press('Control+End');
  await a.page.keyboard.type('before 💃 one\n', { delay: 10 });
  await edB.click();
  await b.page.keyboard.press('Control+Home');
  await b.page.keyboard.press('End');
  await b.page.keyboard.type('\nbob was here 🤖', { delay: 10 });
  const acknowledged = await lib.converged([a, b], file);

  // A terminal line that must not show twice after the restart.
  await a.page.locator('.tab-pane[data-tab="terminal:shell"] .xterm').click();
  await a.page.keyboard.type('echo before-$((40+2))\n', { delay: 5 });
  await lib.waitFor(a, 'the terminal line', () =>
    (window.conmanIDE.terminal('shell') || '').split('\n').some((l) => l.trimEnd() === 'before-42'),
  );
  await edA.click();
  await a.page.keyboard.press('Control+End');

  await watchStatus(a);
  await watchStatus(b);
  // Alice keeps typing while the daemon is killed and started again.
  const during = 'typed while the daemon restarts 🎉 and after\n';
  const typing = a.page.keyboard.type(during, { delay: 40 });
  await lib.sleep(200);
  await lib.ask('RESTART');
  await typing;

  for (const ide of [a, b]) {
    await lib.waitFor(
      ide,
      'reconnected',
      () => window.conmanIDE.status() === 'connected' && window.__states.includes('reconnecting'),
      undefined,
      30000,
    );
  }
  await a.page.keyboard.type('after ✓', { delay: 10 });
  const finalA = await lib.converged([a, b], file);
  for (const piece of [acknowledged, during, 'after ✓']) {
    if (!finalA.includes(piece)) lib.fail(`${JSON.stringify(piece)} is missing after the restart: ${JSON.stringify(finalA)}`);
  }
  const deadline = Date.now() + 15000;
  while (onDisk() !== finalA) {
    if (Date.now() > deadline) lib.fail(`on disk ${JSON.stringify(onDisk())}, in the editors ${JSON.stringify(finalA)}`);
    await lib.sleep(100);
  }
  // The terminal works again (a new shell: the old one ended with the daemon).
  await a.page.locator('.tab-pane[data-tab="terminal:shell"] .xterm').click();
  await a.page.keyboard.type('echo alive-$((1+2))\n', { delay: 5 });
  await lib.waitFor(a, 'the terminal after the restart', () =>
    (window.conmanIDE.terminal('shell') || '').split('\n').some((l) => l.trimEnd() === 'alive-3'),
  );
  const term = await a.page.evaluate(() => window.conmanIDE.terminal('shell'));
  console.log('terminal after the restart:\n' + term);
  const times = term.split('\n').filter((l) => l.trimEnd() === 'before-42').length;
  if (times > 1) lib.fail(`the terminal shows "before-42" ${times} times after the restart:\n${term}`);
  await lib.screenshot(a, 'after-restart');
  lib.checkLogs(a);
  lib.checkLogs(b);
  await browser.close();
});
