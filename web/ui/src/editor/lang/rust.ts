// Loaded on demand: see ../languages.ts.
export { rust } from '@codemirror/lang-rust';
