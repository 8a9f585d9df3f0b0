/**
 * What `npm publish` would ship: `npm pack --dry-run --json` lists the tarball's files. It must
 * hold the built package and its documents, and nothing else: no tests, benchmarks, fixtures,
 * sources or local caches, and no more than a size budget (so a stray artifact or a bundled
 * dependency is noticed the day it appears). The consumer tests (package.test.ts) prove that
 * what is shipped works; this proves that what works is all that is shipped.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
/** Packed (gzip) and unpacked bytes at most. Today about 0.76 MB and 2.95 MB, source maps
 *  (mappings only, no copy of the sources: tsup.config.ts) being half of it. */
const PACKED_BUDGET = 1.5 * 1024 * 1024
const UNPACKED_BUDGET = 6 * 1024 * 1024
/** The only paths a tarball may hold. */
const ALLOWED = [
  /^dist\/[\w./-]+\.(js|cjs|d\.ts|d\.cts|js\.map|cjs\.map|html|css|svg)$/,
  /^(README|CHANGELOG)\.md$/,
  /^LICENSE$/,
  /^package\.json$/,
]

test('the tarball holds the built package and its documents only, within the size budget', () => {
  const json = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const [pack] = JSON.parse(json) as [{ size: number; unpackedSize: number; files: { path: string; size: number }[] }]
  const paths = pack.files.map((f) => f.path)
  assert.deepEqual(
    paths.filter((p) => !ALLOWED.some((a) => a.test(p))),
    [],
    'files that should not ship',
  )
  for (const needed of [
    'dist/index.js',
    'dist/index.cjs',
    'dist/index.d.ts',
    'dist/index.d.cts',
    'dist/maintenance-worker.js',
    'dist/cli.js',
    'README.md',
    'LICENSE',
    'package.json',
  ]) {
    assert.ok(paths.includes(needed), `${needed} is missing from the tarball (was \`npm run build\` run?)`)
  }
  // The bin is split into chunks (a command loads the server only when it serves): every
  // chunk it can reach, statically or by import(), must ship with it.
  const reachable = new Set<string>()
  const visit = (file: string): void => {
    if (reachable.has(file)) return
    reachable.add(file)
    const text = readFileSync(path.join(root, file), 'utf8')
    for (const [, spec] of text.matchAll(/(?:from|import\()\s*"(\.\/[^"]+)"/g)) visit(path.posix.join(path.posix.dirname(file), spec!))
  }
  visit('dist/cli.js')
  assert.ok(reachable.size > 1, 'the bin imports chunks of its own')
  assert.deepEqual(
    [...reachable].filter((file) => !paths.includes(file)),
    [],
    'chunks the bin imports but the tarball lacks',
  )
  assert.ok(pack.size <= PACKED_BUDGET, `packed ${pack.size} bytes, over the ${PACKED_BUDGET}-byte budget`)
  assert.ok(pack.unpackedSize <= UNPACKED_BUDGET, `unpacked ${pack.unpackedSize} bytes, over the ${UNPACKED_BUDGET}-byte budget`)
})
