// A read-only token shows everything (files, the editor with others'
// edits, terminals, the run state, people, chat) and no control that edits,
// types into a process or changes the workspace.
'use strict';

const lib = require('./lib');

lib.main(async () => {
  const browser = await lib.launch();
  const rw = await lib.openIDE(browser, process.env.CONMAN_TOKEN_A, { name: 'alice' });
  const ro = await lib.openIDE(browser, process.env.CONMAN_TOKEN_RO, { name: 'viewer' });

  await lib.waitFor(
    ro,
    'the read-only badge',
    () => !!document.querySelector('.read-only-badge') && document.querySelector('.ide').dataset.readonly === 'true',
  );
  const controls = await ro.page.evaluate(() => ({
    mutating: document.querySelectorAll('.mutating').length,
    run: document.querySelectorAll('.run-button, .stop-button').length,
    newFile: document.querySelectorAll('[aria-label="New file"], [aria-label="New folder"], .new-terminal').length,
    rowActions: document.querySelectorAll('.tree-actions').length,
    draggable: document.querySelectorAll('.tree-row[draggable]').length,
  }));
  for (const [what, n] of Object.entries(controls)) {
    if (n !== 0) lib.fail(`the read-only page shows ${n} ${what} control(s)`);
  }
  // The file tree shows, and so does the run state.
  await lib.waitFor(ro, 'main.py in the tree', () => !!document.querySelector('.tree-item[data-path="main.py"]'));
  await lib.waitFor(ro, 'the run state', () => window.conmanIDE.runState() === 'stopped');

  // The editor shows the file and others' edits, and takes no typing.
  const edRO = await lib.openFile(ro, 'main.py');
  const editable = await edRO.getAttribute('contenteditable');
  if (editable !== 'false') lib.fail(`the read-only editor is contenteditable=${editable}`);
  const edRW = await lib.openFile(rw, 'main.py');
  await edRW.click();
  await rw.page.keyboard.press('Control+End');
  await rw.page.keyboard.type('print("from alice 💃")\n', { delay: 10 });
  const text = await lib.settled(rw, 'main.py');
  await lib.waitFor(ro, "alice's edit", (want) => window.conmanIDE.documents()[0].text === want, text);
  await edRO.click({ force: true });
  await ro.page.keyboard.type('nope', { delay: 10 });
  await lib.sleep(300);
  const after = await lib.doc(ro, 'main.py');
  if (after.text !== text || after.unacknowledged) lib.fail(`the read-only editor changed: ${JSON.stringify(after.text)}`);

  // The terminal shows the shell, and keys go nowhere.
  await rw.page.locator('.tab-pane[data-tab="terminal:shell"] .xterm').click();
  await rw.page.keyboard.type('echo shared-$((3*3))\n', { delay: 10 });
  await lib.waitFor(ro, 'the shell output', () =>
    (window.conmanIDE.terminal('shell') || '').split('\n').some((l) => l.trimEnd() === 'shared-9'),
  );
  await ro.page.locator('.tab-pane[data-tab="terminal:shell"] .xterm').click();
  await ro.page.keyboard.type('echo ro-$((5*5))\n', { delay: 10 });
  await lib.sleep(500);
  const term = await rw.page.evaluate(() => window.conmanIDE.terminal('shell'));
  if (term.includes('echo ro-') || term.split('\n').some((l) => l.trimEnd() === 'ro-25'))
    lib.fail(`the read-only page typed into the shell:\n${term}`);

  // Packages: the list, without add or remove.
  await ro.page.locator('.tab[data-tab="packages"] .tab-label').click();
  await ro.page.fill('.pkg-query', 'left');
  if ((await ro.page.locator('.packages .mutating').count()) !== 0)
    lib.fail('the read-only packages panel has add or remove buttons');

  // Chat is not a change to the workspace: it stays.
  await ro.page.fill('.chat-input', 'just looking 👀');
  await ro.page.press('.chat-input', 'Enter');
  await lib.waitFor(rw, "the viewer's message", () =>
    [...document.querySelectorAll('.chat-message')].some((m) => m.textContent.includes('just looking')),
  );
  await ro.page.locator('.tab[data-tab="terminal:shell"] .tab-label').click();
  await lib.sleep(200);
  await lib.screenshot(ro, 'read-only');
  lib.checkLogs(rw);
  lib.checkLogs(ro);

  // A token the daemon refuses (here: its footer is damaged, so no key
  // matches) ends in a clear failure instead of endless reconnecting.
  const refusedContext = await browser.newContext();
  const refused = await refusedContext.newPage();
  const damaged = process.env.CONMAN_TOKEN_RO.replace(/\.[^.]*$/, '.AAAA');
  await refused.goto(`${lib.base}/#token=${encodeURIComponent(damaged)}`);
  await refused.waitForFunction(() => window.conmanIDE && window.conmanIDE.status() === 'failed', null, { timeout: 30000 });
  const reason = await refused.textContent('.ide');
  if (!reason.includes('refused the access token')) lib.fail(`the failure does not say the token was refused:\n${reason}`);
  await browser.close();
});
