/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const shim = (name: string) => fileURLToPath(new URL(`./src/shims/${name}.ts`, import.meta.url));

// The build is reproducible: file names carry content hashes only, nothing
// depends on the time or the machine, and dist/ is committed (the Go
// package beside this file embeds it). `npm run build` rewrites it.
export default defineConfig({
  base: '/',
  resolve: {
    alias: {
      // @replit/crosis is written for Node and browsers alike; these stand
      // in for the two Node-side modules it imports.
      url: shim('url'),
      'engine.io-client': shim('no-polling'),
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 4096,
    modulePreload: { polyfill: false },
    rolldownOptions: {
      output: {
        // Shared chunks are named after the package they mostly hold
        // (lezer-javascript-….js) rather than its file (dist-….js).
        chunkFileNames: (chunk) => {
          let name = chunk.name;
          if (name === 'dist' || name === 'index') {
            const pkg = chunk.moduleIds.map((id) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(id)?.[1]).find(Boolean);
            name = (pkg ?? 'chunk').replace(/^@/, '').replace('/', '-');
          }
          return `assets/${name}-[hash].js`;
        },
      },
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
