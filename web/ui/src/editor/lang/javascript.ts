// Loaded on demand: see ../languages.ts.
export { javascript } from '@codemirror/lang-javascript';
