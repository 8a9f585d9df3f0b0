// CPU time of one undici CacheStore `get` of a cached ~1 KB response, per store (issue 12's
// undici goal), without fetch around it: fetch and the interceptor cost ~5-10× a store's get
// and are the same for every store, so they hide the stores' difference in reads/s, more so
// when other jobs load the machine.
//
//   npm run build && node bench/adapters-undici-cpu.mjs [--rounds 5] [--only larder,SqliteCacheStore] [--warm 100000]
//
// Each (store, round) is its own process, the stores alternating; a process stores one
// response through the store's write stream (as undici does), reads it `--warm` times untimed
// (default 100,000), then 30,000 times one at a time, and reports user + system CPU µs and
// wall µs per get (every result checked: status, a header and the body's length). Printed: the
// median of the rounds. The warm-up is the steady state a server reaches: V8 optimises a
// function once it has run enough for its size, so larder's path (JavaScript, ~2 µs of it a
// get) was still being compiled after 5,000 reads (the warm-up before 2026-12-06): its
// compiler threads then spent ~3 µs a get for the next 30,000 and its main thread ran slower
// code (`--trace-opt`; 100,000 reads: every store's last optimisation is done). SQLite's
// path is mostly native and was steady sooner. `--warm 5000` measures the cold start.
// `SqliteCacheStore` needs node:sqlite (Node ≥ 22.5).
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ORM_ROWS as ROWS } from './data.mjs'

const here = fileURLToPath(import.meta.url)
const argv = process.argv.slice(2)
const option = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)
const warm = Number(option('--warm') ?? 100_000)

/** Each store over a fresh directory `dir`; `Larder`, `LarderCacheStore`, undici's `cacheStores` given. */
const STORES = {
  larder: async ({ Larder, LarderCacheStore, dir }) => new LarderCacheStore(await Larder.open({ dir })),
  'larder (memory tier)': async ({ Larder, LarderCacheStore, dir }) => new LarderCacheStore(await Larder.open({ dir, memory: true })),
  SqliteCacheStore: ({ cacheStores, dir }) => new cacheStores.SqliteCacheStore({ location: path.join(dir, 'undici.sqlite') }),
}

async function one(name) {
  const { Larder } = await import('../dist/index.js')
  const { LarderCacheStore } = await import('../dist/adapters/undici.js')
  const { cacheStores } = await import('undici')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-undici-cpu-'))
  const store = await STORES[name]({ Larder, LarderCacheStore, cacheStores, dir })
  try {
    const body = Buffer.from(JSON.stringify(ROWS))
    const now = Date.now()
    // What undici hands a store for the bench's origin response (bench/adapters-case.mjs).
    const key = { origin: 'http://127.0.0.1:40000', method: 'GET', path: '/rows', headers: { accept: '*/*' } }
    const value = {
      statusCode: 200,
      statusMessage: 'OK',
      headers: {
        'cache-control': 'public, max-age=3600',
        'content-type': 'application/json',
        date: new Date(now).toUTCString(),
        connection: 'keep-alive',
        'keep-alive': 'timeout=5',
        'content-length': String(body.length),
      },
      cacheControlDirectives: { public: true, 'max-age': 3600 },
      cachedAt: now,
      staleAt: now + 3_600_000,
      deleteAt: now + 3_600_000,
    }
    const writable = store.createWriteStream(key, value)
    writable.end(body)
    await once(writable, 'finish')
    // A body may come as a Buffer or an array of them (larder answered an array before
    // 2026-12-06).
    const lengthOf = (got) => (Array.isArray(got) ? got.reduce((sum, chunk) => sum + chunk.length, 0) : got?.length)
    const read = async () => {
      let result = store.get(key)
      if (typeof result?.then === 'function') result = await result
      if (result?.statusCode !== 200 || result.headers['content-length'] !== String(body.length) || lengthOf(result.body) !== body.length)
        throw new Error(`${name}: wrong result`)
    }
    for (let i = 0; i < warm; i++) await read()
    const n = 30_000
    const since = process.cpuUsage()
    const started = performance.now()
    for (let i = 0; i < n; i++) await read()
    const { user, system } = process.cpuUsage(since)
    return { cpu: (user + system) / n, wall: ((performance.now() - started) * 1000) / n }
  } finally {
    await store.close?.()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (argv[0] === '--one') {
  process.stdout.write(`${JSON.stringify(await one(argv[1]))}\n`)
  process.exit(0)
}

let sqlite = true
try {
  await import('node:sqlite')
} catch {
  sqlite = false
}
const rounds = Number(option('--rounds') ?? 5)
const names = (option('--only')?.split(',') ?? Object.keys(STORES)).filter((name) => name !== 'SqliteCacheStore' || sqlite)
const results = Object.fromEntries(names.map((name) => [name, { cpu: [], wall: [] }]))
const load = () => os.loadavg()[0].toFixed(1)
const loads = [load()]
for (let round = 0; round < rounds; round++) {
  for (const name of names) {
    const out = JSON.parse(
      execFileSync(process.execPath, [here, '--one', name, '--warm', String(warm)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .at(-1),
    )
    results[name].cpu.push(out.cpu)
    results[name].wall.push(out.wall)
  }
  loads.push(load())
}
const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1]
console.log(
  `node ${process.version}; ${rounds} rounds of ${warm} reads untimed, then 30,000 timed; load average (1 min) at the start and after each round: ${loads.join(', ')}`,
)
console.log('| store | CPU µs per get (min–max) | wall µs per get |\n|---|---:|---:|')
for (const name of names) {
  const { cpu, wall } = results[name]
  console.log(
    `| ${name} | ${median(cpu).toFixed(2)} (${Math.min(...cpu).toFixed(2)}–${Math.max(...cpu).toFixed(2)}) | ${median(wall).toFixed(2)} |`,
  )
}
if (!sqlite) console.log(`(SqliteCacheStore needs node:sqlite, which Node ${process.version} lacks)`)
