// Loaded on demand: see ../languages.ts.
export { yaml } from '@codemirror/lang-yaml';
