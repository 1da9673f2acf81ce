// The file tree, live: a file one person creates, renames, drags into a
// folder or deletes changes in the other's tree at once, and a file that a
// process rewrites on disk changes in the editors that have it open.
'use strict';

const fs = require('fs');
const path = require('path');
const lib = require('./lib');

const ws = process.env.CONMAN_WORKSPACE;
const inTree = (ide, p) =>
  lib.waitFor(ide, `${p} in the tree`, (x) => !!document.querySelector(`.tree-item[data-path="${x}"]`), p);
const notInTree = (ide, p) =>
  lib.waitFor(ide, `${p} gone from the tree`, (x) => !document.querySelector(`.tree-item[data-path="${x}"]`), p);
const row = (ide, p) => ide.page.locator(`.tree-item[data-path="${p}"] > .tree-row`);

lib.main(async () => {
  const browser = await lib.launch();
  const a = await lib.openIDE(browser, process.env.CONMAN_TOKEN_A, { name: 'alice' });
  const b = await lib.openIDE(browser, process.env.CONMAN_TOKEN_B, { name: 'bob' });
  a.page.on('dialog', (d) => d.accept());
  await inTree(b, 'live.txt');

  // Create: alice names a new file in the tree; bob's tree shows it.
  await a.page.locator('button[aria-label="New file"]').click();
  await a.page.locator('input[aria-label="New file name"]').fill('created-by-alice.txt');
  await a.page.keyboard.press('Enter');
  await inTree(b, 'created-by-alice.txt');
  if (!fs.existsSync(path.join(ws, 'created-by-alice.txt'))) lib.fail('the new file is not on disk');
  await lib.waitFor(a, 'the new file open', () => window.conmanIDE.documents().some((d) => d.path === 'created-by-alice.txt'));

  // A folder, then bob expands it.
  await a.page.locator('button[aria-label="New folder"]').click();
  await a.page.locator('input[aria-label="New folder name"]').fill('made');
  await a.page.keyboard.press('Enter');
  await inTree(b, 'made');

  // Rename.
  await row(a, 'created-by-alice.txt').hover();
  await a.page.locator('button[aria-label="Rename created-by-alice.txt"]').click();
  await a.page.locator('input[aria-label="New name for created-by-alice.txt"]').fill('renamed.txt');
  await a.page.keyboard.press('Enter');
  await inTree(b, 'renamed.txt');
  await notInTree(b, 'created-by-alice.txt');
  await lib.waitFor(a, 'the tab follows the rename', () => window.conmanIDE.documents().some((d) => d.path === 'renamed.txt'));

  // Drag into a folder.
  await row(b, 'docs').click();
  await inTree(b, 'docs/a.md');
  await row(a, 'move-me.txt').dragTo(row(a, 'docs'));
  await inTree(b, 'docs/move-me.txt');
  await notInTree(b, 'move-me.txt');
  if (!fs.existsSync(path.join(ws, 'docs', 'move-me.txt'))) lib.fail('the dragged file is not in docs/ on disk');

  // Delete.
  await row(a, 'renamed.txt').hover();
  await a.page.locator('button[aria-label="Delete renamed.txt"]').click();
  await notInTree(b, 'renamed.txt');
  if (fs.existsSync(path.join(ws, 'renamed.txt'))) lib.fail('the deleted file is still on disk');

  // A process changes the disk: the trees and the open editors follow.
  fs.writeFileSync(path.join(ws, 'from-a-process.txt'), 'hi\n');
  await inTree(a, 'from-a-process.txt');
  await inTree(b, 'from-a-process.txt');
  await lib.openFile(a, 'live.txt');
  await lib.openFile(b, 'live.txt');
  const rewritten = 'rewritten on disk 💃\nby another process\n';
  fs.writeFileSync(path.join(ws, 'live.txt'), rewritten);
  for (const ide of [a, b]) {
    await lib.waitFor(
      ide,
      'the new text in the editor',
      (want) => window.conmanIDE.documents().find((d) => d.path === 'live.txt').text === want,
      rewritten,
    );
  }
  await lib.screenshot(b, 'file-tree');
  lib.checkLogs(a);
  lib.checkLogs(b);
  await browser.close();
});
