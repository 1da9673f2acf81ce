// Loaded on demand: see ../languages.ts.
export { go } from '@codemirror/lang-go';
