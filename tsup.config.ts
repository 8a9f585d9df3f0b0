import { defineConfig } from 'tsup'

// The library ships twice from one source: `import` gets ESM, `require` gets CJS.
// `shims` gives the CJS build a working `import.meta.url` (worker file paths).
// The demo behind `npm start` is an ESM script and imports the built library.
export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    clean: true,
    shims: true,
    splitting: false,
  },
  {
    // The maintenance worker runs in piscina threads; pool.ts finds it beside the bundle.
    entry: { 'maintenance-worker': 'src/maintenance/worker.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    splitting: false,
  },
  {
    entry: { demo: 'src/demo.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    external: ['./index.js'],
    splitting: false,
  },
])
