// The run button: the project's run command starts, its output and the
// Running/Stopped state show, the console takes input, and Stop ends a
// run. The packages panel lists the project's dependencies.
'use strict';

const lib = require('./lib');

const state = (ide, want) =>
  lib.waitFor(
    ide,
    `run state ${want}`,
    (w) => window.conmanIDE.runState() === w && document.querySelector('.run-state').dataset.state === w,
    want,
  );
const consoleShows = (ide, text) =>
  lib.waitFor(ide, `"${text}" in the console`, (t) => window.conmanIDE.console().includes(t), text);

lib.main(async () => {
  const browser = await lib.launch();
  const a = await lib.openIDE(browser, process.env.CONMAN_TOKEN_A, { name: 'alice' });
  await state(a, 'stopped');

  // Run: python asks for a name on the console.
  await a.page.locator('.run-button').click();
  await state(a, 'running');
  await consoleShows(a, 'run-start');
  await consoleShows(a, 'name? ');
  const stopEnabled = await a.page.locator('.stop-button').isEnabled();
  if (!stopEnabled) lib.fail('Stop is disabled while the program runs');
  await a.page.locator('.tab-pane[data-tab="console"] .xterm').click();
  await a.page.keyboard.type('ada\n', { delay: 20 });
  await consoleShows(a, 'hello ada');
  await state(a, 'stopped');
  await lib.screenshot(a, 'run-console');

  // A second run is stopped with the Stop button while it waits.
  await a.page.locator('.run-button').click();
  await state(a, 'running');
  await lib.waitFor(a, 'the second prompt', () => window.conmanIDE.console().split('name? ').length >= 2);
  await a.page.locator('.stop-button').click();
  await state(a, 'stopped');

  // Another person sees the same state and console.
  const b = await lib.openIDE(browser, process.env.CONMAN_TOKEN_B, { name: 'bob' });
  await state(b, 'stopped');
  await a.page.locator('.run-button').click();
  await state(b, 'running');
  await lib.waitFor(b, "the prompt in bob's console", () => window.conmanIDE.console().includes('name? '));
  await a.page.locator('.stop-button').click();
  await state(b, 'stopped');

  // Packages: the project's dependencies (read from package.json).
  await a.page.locator('.tab[data-tab="packages"] .tab-label').click();
  await lib.waitFor(a, 'left-pad listed', () => !!document.querySelector('.pkg-installed .pkg-item[data-name="left-pad"]'));
  await lib.screenshot(a, 'packages');
  lib.checkLogs(a);
  lib.checkLogs(b);
  await browser.close();
});
