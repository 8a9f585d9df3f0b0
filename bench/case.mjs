// One benchmark case in one fresh process:
//
//   node --expose-gc bench/case.mjs '{"case":"set1k","impl":"larder","dir":"/tmp/x","n":5000,"conc":1}'
//
// Prints exactly one JSON line on stdout: { ok, case, impl, metrics: { name: number }, info }.
// run.mjs spawns one of these per measurement; it can also be run by hand to look at a
// single number.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createRequire } from 'node:module'
import { artifactChunks, bigKey, bigValue, smallKey, smallValue } from './data.mjs'

const require = createRequire(import.meta.url)
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')

// ── the three implementations behind one small interface ─────────────────────

async function openLarder(dir, options = {}) {
  // run.mjs passes a snapshot of the build, so a rebuild during a long run changes nothing.
  const { Larder } = await import(args.larderModule ?? path.join(root, 'dist', 'index.js'))
  const cache = await Larder.open({ dir, ...options })
  return {
    set: (key, value) => cache.set(key, value),
    get: (key) => cache.get(key),
    setStream: (key, source) => cache.setStream(key, source),
    getStream: (key) => cache.getStream(key),
    stats: () => cache.stats(),
    close: () => cache.close(),
  }
}

// cacache as its README shows it: put(cache, key, data) / get(cache, key) → { data }, and
// put.stream / get.stream. It stores bytes, so values are JSON-encoded by the caller here,
// as they would be in an application.
async function openCacache(dir, { memoize = false } = {}) {
  const cacache = require('cacache')
  // Memoized reads get their own Map (a documented form of `memoize`): cacache's built-in
  // memo holds only 500 entries, which a working set of 1,000 keys would thrash.
  const opts = memoize ? { memoize: new Map() } : undefined
  return {
    set: (key, value) => cacache.put(dir, key, JSON.stringify(value), opts),
    get: async (key) => JSON.parse((await cacache.get(dir, key, opts)).data.toString('utf8')),
    setStream: async (key, source) => {
      const sink = cacache.put.stream(dir, key)
      const done = new Promise((resolve, reject) => {
        sink.on('integrity', resolve)
        sink.on('error', reject)
      })
      for await (const chunk of source) {
        if (!sink.write(chunk)) await new Promise((resolve) => sink.once('drain', resolve))
      }
      sink.end()
      await done
    },
    getStream: async (key) => cacache.get.stream(dir, key),
    close: async () => {},
  }
}

// The raw file-system limit in larder's own layout: <dir>/v1/default/<2 hex>/<16 hex>,
// 256 partition directories made up front, write to a temp name and rename; read whole file.
async function openRaw(dir) {
  const base = path.join(dir, 'v1', 'default')
  await Promise.all(Array.from({ length: 256 }, (_, i) => fsp.mkdir(path.join(base, i.toString(16).padStart(2, '0')), { recursive: true })))
  const file = (key) => {
    const hash = crypto.createHash('md5').update(key).digest('hex')
    return base + path.sep + hash.slice(0, 2) + path.sep + hash.slice(0, 16)
  }
  let temps = 0
  const tempFor = (final) => `${final}.${process.pid}-${++temps}.tmp`
  return {
    set: async (key, value) => {
      const final = file(key)
      const temp = tempFor(final)
      await fsp.writeFile(temp, JSON.stringify(value))
      await fsp.rename(temp, final)
    },
    get: async (key) => {
      let text
      try {
        text = await fsp.readFile(file(key), 'utf8')
      } catch (error) {
        if (error.code === 'ENOENT') return undefined
        throw error
      }
      return JSON.parse(text)
    },
    setStream: async (key, source) => {
      const final = file(key)
      const temp = tempFor(final)
      await pipeline(source, fs.createWriteStream(temp))
      await fsp.rename(temp, final)
    },
    getStream: async (key) => fs.createReadStream(file(key)),
    close: async () => {},
  }
}

/** Extra Larder.open options from the command line ({"larderOptions": {...}}), for
 *  diagnostics such as {"compression": "none"}; run.mjs never sets them. */
let larderOptions = {}

function open(impl, dir, options) {
  switch (impl) {
    case 'larder': return openLarder(dir, { ...larderOptions, ...options?.larder })
    case 'cacache': return openCacache(dir, options?.cacache)
    case 'raw': return openRaw(dir)
    default: throw new Error(`unknown impl ${impl}`)
  }
}

// ── helpers ───────────────────────────────────────────────────────────────────

/** Runs task(i) for i in [0, n) with `conc` calls in flight. */
async function inFlight(n, conc, task) {
  let next = 0
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await task(i)
  }
  await Promise.all(Array.from({ length: Math.min(conc, n) }, worker))
}

/** A fixed permutation of [0, n): reads do not arrive in write order. */
function shuffled(n) {
  const order = Array.from({ length: n }, (_, i) => i)
  let s = 12345
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff
    const j = s % (i + 1)
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return order
}

function settle() {
  globalThis.gc?.()
  globalThis.gc?.()
}

/** Samples RSS every 20 ms; `stop()` returns the peak growth over the baseline in MiB. */
function rssSampler() {
  settle()
  const baseline = process.memoryUsage.rss()
  let peak = baseline
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss()
    if (rss > peak) peak = rss
  }, 20)
  return {
    baseline,
    stop() {
      clearInterval(timer)
      peak = Math.max(peak, process.memoryUsage.rss())
      return (peak - baseline) / 2 ** 20
    },
  }
}

/** larder fails open: a write the disk refused is dropped, not thrown. A dropped write would
 *  make a set look fast, so any drop or disk error fails the case. */
async function assertNoDrops(cache) {
  if (!cache.stats) return
  const { dropped, errors, corrupt } = await cache.stats()
  if (dropped || errors || corrupt) throw new Error(`larder reported dropped=${dropped} errors=${errors} corrupt=${corrupt}`)
}

function checkRows(value, i) {
  if (!Array.isArray(value) || value.length !== 8 || value[0].id !== i * 8) throw new Error(`wrong value for key ${i}: ${JSON.stringify(value)?.slice(0, 80)}`)
}

// ── the cases ─────────────────────────────────────────────────────────────────

const cases = {
  /** ~1 KiB ORM-like values, n distinct keys, `conc` in flight. Leaves the data in `dir`. */
  async set1k({ impl, dir, n, conc }) {
    const values = Array.from({ length: n }, (_, i) => smallValue(i))
    const keys = Array.from({ length: n }, (_, i) => smallKey(i))
    const cache = await open(impl, dir)
    settle()
    const started = performance.now()
    await inFlight(n, conc, (i) => cache.set(keys[i], values[i]))
    const seconds = (performance.now() - started) / 1000
    await assertNoDrops(cache)
    await cache.close()
    return { metrics: { opsPerSec: n / seconds }, info: { seconds } }
  },

  /** Gets of the keys set1k wrote, from a new instance (file tier only), `conc` in flight. */
  async get1k({ impl, dir, n, conc }) {
    const keys = Array.from({ length: n }, (_, i) => smallKey(i))
    const order = shuffled(n)
    const cache = await open(impl, dir, { larder: { memory: false } })
    settle()
    const results = new Array(n)
    const started = performance.now()
    await inFlight(n, conc, async (j) => {
      const i = order[j]
      results[i] = await cache.get(keys[i])
    })
    const seconds = (performance.now() - started) / 1000
    for (let i = 0; i < n; i++) checkRows(results[i], i)
    await assertNoDrops(cache)
    await cache.close()
    return { metrics: { opsPerSec: n / seconds }, info: { seconds } }
  },

  /**
   * Hot reads from memory: `keys` entries written to disk, a new instance that holds them in
   * memory after one read each, then `iters` sequential gets cycling over them.
   * larder: memory: true. cacache: its memoization (memoize: a Map), plus the JSON.parse an
   * application needs since cacache hands back bytes. raw: a Map behind an async function,
   * the ceiling for any promise-returning get.
   */
  async mem1k({ impl, dir, keys: count, iters }) {
    const keys = Array.from({ length: count }, (_, i) => smallKey(i))
    let get
    let close = async () => {}
    let stats
    if (impl === 'raw') {
      const map = new Map(keys.map((k, i) => [k, smallValue(i)]))
      get = async (key) => map.get(key)
    } else {
      const writer = await open(impl, dir)
      for (let i = 0; i < count; i++) await writer.set(keys[i], smallValue(i))
      await assertNoDrops(writer)
    await writer.close()
      const cache = await open(impl, dir, { larder: { memory: true }, cacache: { memoize: true } })
      get = cache.get
      close = cache.close
      stats = cache.stats
    }
    for (let i = 0; i < count; i++) checkRows(await get(keys[i]), i) // fills the memory tier
    const total = iters
    const warm = Math.round(total / 5)
    for (let j = 0; j < warm; j++) await get(keys[j % count])
    settle()
    let last
    const started = performance.now()
    for (let j = 0; j < total; j++) last = await get(keys[j % count])
    const seconds = (performance.now() - started) / 1000
    checkRows(last, (total - 1) % count)
    const info = { seconds, iterations: total }
    if (stats) {
      const s = await stats()
      info.memoryHits = s.memoryHits
      info.hits = s.hits
    }
    await close()
    return { metrics: { opsPerSec: total / seconds }, info }
  },

  /** ~64 KiB semi-compressible values, n keys, sequential. Leaves the data in `dir`. */
  async set64k({ impl, dir, n }) {
    const values = Array.from({ length: n }, (_, i) => bigValue(i))
    const keys = Array.from({ length: n }, (_, i) => bigKey(i))
    const cache = await open(impl, dir)
    settle()
    const started = performance.now()
    for (let i = 0; i < n; i++) await cache.set(keys[i], values[i])
    const seconds = (performance.now() - started) / 1000
    await assertNoDrops(cache)
    await cache.close()
    const bytes = Buffer.byteLength(JSON.stringify(values[0]))
    return { metrics: { opsPerSec: n / seconds }, info: { seconds, valueBytes: bytes } }
  },

  async get64k({ impl, dir, n }) {
    const keys = Array.from({ length: n }, (_, i) => bigKey(i))
    const order = shuffled(n)
    const cache = await open(impl, dir, { larder: { memory: false } })
    settle()
    const started = performance.now()
    for (let j = 0; j < n; j++) {
      const i = order[j]
      const value = await cache.get(keys[i])
      if (value?.id !== i) throw new Error(`wrong value for key ${i}`)
    }
    const seconds = (performance.now() - started) / 1000
    await assertNoDrops(cache)
    await cache.close()
    return { metrics: { opsPerSec: n / seconds }, info: { seconds } }
  },

  /** One `mib` MiB artifact streamed in from an async generator of fresh 1 MiB chunks. */
  async streamPut({ impl, dir, mib }) {
    const pool = artifactChunks(16)
    async function* source() {
      // A fresh copy per chunk, as from a network or a file: an implementation that buffers
      // chunks shows it in RSS instead of holding references to a shared pool.
      for (let i = 0; i < mib; i++) yield Buffer.from(pool[i % pool.length])
    }
    const cache = await open(impl, dir)
    const rss = rssSampler()
    const started = performance.now()
    await cache.setStream('artifact:build-output.tar', source())
    const seconds = (performance.now() - started) / 1000
    const rssGrowthMiB = rss.stop()
    await assertNoDrops(cache)
    await cache.close()
    const onDisk = await diskBytes(dir)
    return { metrics: { mbPerSec: (mib * 2 ** 20) / 1e6 / seconds, rssGrowthMiB }, info: { seconds, baselineRssMiB: rss.baseline / 2 ** 20, onDiskMiB: onDisk / 2 ** 20 } }
  },

  /** Streams out what streamPut wrote (in `dir`), counting bytes. */
  async streamGet({ impl, dir, mib }) {
    const cache = await open(impl, dir, { larder: { memory: false } })
    const rss = rssSampler()
    const started = performance.now()
    const stream = await cache.getStream('artifact:build-output.tar')
    if (stream === undefined) throw new Error('stream entry missing')
    let bytes = 0
    for await (const chunk of stream) bytes += chunk.length
    const seconds = (performance.now() - started) / 1000
    const rssGrowthMiB = rss.stop()
    await assertNoDrops(cache)
    await cache.close()
    if (bytes !== mib * 2 ** 20) throw new Error(`streamed ${bytes} bytes, expected ${mib * 2 ** 20}`)
    return { metrics: { mbPerSec: bytes / 1e6 / seconds, rssGrowthMiB }, info: { seconds, baselineRssMiB: rss.baseline / 2 ** 20 } }
  },
}

async function diskBytes(dir) {
  let total = 0
  for (const entry of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await fsp.stat(path.join(entry.parentPath ?? entry.path, entry.name))).size
  }
  return total
}

const args = JSON.parse(process.argv[2] ?? '{}')
larderOptions = args.larderOptions ?? {}
try {
  const run = cases[args.case]
  if (!run) throw new Error(`unknown case ${args.case} (known: ${Object.keys(cases).join(', ')})`)
  const result = await run(args)
  process.stdout.write(JSON.stringify({ ok: true, case: args.case, impl: args.impl, ...result }) + '\n')
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, case: args.case, impl: args.impl, error: String(error?.stack ?? error) }) + '\n')
  process.exitCode = 1
}
