// CPU time of one Keyv 5 get answered from memory, per store (issue 12's Keyv goal): where the
// time of a get goes, measured so that the load of other jobs on the machine moves it little.
//
//   npm run build && node bench/adapters-keyv-cpu.mjs [--rounds 5] [--only larder,keyv-file] [--warm 100000]
//
// Each (store, round) is its own process, the stores alternating; a process fills 1,000 keys
// (~150 B objects), reads `--warm` untimed (default 100,000: after 10,000, the default before
// 2026-12-06, V8 was still compiling larder's path, 4.38 against 3.83 µs of CPU a get after
// 300,000; keyv-file's moved 3.72 → 3.56), then 50,000 one at a time and 50,000 with 16 in
// flight, and reports user + system CPU µs per get for each (every value checked). Printed:
// the median of the rounds per store. The stores beside larder's adapter say where its time
// goes: a bare store that hands Keyv larder's get with and without a tag on each entry (the
// adapter tags every entry with its namespace, so a memory hit asks the tag clock: one stat),
// and the stores with Keyv's own serialization off.
import { execFileSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(import.meta.url)
const argv = process.argv.slice(2)
const option = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)
const warm = Number(option('--warm') ?? 100_000)

/** Each store: how a Keyv over it is made (`cache`: a larder cache with the memory tier). */
const STORES = {
  larder: ({ Keyv, KeyvLarder, cache }) => new Keyv({ store: new KeyvLarder(cache) }),
  'keyv-file': ({ Keyv, KeyvFile, dir }) =>
    new Keyv({ store: new KeyvFile({ filename: path.join(dir, 'keyv-file.json'), writeDelay: 100 }) }),
  'Keyv default (Map)': ({ Keyv }) => new Keyv(),
  'bare store over larder (tagged)': ({ Keyv, cache }) => new Keyv({ store: bare(cache, ['keyv:keyv']) }),
  'bare store over larder (untagged)': ({ Keyv, cache }) => new Keyv({ store: bare(cache, []) }),
  'larder (Keyv serialize off)': ({ Keyv, KeyvLarder, cache }) =>
    new Keyv({ store: new KeyvLarder(cache), serialize: undefined, deserialize: undefined }),
  'keyv-file (Keyv serialize off)': ({ Keyv, KeyvFile, dir }) =>
    new Keyv({
      store: new KeyvFile({ filename: path.join(dir, 'keyv-file.json'), writeDelay: 100 }),
      serialize: undefined,
      deserialize: undefined,
    }),
}

/** The least a Keyv store over larder can be: get and set straight through. */
function bare(cache, tags) {
  return Object.assign(new EventEmitter(), {
    opts: { dialect: 'bare', url: '' },
    get: (key) => cache.get(key),
    set: (key, value, ttl) => cache.set(key, value, { ttl, tags }).then(() => true),
    delete: (key) => cache.delete(key),
    clear: () => Promise.resolve(),
  })
}

async function one(name) {
  const { Larder } = await import('../dist/index.js')
  const { KeyvLarder } = await import('../dist/adapters/keyv.js')
  const require = createRequire(import.meta.url)
  const { default: Keyv } = await import('keyv')
  const { KeyvFile } = require('keyv-file')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-keyv-cpu-'))
  const cache = await Larder.open({ dir: path.join(dir, 'larder'), memory: true })
  try {
    const keyv = STORES[name]({ Keyv, KeyvLarder, KeyvFile, cache, dir })
    const keys = Array.from({ length: 1000 }, (_, i) => `user:${i}`)
    const row = { id: 1, name: 'user 1', email: 'user1@example.com', createdAt: '2026-11-30T12:00:00.000Z', active: true, score: 12.5 }
    await Promise.all(keys.map((key, i) => keyv.set(key, { ...row, key: i })))
    const read = async (i) => {
      if ((await keyv.get(keys[i % 1000]))?.key !== i % 1000) throw new Error(`${name}: wrong value for ${keys[i % 1000]}`)
    }
    for (let i = 0; i < warm; i++) await read(i)
    const n = 50_000
    const cpu = (since) => {
      const { user, system } = process.cpuUsage(since)
      return (user + system) / n
    }
    let since = process.cpuUsage()
    for (let i = 0; i < n; i++) await read(i)
    const seq = cpu(since)
    since = process.cpuUsage()
    let next = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < n; i = next++) await read(i)
      }),
    )
    return { seq, c16: cpu(since) }
  } finally {
    await cache.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

if (argv[0] === '--one') {
  process.stdout.write(`${JSON.stringify(await one(argv[1]))}\n`)
  process.exit(0) // keyv-file keeps a timer
}

const rounds = Number(option('--rounds') ?? 5)
const names = option('--only')?.split(',') ?? Object.keys(STORES)
const results = Object.fromEntries(names.map((name) => [name, { seq: [], c16: [] }]))
const load = () => os.loadavg()[0].toFixed(1)
const loadBefore = load()
for (let round = 0; round < rounds; round++) {
  for (const name of names) {
    const out = JSON.parse(
      execFileSync(process.execPath, [here, '--one', name, '--warm', String(warm)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .at(-1),
    )
    results[name].seq.push(out.seq)
    results[name].c16.push(out.c16)
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1]
console.log(`node ${process.version}; ${rounds} rounds of ${warm} reads untimed first; load average ${loadBefore} before, ${load()} after`)
console.log('| store | CPU µs per get, 1 in flight | 16 in flight |\n|---|---:|---:|')
for (const name of names) console.log(`| ${name} | ${median(results[name].seq).toFixed(2)} | ${median(results[name].c16).toFixed(2)} |`)
