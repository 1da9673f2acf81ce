// Syntax highlighting by file type. Each language is its own chunk (a
// module in lang/), loaded when a file that needs it is opened, so the
// first load stays small.

import type { Extension } from '@codemirror/state';

type Loader = () => Promise<Extension>;

const javascript =
  (opts: { jsx?: boolean; typescript?: boolean }): Loader =>
  () =>
    import('./lang/javascript').then((m) => m.javascript(opts));
const cpp: Loader = () => import('./lang/cpp').then((m) => m.cpp());
const yaml: Loader = () => import('./lang/yaml').then((m) => m.yaml());
const html: Loader = () => import('./lang/html').then((m) => m.html());

const byExtension: Record<string, Loader> = {
  js: javascript({}),
  mjs: javascript({}),
  cjs: javascript({}),
  jsx: javascript({ jsx: true }),
  ts: javascript({ typescript: true }),
  mts: javascript({ typescript: true }),
  tsx: javascript({ jsx: true, typescript: true }),
  py: () => import('./lang/python').then((m) => m.python()),
  go: () => import('./lang/go').then((m) => m.go()),
  md: () => import('./lang/markdown').then((m) => m.markdown()),
  json: () => import('./lang/json').then((m) => m.json()),
  css: () => import('./lang/css').then((m) => m.css()),
  html,
  htm: html,
  rs: () => import('./lang/rust').then((m) => m.rust()),
  yaml,
  yml: yaml,
  c: cpp,
  h: cpp,
  cc: cpp,
  cpp,
  hpp: cpp,
  java: () => import('./lang/java').then((m) => m.java()),
};

/** languageFor returns the loader of path's language, or null for plain text. */
export function languageFor(path: string): Loader | null {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return null;
  return byExtension[name.slice(dot + 1).toLowerCase()] ?? null;
}
