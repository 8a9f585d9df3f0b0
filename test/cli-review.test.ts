/**
 * The `larder` command line against the second outside review (issue 16): read-only commands
 * that write nothing and never mark a folder as a cache, `--json` as exactly one document on
 * every exit path, boolean environment variables that can be turned off, the budget record,
 * and Ctrl-C's partial report. The built bin (dist/cli.js) in a child process, as a user runs it.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Larder } from '../src/index.ts'
import { runBin, type Run, type RunOptions } from './cli-runner.ts'
import { entryFiles } from './helpers.ts'
import { startCli } from './server/helpers.ts'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// CHECK_BIN runs these tests against another build (say, of the commit before a fix).
const BIN = process.env.CHECK_BIN ?? path.join(root, 'dist', 'cli.js')
const dirs: string[] = []

async function freshDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `larder-cli-review-${label}-`))
  dirs.push(dir)
  return dir
}

after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

before(() => {
  assert.ok(fs.existsSync(BIN), 'dist/cli.js is missing: npm test builds it first (npm run build)')
})

/** Runs the bin with `args` (see cli-runner.ts). */
const larder = (args: string[], options: RunOptions = {}): Promise<Run> => runBin(BIN, args, options)

/** stdout parsed as exactly one JSON document (JSON.parse rejects anything before or after it). */
function document<T = Record<string, unknown>>(run: Run): T {
  try {
    return JSON.parse(run.text) as T
  } catch {
    assert.fail(`stdout is not one JSON document (exit ${run.code}): ${JSON.stringify(run.text.slice(0, 300))}; stderr: ${run.stderr}`)
  }
}

/** An application's cache: `n` JSON rows, a few read, one miss. */
async function populate(dir: string, n: number, options: { maxEntries?: number } = {}): Promise<void> {
  const cache = await Larder.open({ dir, maintenance: false, ...options })
  await cache.setMany(Array.from({ length: n }, (_, i) => ({ key: `row:${i}`, value: { id: i, name: `user ${i}` }, tags: ['rows'] })))
  await cache.get('row:1')
  await cache.get('absent')
  await cache.close()
}

/** Every path under `dir` with its size and mtime: what "wrote nothing" is checked against. */
function snapshot(dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((name) => {
    const stat = fs.lstatSync(path.join(dir, name))
    return `${name} ${stat.isDirectory() ? 'dir' : stat.size} ${stat.mtimeMs}`
  })
}

function entryCount(dir: string): { entries: number; others: string[] } {
  const ns = path.join(dir, 'v1', 'default')
  let entries = 0
  const others: string[] = []
  for (const p of fs.readdirSync(ns)) {
    if (!/^[0-9a-f]{2}$/.test(p)) continue
    for (const name of fs.readdirSync(path.join(ns, p))) {
      if (/^[0-9a-f]{16}$/.test(name)) entries++
      else others.push(name)
    }
  }
  return { entries, others }
}

describe('read-only commands write nothing and never make a folder a cache', () => {
  test('stats on a path that does not exist: exit 1, one line, and nothing is created', async () => {
    const base = await freshDir('absent')
    const target = path.join(base, 'a', 'b', 'c')
    const run = await larder(['stats', '--dir', target])
    assert.equal(run.code, 1, run.stderr)
    assert.equal(run.stderr.trimEnd().split('\n').length, 1)
    assert.match(run.stderr, /^larder: .*not a larder cache/)
    assert.deepEqual(fs.readdirSync(base), [], 'stats created directories')
  })

  for (const command of [['stats'], ['ls'], ['get', 'some-key'], ['verify'], ['prune'], ['rm', 'some-key'], ['clear', '--yes']]) {
    test(`${command[0]} on a folder of someone's documents: exit 1, no CACHEDIR.TAG, no v1/, nothing changed`, async () => {
      const docs = await freshDir('docs')
      fs.writeFileSync(path.join(docs, 'thesis.txt'), 'chapter one')
      fs.mkdirSync(path.join(docs, 'photos'))
      const before = snapshot(docs)
      const run = await larder([...command, '--dir', docs])
      assert.equal(run.code, 1, run.stderr)
      assert.match(run.stderr, /not a larder cache/)
      assert.deepEqual(snapshot(docs), before)
    })
  }

  test('a cache this user may not read (its CACHEDIR.TAG refused) is reported as the permission failure, not as "not a larder cache"', async (t) => {
    const dir = await freshDir('unreadable')
    await populate(dir, 3)
    // As root every file is readable: the bin runs as nobody, in a cache root may only enter
    // (mkdtemp's 0700). As anyone else, a mode of 000 on one's own tag is enough.
    const asRoot = process.getuid?.() === 0
    const as = asRoot ? { uid: 65534, gid: 65534 } : {}
    if (!asRoot) fs.chmodSync(path.join(dir, 'CACHEDIR.TAG'), 0o000)
    else if (spawnSync(process.execPath, [BIN, '--version'], as).status !== 0) return t.skip(`${BIN} cannot be run by nobody here`)
    for (const command of [['stats'], ['ls'], ['clear', '--yes']]) {
      const run = spawnSync(process.execPath, [BIN, ...command, '--dir', dir], { ...as, encoding: 'utf8' })
      assert.equal(run.status, 1, run.stderr)
      assert.match(run.stderr, /EACCES/, `${command[0]}: ${run.stderr}`)
      assert.doesNotMatch(run.stderr, /not a larder cache/)
    }
    assert.equal(entryFiles(dir).length, 3, 'nothing removed')
  })

  test('--dir naming a file is a usage error (exit 2)', async () => {
    const base = await freshDir('file')
    const file = path.join(base, 'notes.txt')
    fs.writeFileSync(file, 'notes')
    for (const command of [['stats'], ['ls'], ['prune'], ['set', 'k']]) {
      const run = await larder([...command, '--dir', file], { input: 'value' })
      assert.equal(run.code, 2, `${command[0]}: ${run.stderr}`)
      assert.match(run.stderr, /is a file, not a cache directory/)
    }
    for (const command of [['stats'], ['set', 'k']]) {
      const run = await larder([...command, '--dir', path.join(file, 'cache')], { input: 'value' })
      assert.equal(run.code, 2, `${command[0]} through a file: ${run.stderr}`)
      assert.match(run.stderr, /lies under .*notes\.txt, which is a file, not a cache directory/)
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'notes')
  })

  test('an empty --dir (an unset variable in a script) is a usage error (exit 2), not the current directory: nothing is made there', async () => {
    const cwd = await freshDir('empty-dir')
    for (const command of [['set', 'k1'], ['stats'], ['serve', '--port', '0']]) {
      const run = await larder(['--dir', '', ...command], { input: 'value', cwd, killAfter: 10_000 })
      assert.equal(run.code, 2, `${command[0]}: ${run.stderr}`)
      assert.match(run.stderr, /--dir .* is invalid\. an empty path/)
    }
    assert.deepEqual(fs.readdirSync(cwd), [])
  })

  test('stats, ls, get, verify on a real cache change no file, mtime or record; set creates a cache where asked', async () => {
    const dir = await freshDir('cache')
    await populate(dir, 30, { maxEntries: 100 })
    const expiring = await Larder.open({ dir, maintenance: false })
    await expiring.set('short', 1, { ttl: 1 })
    await expiring.close()
    await new Promise((resolve) => setTimeout(resolve, 5)) // 'short' has expired: a reader would remove it
    const before = snapshot(dir)
    for (const args of [
      ['stats'],
      ['stats', '--fast'],
      ['ls'],
      ['get', 'row:3'],
      ['get', 'row:4', '--json'],
      ['get', 'short'],
      ['verify'],
    ]) {
      const run = await larder([...args, '--dir', dir])
      assert.ok(run.code === 0 || (args[1] === 'short' && run.code === 1), `${args.join(' ')}: exit ${run.code} ${run.stderr}`)
    }
    assert.deepEqual(snapshot(dir), before, 'a read-only command changed the cache directory')

    const created = path.join(await freshDir('new'), 'cache')
    const stored = await larder(['set', 'k', '--dir', created], { input: 'value' })
    assert.equal(stored.code, 0, stored.stderr)
    assert.ok(fs.existsSync(path.join(created, 'CACHEDIR.TAG')))
    assert.equal((await larder(['get', 'k', '--dir', created])).text, 'value')
  })

  test("stats counts what the applications did, not the operator's own read-only runs", async () => {
    const dir = await freshDir('activity')
    await populate(dir, 10) // one run: 1 hit, 1 miss
    for (let i = 0; i < 3; i++) {
      await larder(['get', 'row:2', '--dir', dir])
      await larder(['get', 'absent', '--dir', dir])
      await larder(['ls', '--dir', dir])
    }
    const stats = document<{ activity: { runs: number; hits: number; misses: number } }>(await larder(['stats', '--json', '--dir', dir]))
    assert.deepEqual([stats.activity.runs, stats.activity.hits, stats.activity.misses], [1, 1, 1])
  })
})

describe('--json: stdout is exactly one JSON document on every exit path', () => {
  test('get of a raw (streamed) value: base64 with its encoding named', async () => {
    const dir = await freshDir('json-raw')
    const data = randomBytes(70_000)
    assert.equal((await larder(['set', 'blob', '--dir', dir], { input: data })).code, 0)
    const run = await larder(['get', 'blob', '--json', '--dir', dir])
    assert.equal(run.code, 0, run.stderr)
    const doc = document<{ key: string; encoding: string; value: string; codec: string }>(run)
    assert.deepEqual([doc.key, doc.encoding, doc.codec], ['blob', 'base64', 'stream'])
    assert.ok(Buffer.from(doc.value, 'base64').equals(data))
  })

  test('get of an application value: the value itself', async () => {
    const dir = await freshDir('json-value')
    await populate(dir, 5)
    const doc = document<{ key: string; encoding: string; value: unknown }>(await larder(['get', 'row:3', '--json', '--dir', dir]))
    assert.deepEqual(doc, { key: 'row:3', codec: 'json', encoding: 'json', value: { id: 3, name: 'user 3' } })
  })

  test('failures are { error: { code, message } } on stdout, with the exit code unchanged', async () => {
    const dir = await freshDir('json-errors')
    await populate(dir, 5)
    const file = path.join(dir, 'a-file')
    fs.writeFileSync(file, 'x')
    const cases: [string[], number, string, Record<string, string>?][] = [
      [['get', 'nothing', '--json', '--dir', dir], 1, 'ERR_NOT_FOUND'],
      [['stats', '--json', '--dir', path.join(dir, 'nope')], 1, 'ERR_NOT_A_CACHE'],
      [['stats', '--json', '--dir', file], 2, 'ERR_USAGE'],
      [['prune', '--max-size', '5XB', '--json', '--dir', dir], 2, 'ERR_USAGE'],
      [['stats', '--colour', '--json', '--dir', dir], 2, 'ERR_USAGE'],
      [['compact', '--json'], 2, 'ERR_USAGE'],
      [['clear', '--json', '--dir', dir], 2, 'ERR_USAGE'],
      [['rm', '--json', '--dir', dir], 2, 'ERR_USAGE'],
      [['set', 'k', path.join(dir, 'missing-file'), '--json', '--dir', dir], 2, 'ERR_USAGE'],
      [['stats', '--dir', dir], 2, 'ERR_USAGE', { LARDER_JSON: '1', LARDER_QUIET: 'perhaps' }],
    ]
    for (const [args, code, errorCode, env] of cases) {
      const run = await larder(args, { env: env ?? {} })
      assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`)
      const doc = document<{ error: { code: string; message: string } }>(run)
      assert.equal(doc.error.code, errorCode, args.join(' '))
      assert.ok(doc.error.message.length > 0)
    }
  })

  test('a report with a failing exit (damage found) is still the one document; --version and --help too', async () => {
    const dir = await freshDir('json-verify')
    await populate(dir, 5)
    const ns = path.join(dir, 'v1', 'default')
    const partition = fs.readdirSync(ns).find((p) => /^[0-9a-f]{2}$/.test(p))!
    const file = path.join(ns, partition, fs.readdirSync(path.join(ns, partition))[0]!)
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 20]! ^= 1
    fs.writeFileSync(file, bytes)
    const run = await larder(['verify', '--json', '--dir', dir])
    assert.equal(run.code, 1)
    assert.equal(document<{ corrupt: number }>(run).corrupt, 1)
    assert.equal(document<{ error: { code: string } }>(run).error.code, 'ERR_CORRUPT', 'and, as every failed run, an error with its code')
    assert.equal(typeof document<{ version: string }>(await larder(['--version', '--json'])).version, 'string')
    assert.match(document<{ help: string }>(await larder(['prune', '--help', '--json'])).help, /Usage: larder prune/)
  })
})

describe('boolean environment variables', () => {
  test('LARDER_JSON, LARDER_QUIET and LARDER_DRY_RUN: 0/false/no/off are off, 1/true/yes/on are on, anything else a usage error naming the variable', async () => {
    const dir = await freshDir('env')
    await populate(dir, 20)
    for (const off of ['0', 'false', 'no', 'off', 'FALSE']) {
      const run = await larder(['stats', '--fast', '--dir', dir], { env: { LARDER_JSON: off } })
      assert.equal(run.code, 0, run.stderr)
      assert.match(run.text, /^cache\s+/m, `LARDER_JSON=${off} gave JSON`)
    }
    for (const on of ['1', 'true', 'yes', 'on', 'Yes']) {
      document(await larder(['stats', '--fast', '--dir', dir], { env: { LARDER_JSON: on } }))
    }
    assert.equal((await larder(['ls', '--dir', dir], { env: { LARDER_QUIET: 'yes' } })).text, '')
    assert.notEqual((await larder(['ls', '--dir', dir], { env: { LARDER_QUIET: 'no' } })).text, '')
    const dry = document<{ dryRun: boolean; evicted: number }>(
      await larder(['prune', '--max-entries', '10', '--json', '--dir', dir], { env: { LARDER_DRY_RUN: 'on' } }),
    )
    assert.deepEqual([dry.dryRun, dry.evicted], [true, 10])
    const real = document<{ dryRun: boolean; evicted: number }>(
      await larder(['prune', '--max-entries', '10', '--json', '--dir', dir], { env: { LARDER_DRY_RUN: 'false' } }),
    )
    assert.deepEqual([real.dryRun, real.evicted], [false, 10])
    for (const [name, args] of [
      ['LARDER_JSON', ['stats']],
      ['LARDER_QUIET', ['ls']],
      ['LARDER_DRY_RUN', ['prune']],
    ] as const) {
      const run = await larder([...args, '--dir', dir], { env: { [name]: 'maybe' } })
      assert.equal(run.code, 2, `${name}=maybe: ${run.stderr}`)
      assert.match(run.stderr, new RegExp(`^larder: .*${name}`))
      assert.equal(run.stderr.trimEnd().split('\n').length, 1)
    }
  })
  test('each flag a variable can turn on has a --no-… form that turns it off for one run; the last of the two given wins', async () => {
    const dir = await freshDir('env-off')
    await populate(dir, 20)
    const human = await larder(['stats', '--fast', '--no-json', '--dir', dir], { env: { LARDER_JSON: '1' } })
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.text, /^cache\s+/m, 'LARDER_JSON=1 --no-json gave JSON')
    // A failure too: the one line on stderr, nothing on stdout (decided before commander runs).
    const failed = await larder(['stats', '--no-json', '--dir', path.join(dir, 'nope')], { env: { LARDER_JSON: '1' } })
    assert.deepEqual([failed.code, failed.text], [1, ''], failed.stderr)
    document(await larder(['--no-json', 'stats', '--fast', '--json', '--dir', dir]))
    assert.match((await larder(['--json', 'stats', '--fast', '--no-json', '--dir', dir])).text, /^cache\s+/m)
    assert.match((await larder(['ls', '--no-quiet', '--dir', dir], { env: { LARDER_QUIET: '1' } })).text, /row:1/)
    // The command line wins: a bad variable is not read when its flag is given.
    assert.equal((await larder(['ls', '-q', '--dir', dir], { env: { LARDER_QUIET: 'maybe' } })).code, 0)
    const real = document<{ dryRun: boolean; evicted: number }>(
      await larder(['prune', '--max-entries', '10', '--no-dry-run', '--json', '--dir', dir], { env: { LARDER_DRY_RUN: '1' } }),
    )
    assert.deepEqual([real.dryRun, real.evicted], [false, 10])
    const help = (await larder(['prune', '--help'])).text + (await larder(['--help'])).text + (await larder(['serve', '--help'])).text
    for (const flag of ['--no-json', '--no-quiet', '--no-dry-run', '--no-dashboard', '--dashboard', '--no-log-requests']) {
      assert.match(help, new RegExp(`^\\s+${flag}\\b`, 'm'), `${flag} in --help`)
    }
    const serveDir = await freshDir('env-off-serve')
    const server = await startCli(['serve', '--port', '0', '--dir', path.join(serveDir, 'cache'), '--dashboard'], { LARDER_DASHBOARD: '0' })
    assert.ok(server.url !== '', server.stderr())
    assert.equal((await fetch(`${server.url}/`)).status, 200, '--dashboard wins over LARDER_DASHBOARD=0')
    assert.equal(await server.stop(), 0)
  })
})

describe('the recorded budget', () => {
  test('meta/budget.json follows the last open, "no budget" included; the CLI says where its budget came from', async () => {
    const dir = await freshDir('budget')
    await populate(dir, 50, { maxEntries: 20 })
    const first = await larder(['prune', '--dry-run', '--dir', dir])
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.text, /budget: 20 entries, recorded by the application/)
    assert.equal(
      document<{ evicted: number; budget: { source: string } }>(await larder(['prune', '--dry-run', '--json', '--dir', dir])).budget.source,
      'recorded',
    )

    const app = await Larder.open({ dir, maintenance: false }) // no budget now
    await app.close()
    const report = document<{ evicted: number; remainingEntries: number; budget: { source: string; maxEntries: number | null } }>(
      await larder(['prune', '--json', '--dir', dir]),
    )
    assert.equal(report.evicted, 0)
    assert.equal(report.remainingEntries, 50)
    assert.deepEqual([report.budget.source, report.budget.maxEntries], ['recorded', null])
    assert.match((await larder(['prune', '--dry-run', '--dir', dir])).text, /no budget: the application last opened the cache without one/)
    assert.match(
      (await larder(['prune', '--dry-run', '--max-entries', '5', '--dir', dir])).text,
      /budget: 5 entries, from the command line/,
    )
    assert.match((await larder(['stats', '--dir', dir])).text, /^budget\s+none \(the application last opened the cache without one/m)
  })

  test("a budget read from LARDER_MAX_SIZE or LARDER_MAX_ENTRIES (an application's variable left set) is said to come from there, not from the command line", async () => {
    const dir = await freshDir('budget-env')
    await populate(dir, 10)
    const env = { LARDER_MAX_ENTRIES: '5' }
    assert.match(
      (await larder(['prune', '--dry-run', '--dir', dir], { env })).text,
      /budget: 5 entries, from the environment \(LARDER_MAX_ENTRIES\)/,
    )
    const both = await larder(['stats', '--fast', '--max-size', '1GB', '--dir', dir], { env })
    assert.match(both.text, /^budget\s+from the command line and the environment \(LARDER_MAX_ENTRIES\)$/m)
    assert.match((await larder(['stats', '--fast', '--max-entries', '7', '--dir', dir], { env })).text, /^budget\s+from the command line$/m)
  })
})

describe('Ctrl-C during prune', () => {
  test(
    'the partial report counts what was removed, the totals agree with the disk, and no file is left renamed aside',
    { timeout: 240_000 },
    async () => {
      const dir = await freshDir('interrupt')
      const cache = await Larder.open({ dir, maintenance: false })
      const total = 12_000
      for (let i = 0; i < total; i += 1000)
        await cache.setMany(Array.from({ length: 1000 }, (_, j) => ({ key: `k${i + j}`, value: { n: i + j } })))
      await cache.close()
      const child = spawn(process.execPath, [BIN, 'prune', '--dir', dir, '--max-entries', '1000', '--json'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
      let done = false
      void exited.then(() => (done = true))
      // Interrupt once eviction has visibly begun.
      while (!done && entryCount(dir).entries > total - 300) await new Promise((resolve) => setTimeout(resolve, 20))
      child.kill('SIGINT')
      const code = await exited
      assert.equal(code, 130, `stdout: ${stdout}\nstderr: ${stderr}`)
      const partial = JSON.parse(stdout) as {
        interrupted: boolean
        evicted: number
        expired: number
        matched: number
        corrupt: number
        remainingEntries: number
      }
      const onDisk = entryCount(dir)
      assert.ok(onDisk.entries > 1000, 'inconclusive: the prune finished before it was interrupted')
      assert.equal(partial.interrupted, true)
      assert.equal(partial.evicted + partial.expired + partial.matched + partial.corrupt, total - onDisk.entries)
      assert.equal(partial.remainingEntries, onDisk.entries)
      assert.deepEqual(onDisk.others, [])
      assert.equal(document<{ entries: number }>(await larder(['stats', '--fast', '--json', '--dir', dir])).entries, onDisk.entries)
    },
  )
})

describe('set from a pipe, and a stdout that cannot be written', () => {
  test('set reads a named pipe (as `<(command)` gives); a directory is named as one', async () => {
    const dir = await freshDir('set-pipe')
    const fifo = path.join(dir, 'pipe')
    execFileSync('mkfifo', [fifo])
    const data = randomBytes(300_000)
    // The writer's open waits (in the thread pool) for larder to open the other end.
    const writer = fs.createWriteStream(fifo)
    writer.on('error', () => {})
    writer.end(data)
    const run = await larder(['set', 'piped', fifo, '--dir', path.join(dir, 'cache')])
    // A larder that never opened the pipe leaves the writer waiting: let it go (no hang).
    if (!writer.writableFinished) fs.closeSync(fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK))
    assert.equal(run.code, 0, run.stderr)
    const got = await larder(['get', 'piped', '--dir', path.join(dir, 'cache')])
    assert.ok(got.stdout.equals(data))
    const folder = await larder(['set', 'k', dir, '--json', '--dir', path.join(dir, 'cache')])
    assert.equal(folder.code, 2)
    assert.match(document<{ error: { message: string } }>(folder).error.message, /is a directory/)
  })

  test('get into a full disk: one line on stderr and exit 1, no stack trace', async () => {
    const dir = await freshDir('stdout-full')
    assert.equal((await larder(['set', 'blob', '--dir', dir], { input: randomBytes(200_000) })).code, 0)
    const full = fs.openSync('/dev/full', 'w')
    try {
      const run = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, 'get', 'blob', '--dir', dir], { stdio: ['ignore', full, 'pipe'] })
        let stderr = ''
        child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
        child.on('error', reject)
        child.on('close', (code) => resolve({ code, stderr }))
      })
      assert.equal(run.code, 1)
      assert.equal(run.stderr, 'larder: cannot write to stdout: ENOSPC: no space left on device, write\n')
    } finally {
      fs.closeSync(full)
    }
  })
})

describe("stdout's reader gone (EPIPE: `larder get KEY | head -c 10`)", () => {
  /** Runs the bin with stdout a pipe whose reader takes `keep` bytes and then closes it. */
  const readerLeaving = (args: string[], keep: number): Promise<{ code: number | null; taken: number; stderr: string }> =>
    new Promise((resolve, reject) => {
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LARDER_')))
      const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      let taken = 0
      let stderr = ''
      if (keep === 0) child.stdout.destroy()
      else
        child.stdout.on('data', (c: Buffer) => {
          taken += c.length
          if (taken >= keep) child.stdout.destroy()
        })
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code, taken, stderr }))
    })

  test('get of a large streamed value and ls of a long listing end quietly with exit 0; a failure the command found keeps its exit code', async () => {
    const dir = await freshDir('epipe')
    await populate(dir, 5000)
    const big = randomBytes(8 * 1024 * 1024) // well past a pipe's buffer
    assert.equal((await larder(['set', 'big', '--dir', dir], { input: big })).code, 0)
    for (const [args, keep] of [
      [['get', 'big'], 10],
      [['get', 'big'], 0],
      [['ls'], 100],
      [['ls'], 0],
    ] as const) {
      const run = await readerLeaving([...args, '--dir', dir], keep)
      assert.deepEqual([run.code, run.stderr], [0, ''], `${args.join(' ')}, reader gone after ${keep} bytes`)
    }
    // Damage found, and its report unread: still exit 1 (it was 0), and its one line on stderr.
    const ns = path.join(dir, 'v1', 'default')
    const file = entryFiles(ns).find((f) => fs.statSync(f).size > 1024 * 1024)!
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 100]! ^= 1
    fs.writeFileSync(file, bytes)
    const verify = await readerLeaving(['verify', '--dir', dir], 0)
    assert.deepEqual([verify.code, verify.stderr], [1, 'larder: 1 entry damaged; run larder verify --repair to remove it\n'])
  })
})

describe('the third review (2026-12-06)', () => {
  test('set with a bad key or tag creates no cache: exit 2, nothing made', async () => {
    const dir = path.join(await freshDir('set-bad'), 'cache')
    for (const args of [
      ['set', ''],
      ['set', 'k', '--tag', ''],
    ]) {
      const run = await larder(['--dir', dir, ...args], { input: 'x' })
      assert.equal(run.code, 2, run.stderr)
      assert.equal(fs.existsSync(dir), false, `${args.join(' ')} made ${dir}`)
    }
  })

  test("a bad --tag is a usage error that names the flag, not the library's field, on every command that takes one", async () => {
    const dir = await freshDir('bad-tag')
    await populate(dir, 3)
    for (const args of [['set', 'k'], ['ls'], ['rm'], ['prune', '--dry-run']]) {
      const run = await larder([...args, '--tag', '', '--json', '--dir', dir], { input: 'x' })
      assert.equal(run.code, 2, run.stderr)
      assert.equal(run.stderr, 'larder: --tag "": expected a non-empty string\n', args.join(' '))
      assert.equal(document<{ error: { code: string } }>(run).error.code, 'ERR_INVALID_VALUE')
    }
  })

  test("a config file's dir or namespace of the wrong type stops the command (exit 2, naming the file and field), never acting on the default", async () => {
    const cwd = await freshDir('cfg')
    const dir = path.join(cwd, 'c')
    const cache = await Larder.open({ dir })
    await cache.set('kept', 1)
    await cache.close()
    fs.writeFileSync(path.join(cwd, 'larder.config.json'), JSON.stringify({ dir: 'c', namespace: 42 }), { mode: 0o600 })
    const run = await larder(['--json', 'clear', '--yes'], { cwd })
    assert.equal(run.code, 2)
    assert.deepEqual((JSON.parse(run.stdout.toString()) as { error: { code: string } }).error.code, 'ERR_INVALID_OPTION')
    assert.match(run.stderr, /larder\.config\.json: namespace/)
    const reopened = await Larder.open({ dir })
    assert.equal(await reopened.get('kept'), 1, 'the default namespace was not cleared')
    await reopened.close()
  })

  test('a mistake in the config file is reported (exit 2, naming the file) while the file\'s dir does not exist yet, not hidden behind "not a larder cache"', async () => {
    const cwd = await freshDir('cfgdir')
    fs.writeFileSync(path.join(cwd, 'larder.config.json'), JSON.stringify({ dir: 'cachedir', maxSize: 'lots' }), { mode: 0o600 })
    const deep = path.join(cwd, 'sub', 'deep')
    fs.mkdirSync(deep, { recursive: true })
    for (const args of [['stats'], ['ls'], ['get', 'k'], ['verify'], ['prune'], ['rm', 'k'], ['clear', '--yes'], ['set', 'k']]) {
      const run = await larder(args, { cwd: deep, input: 'x' })
      assert.equal(run.code, 2, `${args[0]}: ${run.stderr}`)
      assert.match(run.stderr, /larder\.config\.json: maxSize/, args[0])
      assert.equal(fs.existsSync(path.join(cwd, 'cachedir')), false, `${args[0]} made the cache`)
    }
  })

  test('ls and prune --dry-run show control characters in keys and tags escaped, never raw', async () => {
    const dir = path.join(await freshDir('esc'), 'cache')
    const cache = await Larder.open({ dir })
    await cache.set('evil\x1b[2J\nfake-row', 1, { tags: ['t\x1b]0;title\x07'] })
    await cache.close()
    for (const args of [['ls'], ['prune', '--dry-run', '--pattern', '*']]) {
      const run = await larder(['--dir', dir, ...args])
      assert.equal(run.code, 0, run.stderr)
      const out = run.stdout.toString()
      assert.ok(!out.includes('\x1b') && !out.includes('\x07'), `${args[0]} wrote a raw control character`)
      assert.match(out, /evil\\x1b\[2J\\x0afake-row/)
    }
  })

  test('get of a v8 value JSON cannot hold: --json is one error document (ERR_NOT_JSON); without it, the value as Node prints it', async () => {
    const dir = path.join(await freshDir('v8'), 'cache')
    const cache = await Larder.open({ dir, serializer: 'v8' })
    await cache.set('map', new Map([['a', 1]]))
    const cyclic: Record<string, unknown> = { n: 10n }
    cyclic.self = cyclic
    await cache.set('cycle', cyclic)
    await cache.set('plain', { a: [1, 'x'] })
    await cache.close()
    const env = { LARDER_SERIALIZER: 'v8' }
    for (const key of ['map', 'cycle']) {
      const json = await larder(['--dir', dir, '--json', 'get', key], { env })
      assert.equal(json.code, 1)
      assert.equal((JSON.parse(json.stdout.toString()) as { error: { code: string } }).error.code, 'ERR_NOT_JSON')
    }
    const shown = await larder(['--dir', dir, 'get', 'map'], { env })
    assert.equal(shown.stdout.toString().trim(), "Map(1) { 'a' => 1 }")
    const plain = await larder(['--dir', dir, '--json', 'get', 'plain'], { env })
    assert.deepEqual((JSON.parse(plain.stdout.toString()) as { value: unknown }).value, { a: [1, 'x'] })
  })

  test('get of a damaged small entry says ERR_CORRUPT, not "no entry"', async () => {
    const dir = path.join(await freshDir('corrupt'), 'cache')
    const cache = await Larder.open({ dir })
    await cache.set('user:3', { name: 'x'.repeat(100) })
    await cache.close()
    const [file] = entryFiles(dir)
    const bytes = fs.readFileSync(file!)
    bytes[bytes.length - 20]! ^= 0xff
    fs.writeFileSync(file!, bytes)
    const run = await larder(['--dir', dir, '--json', 'get', 'user:3'])
    assert.equal(run.code, 1)
    assert.equal((JSON.parse(run.stdout.toString()) as { error: { code: string } }).error.code, 'ERR_CORRUPT')
  })

  test('an encryption key put in LARDER_ENCRYPTION_ACTIVE_KEY is never shown, keys from the config file or not', async () => {
    const cwd = await freshDir('ak')
    await (await Larder.open({ dir: path.join(cwd, 'c') })).close()
    fs.writeFileSync(
      path.join(cwd, 'larder.config.json'),
      JSON.stringify({ dir: 'c', encryption: { keys: { k1: 'a'.repeat(64) }, activeKey: 'k1' } }),
      { mode: 0o600 },
    )
    const secret = randomBytes(32).toString('hex')
    const run = await larder(['--json', 'stats', '--fast'], { cwd, env: { LARDER_ENCRYPTION_ACTIVE_KEY: secret } })
    assert.equal(run.code, 2)
    assert.ok(!run.stderr.includes(secret) && !run.stdout.toString().includes(secret), 'the key was printed')
    assert.match(run.stderr, /LARDER_ENCRYPTION_ACTIVE_KEY/)
  })

  test('a table of 200,000 rows is laid out (no spread of every row into one call)', async () => {
    const { table } = await import('../src/cli/format.ts')
    const rows = Array.from({ length: 200_000 }, (_, i) => [`key-${i}`, String(i)])
    assert.equal(table(['key', 'n'], rows, new Set([1])).split('\n').length, 200_002)
  })
})
