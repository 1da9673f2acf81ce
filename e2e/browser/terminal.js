// Terminals: a typed command is echoed and run; a reload replays the
// scrollback exactly once; a second terminal is a shell of its own; the
// terminal follows its panel's size.
'use strict';

const lib = require('./lib');

/** lines returns the lines of the terminal name that equal line exactly. */
const count = (ide, name, line) =>
  ide.page.evaluate(
    ([n, l]) => (window.conmanIDE.terminal(n) || '').split('\n').filter((x) => x.trimEnd() === l).length,
    [name, line],
  );

async function typeInto(ide, name, text) {
  await ide.page.locator(`.tab-pane[data-tab="terminal:${name}"] .xterm`).click();
  await ide.page.keyboard.type(text, { delay: 10 });
}

const shows = (ide, name, line) =>
  lib.waitFor(
    ide,
    `"${line}" in terminal ${name}`,
    ([n, l]) => (window.conmanIDE.terminal(n) || '').split('\n').some((x) => x.trimEnd() === l),
    [name, line],
  );

lib.main(async () => {
  const browser = await lib.launch();
  const a = await lib.openIDE(browser, process.env.CONMAN_TOKEN_A, { name: 'alice' });
  await lib.waitFor(a, 'a prompt', () => (window.conmanIDE.terminal('shell') || '').trim().length > 0);

  await typeInto(a, 'shell', 'echo hello-$((6*7))\n');
  await shows(a, 'shell', 'hello-42');
  const echoed = await a.page.evaluate(() => window.conmanIDE.terminal('shell'));
  if (!echoed.includes('echo hello-$((6*7))')) lib.fail(`the command was not echoed:\n${echoed}`);
  await lib.screenshot(a, 'terminal');

  // A reload replays the scrollback, once.
  await a.page.reload();
  await lib.waitFor(a, 'connected after the reload', () => window.conmanIDE && window.conmanIDE.status() === 'connected');
  await shows(a, 'shell', 'hello-42');
  await typeInto(a, 'shell', 'echo after-$((1+1))\n');
  await shows(a, 'shell', 'after-2');
  const n = await count(a, 'shell', 'hello-42');
  if (n !== 1)
    lib.fail(`after a reload "hello-42" shows ${n} times:\n${await a.page.evaluate(() => window.conmanIDE.terminal('shell'))}`);

  // Another person attached to the same shell sees the same screen.
  const b = await lib.openIDE(browser, process.env.CONMAN_TOKEN_B, { name: 'bob' });
  await shows(b, 'shell', 'hello-42');
  await shows(b, 'shell', 'after-2');

  // The terminal takes its panel's size: stty reports what xterm shows.
  const shownRows = () =>
    a.page.evaluate(() => document.querySelector('.tab-pane[data-tab="terminal:shell"] .xterm-rows').children.length);
  const before = await shownRows();
  await b.context.close();
  await a.page.setViewportSize({ width: 1100, height: 700 });
  await lib.sleep(300);
  await typeInto(a, 'shell', 'clear; stty size\n');
  const rows = await shownRows();
  if (rows >= before) lib.fail(`the terminal kept ${before} rows in a smaller window`);
  const reported = await lib.waitFor(a, 'stty size', () => {
    const m = /^(\d+) (\d+)$/m.exec(window.conmanIDE.terminal('shell') || '');
    return m ? [Number(m[1]), Number(m[2])] : null;
  });
  if (reported[0] !== rows) lib.fail(`stty says ${reported[0]} rows, the terminal shows ${rows}`);

  // A second terminal is a shell of its own.
  await a.page.locator('.new-terminal').click();
  await lib.waitFor(
    a,
    'a second terminal',
    () => window.conmanIDE.terminal('shell-2') !== null && window.conmanIDE.terminal('shell-2').trim().length > 0,
  );
  await typeInto(a, 'shell-2', 'echo second-$((2*3))\n');
  await shows(a, 'shell-2', 'second-6');
  if ((await count(a, 'shell', 'second-6')) !== 0) lib.fail('the second terminal wrote into the first');
  lib.checkLogs(a);
  await browser.close();
});
