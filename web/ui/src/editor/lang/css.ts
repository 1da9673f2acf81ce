// Loaded on demand: see ../languages.ts.
export { css } from '@codemirror/lang-css';
