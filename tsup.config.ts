import { readFileSync } from 'node:fs'
import { defineConfig } from 'tsup'

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }

/** Source maps carry the mappings (stack traces under --enable-source-maps name src/ files and
 *  lines) but not a copy of every source: that copy was two thirds of the tarball. */
function noSourcesInMaps(options: { sourcesContent?: boolean }): void {
  options.sourcesContent = false
}

/** The subpath exports `larder/<name>`: src/adapters/<name>.ts, built to dist/adapters/. */
const ADAPTERS = ['drizzle', 'keyv', 'mikro-orm', 'typeorm', 'undici']

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
    esbuildOptions: noSourcesInMaps,
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
    esbuildOptions: noSourcesInMaps,
    splitting: false,
  },
  {
    // The `larder` bin: ESM (library included) beside the worker. Split, so what a command
    // loads with `await import()` (the server: fastify, prom-client) is a chunk of its own
    // that `larder stats` and the like never load: every command starts faster.
    entry: { cli: 'src/cli/bin.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    splitting: true,
    // Its chunks are named cli-*, so package.json's "dist/cli*" ships them all.
    esbuildOptions(options) {
      options.chunkNames = 'cli-[name]-[hash]'
      options.sourcesContent = false
    },
    define: { LARDER_VERSION: JSON.stringify(version) },
  },
  {
    // The adapters (`larder/keyv`, …; src/adapters/): each its own file in ESM and CJS with
    // declarations. They import the core as the package, 'larder', and that import stays one
    // (a package may import itself by name): so `larder/keyv` uses the very copy of larder the
    // app's `import`/`require` of 'larder' loaded, and its types name the app's `Larder`, not
    // a second declaration of it. Host libraries are optional peer dependencies, never bundled.
    // Built into dist/adapters/ itself (not dist/), so the declaration chunk the adapters
    // share (CacheOrOptions) lands beside them, inside what `files` ships.
    entry: Object.fromEntries(ADAPTERS.map((name) => [name, `src/adapters/${name}.ts`])),
    outDir: 'dist/adapters',
    format: ['esm', 'cjs'],
    dts: true,
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    esbuildOptions: noSourcesInMaps,
    splitting: false,
    external: ['larder'],
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
