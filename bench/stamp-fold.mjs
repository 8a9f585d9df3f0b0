// What folding tag stamps costs (store/tag-clock.ts, maintenance/stamp-fold.ts): a namespace
// whose tags/ holds more stamps than the bound (20,000 by default), one prune that folds them,
// and what it left.
//
//   npm run build && node bench/stamp-fold.mjs [--stamps 22000] [--dir /tmp/larder-stamp-fold]
//
// Printed: the time to make the stamps (invalidateTags, 1,000 tags a call), tags/'s files,
// directories and bytes (st_blocks) before and after, the prune's wall time and its
// stampsFolded, the longest event-loop stall on the main thread during the prune (the fold runs
// in a maintenance worker), and the µs of a tagged get (file tier, a new instance) before and
// after the fold.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { Larder } = await import(path.join(root, 'dist', 'index.js'))
const argv = process.argv.slice(2)
const option = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback)
const stamps = Number(option('--stamps', 22_000))
const dir = option('--dir', fs.mkdtempSync(path.join(os.tmpdir(), 'larder-stamp-fold-')))

/** Files, directories and bytes (allocated blocks) under `at`, without following links. */
function footprint(at) {
  const out = { files: 0, dirs: 0, bytes: 0 }
  for (const entry of fs.readdirSync(at, { withFileTypes: true, recursive: true })) {
    const s = fs.lstatSync(path.join(entry.parentPath ?? entry.path, entry.name))
    if (s.isDirectory()) out.dirs++
    else out.files++
    out.bytes += s.blocks * 512
  }
  return out
}

async function tagGetMicros(cache, key, n = 20_000) {
  for (let i = 0; i < 1000; i++) await cache.get(key)
  const started = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await cache.get(key)
  return Number(process.hrtime.bigint() - started) / 1000 / n
}

const cache = await Larder.open({ dir, maintenance: { interval: 0 }, memory: false })
await cache.set('tagged', { rows: [1, 2, 3] }, { tags: ['users'] })
let started = performance.now()
for (let i = 0; i < stamps; i += 1000) {
  await cache.invalidateTags(Array.from({ length: Math.min(1000, stamps - i) }, (_, j) => `row:${i + j}`))
}
const made = performance.now() - started
await cache.set('after', { rows: [4] }, { tags: ['users'] })
const tagsDir = path.join(dir, 'v1', 'default', 'tags')
const before = footprint(tagsDir)
const reader = await Larder.open({ dir, maintenance: { interval: 0 }, memory: false })
const getBefore = await tagGetMicros(reader, 'after')

const stall = monitorEventLoopDelay({ resolution: 1 })
stall.enable()
started = performance.now()
const report = await cache.prune()
const pruneMs = performance.now() - started
stall.disable()
const after = footprint(tagsDir)
const getAfter = await tagGetMicros(reader, 'after')
const old = await reader.get('tagged')
await reader.close()
await cache.close()

const kib = (b) => `${(b / 1024).toFixed(0)} KiB`
console.log(
  `node ${process.version}; ${stamps.toLocaleString('en')} stamps made in ${(made / 1000).toFixed(1)} s; load ${os.loadavg()[0].toFixed(1)}`,
)
console.log(`tags/ before: ${before.files} files, ${before.dirs} directories, ${kib(before.bytes)}`)
console.log(
  `prune: ${pruneMs.toFixed(0)} ms, stampsFolded ${report.stampsFolded}, expired ${report.expired}; longest main-thread stall ${(stall.max / 1e6).toFixed(1)} ms`,
)
console.log(`tags/ after: ${after.files} files, ${after.dirs} directories, ${kib(after.bytes)}`)
console.log(
  `tagged get (file tier): ${getBefore.toFixed(2)} µs before, ${getAfter.toFixed(2)} µs after; the entry older than the floor: ${old === undefined ? 'a miss' : 'STILL SERVED'}`,
)
if (option('--dir') === undefined) fs.rmSync(dir, { recursive: true, force: true })
