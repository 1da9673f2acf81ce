// Loaded on demand: see ../languages.ts.
export { markdown } from '@codemirror/lang-markdown';
