// Loaded on demand: see ../languages.ts.
export { json } from '@codemirror/lang-json';
