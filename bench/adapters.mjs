// The adapters' benchmark (issue 12): a cached read through each host library (Keyv's get, fetch
// through undici's cache interceptor, a cached TypeORM find, a cached Drizzle select, a cached
// MikroORM find), with larder behind it and with the store its users would otherwise pick, side
// by side in one run.
//
//   npm run bench:adapters                       # 3 runs: at least 3,000 sequential reads, 10,000 at 16 in flight (each at least 300 ms)
//   node --import tsx bench/adapters.mjs --quick  # 1 run of 300 / 1,000 (after npm run build)
//   node --import tsx bench/adapters.mjs --only keyv,undici --runs 5
//
// Every measurement is its own `node bench/adapters-case.mjs` process (HOSTS there lists the
// stores). Runs interleave: run 1 of every case, then run 2, ..., the order of stores rotating
// each run, with `sync` before each case; the report gives medians, with the min–max of the
// throughputs. PostgreSQL (the TypeORM row) is started once for the whole run, as the tests do
// (tsx is needed for that helper only). The report goes to stdout and to
// bench/results/adapters-<date>-node<major>.md, the raw samples beside it as .json.
import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { HOSTS } from './adapters-case.mjs'
import { keyvSqlitePeer } from './adapters-peers.mjs'
import { startPostgres } from '../test/adapters/postgres.ts'

const run = promisify(execFile)
const here = path.dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const option = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)
const quick = argv.includes('--quick')
const runs = Number(option('--runs') ?? (quick ? 1 : 3))
const only = option('--only')?.split(',')
const sizes = { seq: quick ? 300 : 3000, conc: quick ? 1000 : 10000 }

let sqlite = true
try {
  await import('node:sqlite')
} catch {
  sqlite = false
}
const notes = []
if (!sqlite)
  notes.push(`undici's SqliteCacheStore needs node:sqlite, which Node ${process.version} lacks: its row is in the Node 24 report.`)
notes.push(
  "Drizzle ships no file or database cache (its own is Upstash Redis), and MikroORM's result cache has only its memory adapter: their rows compare with the query itself.",
)
notes.push(
  'Keyv: keyv-file holds the whole cache in memory and rewrites one JSON file (100 ms write delay); a get is a Map read once the file is loaded, and its file is not safe for two processes.',
)
// @keyv/sqlite: the database-backed Keyv store, installed outside the repository (its native
// sqlite3 build script is not allowed in package.json); skipped, with the reason, if that fails.
let keyvSqlite
if (only === undefined || only.includes('keyv')) {
  keyvSqlite = keyvSqlitePeer()
  if (typeof keyvSqlite === 'string') {
    notes.push(`Keyv: the @keyv/sqlite row is skipped: ${keyvSqlite}.`)
    keyvSqlite = undefined
  } else {
    notes.push(
      `Keyv: @keyv/sqlite (${keyvSqlite.versions}, installed by the bench into ${keyvSqlite.dir.replace(os.homedir(), '~')}, outside the repository) keeps every entry in one SQLite file (its default table, no WAL pragma); each get is a SELECT through the native sqlite3 package's thread pool.`,
    )
  }
}

notes.push(
  "Keyv: with Keyv's default serialization every get, whatever the store, parses the string Keyv stored (JSON.parse with @keyv/serialize's reviver), the largest single cost of a get answered from memory; the rows 'Keyv serialize off' use Keyv's documented `serialize: undefined, deserialize: undefined` (the store holds and answers the `{ value, expires }` object) and are compared with each other only.",
)
notes.push(
  'CPU µs per read: user + system time of the case process over the timed reads, divided by the reads (the median of the runs); it moves far less with the load of other jobs on the machine than reads per second do.',
)

const hosts = Object.entries(HOSTS).filter(([host]) => only === undefined || only.includes(host))
let pg
if (hosts.some(([host]) => host === 'typeorm')) {
  pg = await startPostgres()
  if (typeof pg === 'string') {
    notes.push(`TypeORM: skipped (${pg}).`)
    pg = undefined
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-bench-adapters-'))
const samples = {} // `${host}\t${store}` → [{ p50, p99, opsSeq, opsC16 }]
const startedAt = Date.now()
const load = () =>
  os
    .loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')
const loadBefore = load()
try {
  for (let r = 0; r < runs; r++) {
    for (const [host, { stores }] of hosts) {
      if (host === 'typeorm' && pg === undefined) continue
      const present = stores.filter(
        (s) => s.needs === undefined || (s.needs === 'node:sqlite' && sqlite) || (s.needs === '@keyv/sqlite' && keyvSqlite !== undefined),
      )
      const rotated = present.map((_, i) => present[(i + r) % present.length])
      for (const store of rotated) {
        const dir = fs.mkdtempSync(path.join(work, `${host}-`))
        try {
          execFileSync('sync')
        } catch {
          // no sync(1): more noise, nothing wrong
        }
        const args = { host, store: store.name, dir, ...sizes, pgPort: pg?.port, keyvSqliteDir: keyvSqlite?.dir }
        const { stdout } = await run(process.execPath, ['--expose-gc', path.join(here, 'adapters-case.mjs'), JSON.stringify(args)], {
          timeout: 600_000,
          maxBuffer: 1 << 20,
        }).catch((error) => ({ stdout: error.stdout ?? JSON.stringify({ ok: false, error: error.message }) }))
        const result = JSON.parse(stdout.trim().split('\n').at(-1))
        if (!result.ok) throw new Error(`${host} / ${store.name}: ${result.error}`)
        ;(samples[`${host}\t${store.name}`] ??= []).push({
          p50: result.p50,
          p99: result.p99,
          opsSeq: result.opsSeq,
          opsC16: result.opsC16,
          cpuSeq: result.cpuSeq,
          cpuC16: result.cpuC16,
          load: os.loadavg()[0],
        })
        fs.rmSync(dir, { recursive: true, force: true })
        process.stderr.write(
          `run ${r + 1}/${runs} ${host} / ${store.name}: p50 ${result.p50.toFixed(0)} µs, ${result.opsSeq.toFixed(0)} reads/s at 1, ${result.opsC16.toFixed(0)} at 16, CPU ${result.cpuSeq.toFixed(1)} / ${result.cpuC16.toFixed(1)} µs per read; load ${load()}\n`,
        )
      }
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true })
  if (pg !== undefined) await pg.stop()
}

// ── report ──
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const fmt = (n) => Math.round(n).toLocaleString('en-US')
const spread = (values) => (values.length > 1 ? ` (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})` : '')
const versionOf = (name) => JSON.parse(fs.readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version
const versions = ['keyv', 'keyv-file', 'undici', 'typeorm', 'pg', 'drizzle-orm', '@libsql/client', '@mikro-orm/core']
  .map((name) => `${name} ${versionOf(name)}`)
  .concat(keyvSqlite === undefined ? [] : [keyvSqlite.versions])
  .join(', ')
const medians = {}
const lines = [
  '# Adapters: cached reads through the host library',
  '',
  // The warm-up is adapters-case.mjs's WARM_UP and WARM_UP_MS.
  `${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}; ${quick ? 'quick: ' : ''}after at least 1,000 warm-up reads and 3 s of them, at least ${sizes.seq} sequential reads (and 300 ms of them), then at least ${sizes.conc} with 16 in flight (as many more as the sequential part had), per case; each case its own process; medians of ${runs} interleaved run${runs === 1 ? '' : 's'}${runs > 1 ? ' (min–max)' : ''}; ${((Date.now() - startedAt) / 1000).toFixed(0)} s; load average ${loadBefore} before, ${load()} after. ${versions}.`,
  `Command: \`${quick ? 'node --import tsx bench/adapters.mjs --quick' : 'npm run bench:adapters'}${argv.length > (quick ? 1 : 0) ? `${quick ? '' : ' --'} ${argv.filter((a) => a !== '--quick').join(' ')}` : ''}\`.`,
  '',
  '| host library: operation | store | p50 µs | p99 µs | reads/s, 1 in flight | reads/s, 16 in flight | CPU µs per read, 1 / 16 in flight | load average (1 min) after each run |',
  '|---|---|---:|---:|---:|---:|---:|---:|',
]
for (const [host, { title, stores }] of hosts) {
  for (const store of stores) {
    const s = samples[`${host}\t${store.name}`]
    if (s === undefined) continue
    const m = {
      p50: median(s.map((x) => x.p50)),
      p99: median(s.map((x) => x.p99)),
      opsSeq: median(s.map((x) => x.opsSeq)),
      opsC16: median(s.map((x) => x.opsC16)),
      cpuSeq: median(s.map((x) => x.cpuSeq)),
      cpuC16: median(s.map((x) => x.cpuC16)),
    }
    medians[`${host}\t${store.name}`] = m
    lines.push(
      `| ${title} | ${store.name} | ${fmt(m.p50)} | ${fmt(m.p99)} | ${fmt(m.opsSeq)}${spread(s.map((x) => x.opsSeq))} | ${fmt(m.opsC16)}${spread(s.map((x) => x.opsC16))} | ${m.cpuSeq.toFixed(1)} / ${m.cpuC16.toFixed(1)} | ${s.map((x) => x.load?.toFixed(1) ?? '?').join(', ')} |`,
    )
  }
}
// Goal (issue 12): faster than each file- or database-backed store, in both throughputs.
lines.push(
  '',
  '## Goal: faster than each file- or database-backed alternative (medians, reads/s)',
  '',
  '| host library | larder store | vs | 1 in flight | 16 in flight | goal | CPU per read, peer / larder (1 / 16 in flight) |',
  '|---|---|---|---:|---:|---|---:|',
)
for (const [host, { stores }] of hosts) {
  const allPeers = stores.filter((s) => s.persistent && !s.name.startsWith('larder') && medians[`${host}\t${s.name}`])
  for (const ours of stores.filter((s) => s.name.startsWith('larder') && medians[`${host}\t${s.name}`])) {
    const a = medians[`${host}\t${ours.name}`]
    // A store in a `group` (a configuration of the host library) is compared within it only.
    const peers = allPeers.filter((peer) => peer.group === ours.group)
    if (peers.length === 0) {
      lines.push(`| ${host} | ${ours.name} | (no file or database peer) | | | n/a | |`)
      continue
    }
    for (const peer of peers) {
      const b = medians[`${host}\t${peer.name}`]
      const r1 = a.opsSeq / b.opsSeq
      const r16 = a.opsC16 / b.opsC16
      lines.push(
        `| ${host} | ${ours.name} | ${peer.name} | ${r1.toFixed(2)}× | ${r16.toFixed(2)}× | ${r1 > 1 && r16 > 1 ? 'PASS' : 'MISS'} | ${(b.cpuSeq / a.cpuSeq).toFixed(2)}× / ${(b.cpuC16 / a.cpuC16).toFixed(2)}× |`,
      )
    }
  }
}
lines.push('', ...notes.map((n) => `- ${n}`))
const report = `${lines.join('\n')}\n`
process.stdout.write(report)
const base = path.join(
  here,
  'results',
  `adapters-${new Date().toISOString().slice(0, 10)}-node${process.versions.node.split('.')[0]}${quick ? '-quick' : only ? '-partial' : ''}`,
)
fs.writeFileSync(`${base}.md`, report)
fs.writeFileSync(`${base}.json`, `${JSON.stringify({ node: process.version, runs, sizes, versions, samples }, null, 1)}\n`)
