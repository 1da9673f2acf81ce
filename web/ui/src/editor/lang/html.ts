// Loaded on demand: see ../languages.ts.
export { html } from '@codemirror/lang-html';
