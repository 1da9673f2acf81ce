// Loaded on demand: see ../languages.ts.
export { python } from '@codemirror/lang-python';
