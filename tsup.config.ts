import { readFileSync } from 'node:fs'
import { defineConfig } from 'tsup'

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }

// The library ships twice from one source: `import` gets ESM, `require` gets CJS.
// `shims` gives the CJS build a working `import.meta.url` (worker file paths).
// The demo behind `npm run demo` is an ESM script and imports the built library.
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
    // The `larder` bin: one self-contained ESM file (library included) beside the worker.
    entry: { cli: 'src/cli/bin.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    splitting: false,
    define: { LARDER_VERSION: JSON.stringify(version) },
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
