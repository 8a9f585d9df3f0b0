// The benchmark runner (issue #5): larder side by side with its peers and the machine's limits.
//
//   npm run bench              # full: 3 runs; 20,000 keys, 256 MiB artifacts, 100,000-entry prune (~25 min)
//   npm run bench -- --quick   # smoke: 3 runs of small sizes (~3 min)
//   node bench/run.mjs --only W1,W2-get-seq --impls larder,cacache --runs 5   # a subset (after npm run build)
//   node bench/run.mjs --larder /tmp/other/dist/index.js --larder-label "v0.0.9"   # another build
//   node bench/run.mjs --only W7 --larder-options '{"maintenance":{"workers":2}}'   # larder configured otherwise
//
// Every measurement runs in its own fresh `node bench/case.mjs` process. Runs are interleaved:
// run 1 of every step for every implementation, then run 2, ... (the order of implementations
// rotates each run), so a slow spell of the machine hits all of them alike. Writes the Markdown
// report to stdout and bench/results/<date>.md, the raw samples to <date>.json, and (full runs)
// the README excerpt to bench/results/LATEST.md. See bench/README.md.
import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { installedVersions } from './peers/index.mjs'
import { CONFIGS, stepsFor } from './plan.mjs'
import { fmt, writeReport } from './report.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const CASE = path.join(here, 'case.mjs')

// ── options ───────────────────────────────────────────────────────────────────

function parseArgs(argv) {
  const args = {
    quick: false,
    runs: undefined,
    only: undefined,
    impls: undefined,
    out: path.join(here, 'results'),
    larder: undefined,
    larderLabel: undefined,
    larderOptions: undefined,
    noQuiet: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split('=', 2)
    const value = () => inline ?? argv[++i]
    if (name === '--quick') args.quick = true
    else if (name === '--no-quiet') args.noQuiet = true
    else if (name === '--runs') args.runs = Number(value())
    else if (name === '--only') args.only = value().split(',')
    else if (name === '--impls') args.impls = value().split(',')
    else if (name === '--out') args.out = path.resolve(value())
    else if (name === '--larder') args.larder = path.resolve(value())
    else if (name === '--larder-label') args.larderLabel = value()
    else if (name === '--larder-options') args.larderOptions = JSON.parse(value())
    else if (name === '--help' || name === '-h') {
      console.log(
        'usage: node bench/run.mjs [--quick] [--runs N] [--only W1,W5-put-tar,...] [--impls larder,cacache,...] [--out dir]\n' +
          '                         [--larder path/to/built/index.js --larder-label "what it is"]\n' +
          '                         [--larder-options \'{"maintenance":{"workers":2}}\']   # Larder.open options for every larder case\n' +
          "                         [--no-quiet]   # start each run at once, not 65 s after the last run's data was deleted",
      )
      process.exit(0)
    } else throw new Error(`unknown argument ${argv[i]} (try --help)`)
  }
  if (args.runs !== undefined && !(Number.isInteger(args.runs) && args.runs >= 1)) throw new Error('--runs needs a positive integer')
  return args
}

const args = parseArgs(process.argv.slice(2))
const config = { ...(args.quick ? CONFIGS.quick : CONFIGS.full) }
if (args.runs !== undefined) config.runs = args.runs
const partial = args.only !== undefined || args.impls !== undefined
// `--only W1` selects every step whose id starts with W1; an exact id selects one step.
const STEPS = stepsFor(config)
  .filter((step) => args.only === undefined || args.only.some((o) => step.id === o || step.id.startsWith(`${o}-`)))
  .map((step) => ({ ...step, impls: step.impls.filter((i) => args.impls === undefined || i === 'machine' || args.impls.includes(i)) }))
  .filter((step) => step.impls.length > 0)

// ── data directories ─────────────────────────────────────────────────────────

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

async function tempDir(parent, label) {
  const dir = await fsp.mkdtemp(path.join(parent, `${label}-`))
  return dir
}

/** Flushes dirty pages so one case's write-back does not land in the next case's timing. */
function flushDisk() {
  try {
    execFileSync('sync', { stdio: 'ignore', timeout: 120_000 })
  } catch {
    // no sync(1): the runs still interleave, only with more noise
  }
}

// ── environment ──────────────────────────────────────────────────────────────

function gitDescribe() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).trim() !== ''
    return commit + (dirty ? ' + uncommitted src changes' : '')
  } catch {
    return 'unknown'
  }
}

function describeEnvironment() {
  const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'))
  return {
    date: new Date().toISOString(),
    node: process.version,
    larder:
      (args.larder === undefined
        ? `${readJson(path.join(root, 'package.json')).version} @ ${gitDescribe()}`
        : `${args.larderLabel ?? 'build'} (${args.larder})`) + (args.larderOptions ? ` with ${JSON.stringify(args.larderOptions)}` : ''),
    versions: installedVersions(),
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    tmpdir: os.tmpdir(),
    // Other work on the machine skews everything: the load average before and after says how much.
    loadBefore: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  }
}

/**
 * Microseconds per sequential `fs.promises.stat`: one trip through libuv's thread pool. Every
 * 1-in-flight async fs call pays it (larder's small-file path is synchronous and does not), and
 * it varies 2–3× between sessions on this VM, so it is printed to explain runs that differ.
 */
async function poolRoundTrip() {
  for (let i = 0; i < 200; i++) await fsp.stat(root)
  const t0 = performance.now()
  for (let i = 0; i < 2000; i++) await fsp.stat(root)
  return Math.round(((performance.now() - t0) * 1000) / 2000)
}

function runCase(caseArgs) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', CASE, JSON.stringify(caseArgs)],
      { cwd: root, timeout: 10 * 60_000, maxBuffer: 16 * 2 ** 20 },
      (error, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop()
        let result
        try {
          result = JSON.parse(line)
        } catch {
          result = { ok: false, error: `${error?.message ?? 'no output'}\n${stderr}`.trim() }
        }
        if (!result.ok && stderr.trim()) result.stderr = stderr.trim().slice(-4000)
        resolve(result)
      },
    )
  })
}

// ── running ──────────────────────────────────────────────────────────────────

// Every case imports the same build: a copy of dist/index.js taken now (inside node_modules,
// so its package imports still resolve), not whatever a concurrent `npm run build` leaves.
// Its maintenance worker is copied alongside, since larder starts it from its own directory.
const snapshotDir = path.join(root, 'node_modules', '.cache', 'larder-bench', String(process.pid))
const larderModule = path.join(snapshotDir, 'index.js')
const builtDir = path.dirname(args.larder ?? path.join(root, 'dist', 'index.js'))
fs.mkdirSync(snapshotDir, { recursive: true })
liveDirs.add(snapshotDir)
for (const file of fs.readdirSync(builtDir)) {
  if (/^(index|maintenance-worker)[.\w-]*\.(js|cjs|mjs)$/.test(file) || file.startsWith('chunk-'))
    fs.copyFileSync(path.join(builtDir, file), path.join(snapshotDir, file))
}
const env = describeEnvironment()
env.poolRoundTripBefore = await poolRoundTrip()

const samples = {} // step → impl → [{ run, metrics, info }]
const failures = []
const started = Date.now()
let cleanupSeconds = 0

/**
 * Deleting many files slows the creates that follow on this VM for a minute (5,000 sets right
 * after an `rm -rf` of 5,000 files took 1.5–1.8 s instead of 0.40–0.47 s): its ext4 runs
 * without a journal, and such an ext4 will not reuse an inode freed less than 60 s ago (300 s
 * while the inode table's block is unwritten, which `sync` ends), so each create searches past
 * every recently freed inode of its group (bench/README.md, "Sets in flight, the create's
 * cost"). Which store's directories land in such a group is chance. So each run's data is
 * deleted only after the run, untimed, synced, and the next run starts once QUIET_MS have
 * passed (an untimed warm-up case runs meanwhile). That shortens the spell, not ends it: the
 * next creates in a group write its inode table again, and the 300 s rule is back for the
 * freed inodes of the blocks they write. On a disk that does not search like this, the wait
 * only costs time: `--no-quiet` skips it.
 */
const QUIET_MS = 65_000
async function deleteAndWarmUp(runDir, last = false) {
  const t0 = performance.now()
  if (runDir) {
    await fsp.rm(runDir, { recursive: true, force: true })
    liveDirs.delete(runDir)
  }
  if (last) return void (cleanupSeconds += (performance.now() - t0) / 1000)
  // The warm-up's own files stay until the end: deleting them would start another slow spell.
  const warm = await fsp.mkdtemp(path.join(os.tmpdir(), 'larder-bench-warmup-'))
  liveDirs.add(warm)
  flushDisk()
  const synced = performance.now()
  await runCase({ case: 'set1k', impl: 'raw-fs', dir: warm, n: Math.min(config.smallN, 5000), conc: 1 })
  if (runDir && !args.noQuiet) await new Promise((resolve) => setTimeout(resolve, Math.max(0, synced + QUIET_MS - performance.now())))
  cleanupSeconds += (performance.now() - t0) / 1000
}

process.stderr.write(
  `larder benchmark (${config.mode}${partial ? ', partial' : ''}): ${config.runs} runs × ${STEPS.reduce((a, s) => a + s.impls.length, 0)} cases\n`,
)
// Data sets that take long to write and that a step destroys (W7 prunes half its entries) are
// written once per implementation here, untimed, and copied before each measurement.
const templates = {} // `${step}:${impl}` → dir
const templateRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'larder-bench-templates-'))
liveDirs.add(templateRoot)
for (const step of STEPS.filter((s) => s.template)) {
  for (const impl of step.impls) {
    const dir = await tempDir(templateRoot, `${step.id}-${impl}`)
    const t0 = performance.now()
    const result = await runCase({ case: step.template.case, impl, dir, larderModule, ...step.template.args })
    process.stderr.write(
      `template for ${step.id} ${impl}: ${result.ok ? 'written' : `FAILED: ${String(result.error).split('\n')[0]}`} (${((performance.now() - t0) / 1000).toFixed(1)} s, untimed)\n`,
    )
    if (result.ok) templates[`${step.id}:${impl}`] = dir
    else failures.push({ run: 0, step: step.id, impl, error: `template: ${result.error}`, stderr: result.stderr })
  }
}
const templateSeconds = (Date.now() - started) / 1000

process.stderr.write('warm-up (untimed) ...\n')
await deleteAndWarmUp(undefined)

for (let run = 0; run < config.runs; run++) {
  const runDir = await fsp.mkdtemp(path.join(os.tmpdir(), `larder-bench-run${run + 1}-`))
  liveDirs.add(runDir)
  const dataDirs = {} // `${name}:${impl}` → dir
  for (const step of STEPS) {
    const order = step.impls.map((_, i) => step.impls[(i + run) % step.impls.length])
    for (const impl of order) {
      let dir
      if (step.uses) dir = dataDirs[`${step.uses}:${impl}`]
      else dir = await tempDir(runDir, `${step.id}-${impl}`)
      if (step.makes) dataDirs[`${step.makes}:${impl}`] = dir
      if (dir === undefined) {
        failures.push({ run: run + 1, step: step.id, impl, error: `no data: the step that makes "${step.uses}" did not run or failed` })
        continue
      }
      if (step.template) {
        const template = templates[`${step.id}:${impl}`]
        if (template === undefined) continue // its failure is already recorded
        execFileSync('cp', ['-a', `${template}/.`, dir]) // -a keeps mtimes, which LRU eviction reads
      }
      flushDisk()
      const t0 = performance.now()
      const result = await runCase({
        case: step.case,
        impl,
        dir,
        larderModule,
        ...step.args,
        // A step's own larder options (W6-reads: the memory tier), with the command line's over them.
        ...(impl === 'larder' && (args.larderOptions || step.args.larderOptions)
          ? { larderOptions: { ...step.args.larderOptions, ...args.larderOptions } }
          : {}),
      })
      const wall = (performance.now() - t0) / 1000
      const tag = `[run ${run + 1}/${config.runs}] ${step.id.padEnd(11)} ${impl.padEnd(22)}`
      if (result.ok) {
        ;((samples[step.id] ??= {})[impl] ??= []).push({ run: run + 1, metrics: result.metrics, info: result.info })
        const shown = Object.entries(result.metrics)
          .slice(0, 4)
          .map(([k, v]) => `${k} ${fmt(v, v < 100 ? 1 : 0)}`)
          .join(', ')
        process.stderr.write(`${tag} ${shown}  (${wall.toFixed(1)} s)\n`)
      } else {
        if (step.makes) delete dataDirs[`${step.makes}:${impl}`]
        failures.push({ run: run + 1, step: step.id, impl, error: result.error, stderr: result.stderr })
        process.stderr.write(`${tag} FAILED: ${String(result.error).split('\n')[0]}\n`)
      }
    }
  }
  process.stderr.write(`run ${run + 1} done at ${fmt((Date.now() - started) / 60_000, 1)} min; deleting its data (untimed) ...\n`)
  await deleteAndWarmUp(runDir, run === config.runs - 1)
}
const elapsedSeconds = (Date.now() - started) / 1000 - cleanupSeconds - templateSeconds
cleanupSync()
env.loadAfter = os
  .loadavg()
  .map((l) => l.toFixed(2))
  .join(' ')
env.poolRoundTripAfter = await poolRoundTrip()

// ── report ───────────────────────────────────────────────────────────────────

const record = { env, config, steps: STEPS, partial, elapsedSeconds, cleanupSeconds, templateSeconds, samples, failures }
const { markdown, base } = await writeReport(record, args.out)
process.stdout.write('\n' + markdown + '\n')
process.stderr.write(`\nwrote ${path.relative(root, base)}.md and .json; elapsed ${fmt((Date.now() - started) / 60_000, 1)} min in all\n`)
if (failures.length > 0) process.exitCode = 1
