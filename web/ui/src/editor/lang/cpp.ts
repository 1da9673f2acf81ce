// Loaded on demand: see ../languages.ts.
export { cpp } from '@codemirror/lang-cpp';
