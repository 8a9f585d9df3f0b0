// The core benchmark: larder against cacache and the raw file-system limit.
//
//   npm run bench              # full: 5 runs, 5,000 keys, 256 MiB stream
//   npm run bench -- --quick   # quick: 3 runs, 2,000 keys, 64 MiB stream (same as npm run bench:quick)
//   node bench/run.mjs --runs 7 --only set1k-seq,get1k-seq --out /tmp/bench
//   node bench/run.mjs --larder /tmp/other/dist/index.js --larder-label "v0.0.9"   # another build
//
// Every measurement runs in its own fresh `node bench/case.mjs` process. Runs are interleaved:
// run 1 of every case for larder, cacache and raw, then run 2, ... (the order of the three
// rotates each run), so a slow spell of the disk hits all of them alike. The report gives
// the median and min–max of the runs. See bench/README.md.
import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const CASE = path.join(here, 'case.mjs')
const IMPLS = ['larder', 'cacache', 'raw']

// ── options ───────────────────────────────────────────────────────────────────

function parseArgs(argv) {
  const args = { quick: false, runs: undefined, only: undefined, out: path.join(here, 'results'), larder: undefined, larderLabel: undefined }
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split('=', 2)
    const value = () => inline ?? argv[++i]
    if (name === '--quick') args.quick = true
    else if (name === '--runs') args.runs = Number(value())
    else if (name === '--only') args.only = value().split(',')
    else if (name === '--out') args.out = path.resolve(value())
    else if (name === '--larder') args.larder = path.resolve(value())
    else if (name === '--larder-label') args.larderLabel = value()
    else if (name === '--help' || name === '-h') {
      console.log('usage: node bench/run.mjs [--quick] [--runs N] [--only step,step] [--out results-dir]\n' +
        '                         [--larder path/to/built/index.js --larder-label "what it is"]')
      process.exit(0)
    } else throw new Error(`unknown argument ${argv[i]} (try --help)`)
  }
  if (args.runs !== undefined && !(Number.isInteger(args.runs) && args.runs >= 1)) throw new Error('--runs needs a positive integer')
  return args
}

const args = parseArgs(process.argv.slice(2))
const config = args.quick
  ? { mode: 'quick', runs: 3, smallN: 2000, bigN: 300, memKeys: 1000, memIters: 1_000_000, streamMiB: 64 }
  : { mode: 'full', runs: 5, smallN: 5000, bigN: 1000, memKeys: 1000, memIters: 1_000_000, streamMiB: 256 }
if (args.runs !== undefined) config.runs = args.runs

// ── what is measured ─────────────────────────────────────────────────────────
// A step is one case for every implementation. `makes` names a data directory the step
// leaves behind; `uses` reads one; neither: a scratch dir. All are removed at the end.

const STEPS = [
  { id: 'set1k-seq', case: 'set1k', conc: 1, n: config.smallN, makes: 'small' },
  { id: 'set1k-c16', case: 'set1k', conc: 16, n: config.smallN },
  { id: 'get1k-seq', case: 'get1k', conc: 1, n: config.smallN, uses: 'small' },
  { id: 'get1k-c16', case: 'get1k', conc: 16, n: config.smallN, uses: 'small' },
  { id: 'mem1k', case: 'mem1k', keys: config.memKeys, iters: config.memIters },
  { id: 'set64k', case: 'set64k', n: config.bigN, makes: 'big' },
  { id: 'get64k', case: 'get64k', n: config.bigN, uses: 'big' },
  { id: 'streamPut', case: 'streamPut', mib: config.streamMiB, makes: 'stream' },
  { id: 'streamGet', case: 'streamGet', mib: config.streamMiB, uses: 'stream' },
].filter((step) => args.only === undefined || args.only.includes(step.id))

const n = (x) => x.toLocaleString('en-US')
const TABLES = [
  {
    title: `1 KiB values: ${n(config.smallN)} distinct keys, ~1.1 KB ORM-like JSON (ops/s, higher is better)`,
    rows: [
      { label: 'set, 1 in flight', step: 'set1k-seq', metric: 'opsPerSec', targets: [['cacache', 3], ['raw', 0.9]] },
      { label: 'set, 16 in flight', step: 'set1k-c16', metric: 'opsPerSec', targets: [['cacache', 3], ['raw', 0.9]] },
      { label: 'get (file tier, new instance), 1 in flight', step: 'get1k-seq', metric: 'opsPerSec', targets: [['cacache', 3]] },
      { label: 'get (file tier, new instance), 16 in flight', step: 'get1k-c16', metric: 'opsPerSec', targets: [['cacache', 3]] },
    ],
  },
  {
    title: `Memory tier: ${n(config.memIters)} sequential gets over ${n(config.memKeys)} warmed keys (ops/s). ` +
      'larder `memory: true` · cacache `memoize` (a Map) + JSON.parse · raw = a Map behind an async function',
    rows: [
      { label: 'get, memory tier, 1 in flight', step: 'mem1k', metric: 'opsPerSec', absolute: 1_000_000 },
    ],
  },
  {
    title: `64 KiB values: ${n(config.bigN)} keys, ~64 KB semi-compressible JSON, 1 in flight (ops/s)`,
    rows: [
      { label: 'set', step: 'set64k', metric: 'opsPerSec' },
      { label: 'get (file tier, new instance)', step: 'get64k', metric: 'opsPerSec' },
    ],
  },
  {
    title: `Stream: one ${config.streamMiB} MiB tar-like artifact (~50 % compressible), 1 MiB chunks in`,
    rows: [
      { label: 'setStream / put.stream (MB/s)', step: 'streamPut', metric: 'mbPerSec', targets: [['cacache', 1]] },
      { label: 'getStream / get.stream (MB/s)', step: 'streamGet', metric: 'mbPerSec', targets: [['cacache', 1]] },
      { label: 'put: peak RSS growth (MiB, lower is better)', step: 'streamPut', metric: 'rssGrowthMiB', ceiling: 64, digits: 1 },
      { label: 'get: peak RSS growth (MiB, lower is better)', step: 'streamGet', metric: 'rssGrowthMiB', ceiling: 64, digits: 1 },
    ],
  },
]

// ── running ───────────────────────────────────────────────────────────────────

const liveDirs = new Set()
function cleanupSync() {
  for (const dir of liveDirs) fs.rmSync(dir, { recursive: true, force: true })
  liveDirs.clear()
  try {
    fs.rmdirSync(path.join(root, 'node_modules', '.cache', 'larder-bench')) // only if empty
  } catch {
    // another benchmark is running, or it is already gone
  }
}
process.on('exit', cleanupSync)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    cleanupSync()
    process.exit(130)
  })
}

async function tempDir(label) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `larder-bench-${label}-`))
  liveDirs.add(dir)
  return dir
}

async function removeDir(dir) {
  await fsp.rm(dir, { recursive: true, force: true })
  liveDirs.delete(dir)
}

/** Flushes dirty pages so one case's write-back does not land in the next case's timing. */
function flushDisk() {
  try {
    execFileSync('sync', { stdio: 'ignore', timeout: 120_000 })
  } catch {
    // no sync(1): the runs still interleave, only with more noise
  }
}

function describeEnvironment() {
  const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'))
  return {
    date: new Date().toISOString(),
    node: process.version,
    larder: args.larder === undefined
      ? `${readJson(path.join(root, 'package.json')).version} @ ${gitDescribe()}`
      : `${args.larderLabel ?? 'build'} (${args.larder})`,
    cacache: readJson(path.join(root, 'node_modules', 'cacache', 'package.json')).version,
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    tmpdir: os.tmpdir(),
    // Other work on the machine skews everything: the load average before and after says how much.
    loadBefore: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  }
}

/**
 * Microseconds per sequential `fs.promises.stat`: one trip through libuv's thread pool. On an
 * idle VM a sleeping vCPU is slow to wake, and this measured 60–77 µs here against 17–32 µs
 * with another process keeping a CPU busy. Every 1-in-flight async fs call pays it (raw,
 * cacache; larder's small-file path is synchronous and does not), so it is printed with the
 * results to explain runs that differ.
 */
async function poolRoundTrip() {
  for (let i = 0; i < 200; i++) await fsp.stat(root)
  const t0 = performance.now()
  for (let i = 0; i < 2000; i++) await fsp.stat(root)
  return Math.round(((performance.now() - t0) * 1000) / 2000)
}

function gitDescribe() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).trim() !== ''
    return commit + (dirty ? ' + uncommitted src changes' : '')
  } catch {
    return 'unknown'
  }
}

function runCase(caseArgs) {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--expose-gc', CASE, JSON.stringify(caseArgs)], { cwd: root, timeout: 10 * 60_000, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop()
      let result
      try {
        result = JSON.parse(line)
      } catch {
        result = { ok: false, error: `${error?.message ?? 'no output'}\n${stderr}`.trim() }
      }
      if (!result.ok && stderr.trim()) result.stderr = stderr.trim()
      resolve(result)
    })
  })
}

// Every case imports the same build: a copy of dist/index.js taken now (inside node_modules,
// so its package imports still resolve), not whatever a concurrent `npm run build` leaves.
const snapshotDir = path.join(root, 'node_modules', '.cache', 'larder-bench', String(process.pid))
const larderModule = path.join(snapshotDir, 'index.js')
fs.mkdirSync(snapshotDir, { recursive: true })
liveDirs.add(snapshotDir)
fs.copyFileSync(args.larder ?? path.join(root, 'dist', 'index.js'), larderModule)
const env = describeEnvironment()
env.poolRoundTripBefore = await poolRoundTrip()

const samples = {} // step → impl → [{ metrics, info }]
const failures = []
const started = Date.now()

// Nothing is deleted until every case has run. Measured on this VM (ext4, `discard`):
// 5,000 sets right after `rm -rf` of another 5,000-file directory took 1.5–1.8 s, against
// 0.40–0.47 s when nothing had been deleted — whichever case followed a deletion paid 4×.
// For the same reason one untimed warm-up case absorbs deletions made before the run
// (an earlier benchmark's clean-up, other work on the machine).
{
  const dir = await tempDir('warmup')
  flushDisk()
  process.stderr.write('warm-up (untimed) ...\n')
  await runCase({ case: 'set1k', impl: 'raw', dir, n: config.smallN, conc: 1 })
}

for (let run = 0; run < config.runs; run++) {
  const order = IMPLS.map((_, i) => IMPLS[(i + run) % IMPLS.length])
  const dataDirs = {} // `${name}:${impl}` → dir
  for (const step of STEPS) {
    for (const impl of order) {
      let dir
      if (step.uses) dir = dataDirs[`${step.uses}:${impl}`]
      else dir = await tempDir(step.id)
      if (step.makes) dataDirs[`${step.makes}:${impl}`] = dir
      if (dir === undefined) {
        failures.push({ run: run + 1, step: step.id, impl, error: `no data: ${step.uses} was not made (run with its set step)` })
        continue
      }
      flushDisk()
      const { id, makes, uses, ...caseArgs } = step
      const t0 = performance.now()
      const result = await runCase({ ...caseArgs, impl, dir, larderModule })
      const wall = (performance.now() - t0) / 1000
      if (result.ok) {
        ;((samples[id] ??= {})[impl] ??= []).push({ run: run + 1, metrics: result.metrics, info: result.info })
        const shown = Object.entries(result.metrics).map(([k, v]) => `${k} ${fmt(v, v < 100 ? 1 : 0)}`).join(', ')
        process.stderr.write(`[run ${run + 1}/${config.runs}] ${id.padEnd(10)} ${impl.padEnd(8)} ${shown}  (${wall.toFixed(1)} s)\n`)
      } else {
        failures.push({ run: run + 1, step: id, impl, error: result.error, stderr: result.stderr })
        process.stderr.write(`[run ${run + 1}/${config.runs}] ${id.padEnd(10)} ${impl.padEnd(8)} FAILED: ${String(result.error).split('\n')[0]}\n`)
      }
    }
  }
}
const elapsed = (Date.now() - started) / 1000
process.stderr.write('removing the benchmark data ...\n')
for (const dir of [...liveDirs]) if (dir !== snapshotDir) await removeDir(dir)
env.loadAfter = os.loadavg().map((l) => l.toFixed(2)).join(' ')
env.poolRoundTripAfter = await poolRoundTrip()

// ── report ────────────────────────────────────────────────────────────────────

function fmt(value, digits = 0) {
  if (value === undefined || Number.isNaN(value)) return '–'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function summary(values) {
  if (!values || values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length }
}

function stat(step, impl, metric) {
  return summary(samples[step]?.[impl]?.map((s) => s.metrics[metric]))
}

function cell(s, digits) {
  if (s === undefined) return 'n/a'
  return `**${fmt(s.median, digits)}** (${fmt(s.min, digits)}–${fmt(s.max, digits)})`
}

function ratio(a, b) {
  if (a === undefined || b === undefined || b.median === 0) return undefined
  return a.median / b.median
}

const verdict = (ok) => (ok ? 'PASS' : 'MISS')
const targetRows = []

function targetCell(row, s, perImpl) {
  const parts = []
  if (s === undefined) return ''
  for (const [other, factor] of row.targets ?? []) {
    const r = ratio(s, perImpl[other])
    if (r === undefined) continue
    const ok = r >= factor
    const name = other === 'raw' ? 'raw' : other
    parts.push(`≥ ${factor}× ${name}: ${verdict(ok)}`)
    targetRows.push([`${row.label.replace(/ \(.*\)$/, '')}: ≥ ${factor}× ${name}`, `${r.toFixed(2)}×`, verdict(ok)])
  }
  if (row.absolute !== undefined) {
    const ok = s.median >= row.absolute
    parts.push(`≥ ${fmt(row.absolute)}: ${verdict(ok)}`)
    targetRows.push([`${row.label}: ≥ ${fmt(row.absolute)} ops/s`, fmt(s.median), verdict(ok)])
  }
  if (row.ceiling !== undefined) {
    const ok = s.median <= row.ceiling
    parts.push(`≤ ${row.ceiling} MiB: ${verdict(ok)}`)
    targetRows.push([`stream ${row.label.replace(/ \(.*\)$/, '')}: ≤ ${row.ceiling} MiB`, `${fmt(s.median, 1)} MiB`, verdict(ok)])
  }
  return parts.join('; ')
}

const lines = []
lines.push(`# larder core benchmark — ${env.date.slice(0, 10)} (${config.mode})`, '')
lines.push(`- node ${env.node} · cacache ${env.cacache} · larder ${env.larder}`)
lines.push(`- ${env.cpu} · ${env.memory} RAM · ${env.os} · data in ${env.tmpdir}`)
lines.push(`- machine state: load average ${env.loadBefore} before, ${env.loadAfter} after; ` +
  `thread-pool round trip (sequential fs.promises.stat) ${env.poolRoundTripBefore} µs before, ${env.poolRoundTripAfter} µs after`)
lines.push(`- ${config.runs} runs per case, each in a fresh process, interleaved across implementations; ` +
  `cells are **median** (min–max); ratios are of medians. Total time ${fmt(elapsed / 60, 1)} min.`)
lines.push('- larder: defaults (JSON, deflate level 1 from 4 KiB, no memory tier unless stated). ' +
  'cacache: `put`/`get` with defaults (sha512), values JSON-encoded by the caller. ' +
  'raw limit: `fs.promises.writeFile(temp)` + `rename` into 256 pre-made partitions / `readFile` + `JSON.parse`; streams: `createWriteStream` + `rename` / `createReadStream`.')
lines.push('')

for (const table of TABLES) {
  const present = table.rows.filter((row) => samples[row.step] !== undefined)
  if (present.length === 0) continue
  lines.push(`## ${table.title}`, '')
  lines.push('| case | larder | cacache | raw limit | larder/cacache | larder/raw | target |')
  lines.push('|---|---:|---:|---:|---:|---:|---|')
  for (const row of present) {
    const perImpl = Object.fromEntries(IMPLS.map((impl) => [impl, stat(row.step, impl, row.metric)]))
    const digits = row.digits ?? 0
    const rc = ratio(perImpl.larder, perImpl.cacache)
    const rr = ratio(perImpl.larder, perImpl.raw)
    lines.push(`| ${row.label} | ${cell(perImpl.larder, digits)} | ${cell(perImpl.cacache, digits)} | ${cell(perImpl.raw, digits)} | ` +
      `${rc === undefined ? '–' : rc.toFixed(2) + '×'} | ${rr === undefined ? '–' : rr.toFixed(2) + '×'} | ${targetCell(row, perImpl.larder, perImpl)} |`)
  }
  lines.push('')
}

if (targetRows.length > 0) {
  lines.push('## Targets (on medians)', '')
  lines.push('| target | measured | result |', '|---|---:|---|')
  for (const [what, measured, result] of targetRows) lines.push(`| ${what} | ${measured} | ${result} |`)
  lines.push('')
}

const extras = []
const stream = samples.streamPut?.larder?.map((s) => s.info.onDiskMiB)
if (stream?.length) {
  const disk = (impl) => summary(samples.streamPut?.[impl]?.map((s) => s.info.onDiskMiB))
  extras.push(`- Stream entry on disk: larder ${fmt(disk('larder')?.median, 1)} MiB, cacache ${fmt(disk('cacache')?.median, 1)} MiB, raw ${fmt(disk('raw')?.median, 1)} MiB (of ${config.streamMiB} MiB).`)
}
const bigBytes = samples.set64k?.larder?.[0]?.info.valueBytes
if (bigBytes) extras.push(`- 64 KiB case: each value serializes to ${fmt(bigBytes)} bytes of JSON.`)
if (failures.length > 0) {
  extras.push(`- **${failures.length} measurement(s) failed** (see the JSON file):`)
  for (const f of failures) extras.push(`  - run ${f.run} ${f.step} ${f.impl}: ${String(f.error).split('\n')[0]}`)
}
if (extras.length > 0) lines.push('## Notes', '', ...extras, '')

const markdown = lines.join('\n')
process.stdout.write('\n' + markdown)

const resultsDir = args.out
await fsp.mkdir(resultsDir, { recursive: true })
const base = path.join(resultsDir, `${env.date.slice(0, 10)}-core${config.mode === 'quick' ? '-quick' : ''}`)
await fsp.writeFile(base + '.md', markdown)
const json = JSON.stringify({ env, config, steps: STEPS, elapsedSeconds: elapsed, samples, failures }, null, 2) + '\n'
await fsp.writeFile(base + '.json.tmp', json)
await fsp.rename(base + '.json.tmp', base + '.json')
process.stderr.write(`\nwrote ${path.relative(root, base)}.md and .json in ${fmt(elapsed, 0)} s\n`)
if (failures.length > 0) process.exitCode = 1
