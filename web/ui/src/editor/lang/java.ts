// Loaded on demand: see ../languages.ts.
export { java } from '@codemirror/lang-java';
