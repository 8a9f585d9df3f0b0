/**
 * The `larder` command line, run as a user runs it: the built bin (dist/cli.js, what the
 * package's `bin` points at) in a child process, with real pipes, a real pseudo-terminal
 * (util-linux `script`) where a TTY matters, and real signals.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Larder } from '../src/index.ts'
import { runBin, type Run, type RunOptions } from './cli-runner.ts'
import { entryFiles } from './helpers.ts'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// CHECK_BIN runs these tests against another build (say, of the commit before a fix).
const BIN = process.env.CHECK_BIN ?? path.join(root, 'dist', 'cli.js')
const dirs: string[] = []

async function freshDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `larder-cli-${label}-`))
  dirs.push(dir)
  return dir
}

after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

/** Runs the bin with `args` (see cli-runner.ts). */
const larder = (args: string[], options: RunOptions = {}): Promise<Run> => runBin(BIN, args, options)

/** The bin with `args`, quoted for `script -c`. */
function shellCommand(args: string[]): string {
  return [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
}

/** Runs the bin under a pseudo-terminal (`script`), so stdin, stdout and stderr are a TTY. */
function larderOnTty(args: string[], input = ''): { code: number | null; output: string } {
  const command = shellCommand(args)
  const result = spawnSync('script', ['-qec', command, '/dev/null'], { input, encoding: 'utf8', env: { ...process.env, TERM: 'xterm' } })
  return { code: result.status, output: result.stdout }
}

/** Runs the bin on a terminal (as larderOnTty) and types `keys` once `prompt` is on the screen. */
function answerOnTty(args: string[], prompt: RegExp, keys: string): Promise<{ code: number | null; output: string }> {
  const command = shellCommand(args)
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, TERM: 'xterm' } })
  let output = ''
  let typed = false
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
    if (!typed && prompt.test(output)) {
      typed = true
      child.stdin.write(keys)
    }
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, output }))
  })
}

/** Runs the bin and sends it SIGINT once `lock` exists (a maintenance pass has begun). */
async function interruptedOnceLocked(args: string[], lock: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  while (!fs.existsSync(lock)) await new Promise((resolve) => setTimeout(resolve, 2))
  child.kill('SIGINT')
  return { code: await exited, stdout, stderr }
}

function json<T = Record<string, unknown>>(run: Run): T {
  assert.equal(run.code, 0, `exit ${run.code}; stderr: ${run.stderr}`)
  return JSON.parse(run.text) as T
}

/** A cache written by an "application": `n` JSON rows `row:<i>`, every third tagged 'table:users'. */
async function populate(dir: string, n: number, options: { maxSize?: string } = {}): Promise<void> {
  const cache = await Larder.open({ dir, maintenance: false, ...options })
  await cache.setMany(
    Array.from({ length: n }, (_, i) => ({
      key: `row:${i}`,
      value: { id: i, name: `user ${i}`, bio: 'lorem ipsum '.repeat(20 + (i % 7) * 10) },
      tags: i % 3 === 0 ? ['table:users'] : ['table:posts'],
    })),
  )
  await cache.get('row:1')
  await cache.get('row:2')
  await cache.get('absent')
  await cache.close()
}

before(() => {
  assert.ok(fs.existsSync(BIN), 'dist/cli.js is missing: npm test builds it first (npm run build)')
})

describe('larder stats', () => {
  test('human output names entries, sizes, age buckets, recorded activity and the recorded budget', async () => {
    const dir = await freshDir('stats')
    await populate(dir, 120, { maxSize: '10MB' })
    const run = await larder(['stats', '--dir', dir])
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.text, /^entries\s+120$/m)
    assert.match(run.text, /^size on disk\s+[\d.]+ kB$/m)
    assert.match(run.text, /^size of values\s+[\d.]+ kB \(compression [\d.]+×\)$/m)
    assert.match(run.text, /^size budget\s+10 MB, [\d.]+ % used$/m)
    assert.match(run.text, /^hits \/ misses\s+2 \/ 1 \(hit rate 66\.7 %\) over 1 runs/m)
    assert.match(run.text, /^last run\s+breaker closed/m)
    assert.match(run.text, /^< 1 hour\s+120\s+/m)
    assert.equal(run.stderr, '')
  })

  test('--json is one JSON document with the same figures, and --fast skips the walk', async () => {
    const dir = await freshDir('stats-json')
    await populate(dir, 50)
    const full = json<{
      entries: number
      storedBytes: number
      logicalBytes: number
      byAge: { label: string; entries: number }[]
      activity: { hits: number; misses: number; sets: number }
      budget: { maxSize: number | null }
    }>(await larder(['--json', 'stats', '--dir', dir]))
    assert.equal(full.entries, 50)
    assert.ok(full.logicalBytes > 0 && full.storedBytes > 0)
    assert.deepEqual(
      full.byAge.map((b) => b.label),
      ['1h', '1d', '7d', '30d', 'older'],
    )
    assert.equal(full.byAge[0]!.entries, 50)
    assert.deepEqual([full.activity.hits, full.activity.misses, full.activity.sets], [2, 1, 50])
    assert.equal(full.budget.maxSize, null)
    const fast = json<{ entries: number; storedBytes: number; logicalBytes: number | null }>(
      await larder(['stats', '--fast', '--json', '--dir', dir]),
    )
    assert.equal(fast.entries, 50)
    assert.equal(fast.storedBytes, full.storedBytes)
    assert.equal(fast.logicalBytes, null)
  })

  test('LARDER_DIR and LARDER_JSON come from the environment', async () => {
    const dir = await freshDir('stats-env')
    await populate(dir, 7)
    const report = json<{ entries: number; dir: string }>(await larder(['stats'], { env: { LARDER_DIR: dir, LARDER_JSON: '1' } }))
    assert.equal(report.entries, 7)
    assert.equal(report.dir, dir)
  })

  test('without --dir or LARDER_DIR the cache is node_modules/.cache/larder under the current directory', async () => {
    const project = await freshDir('project')
    // Read-only commands never create a cache: an application made this one.
    await (await Larder.open({ dir: path.join(project, 'node_modules', '.cache', 'larder') })).close()
    const run = json<{ dir: string; entries: number }>(await larder(['stats', '--json'], { cwd: project }))
    assert.equal(run.dir, path.join(fs.realpathSync(project), 'node_modules', '.cache', 'larder'))
    assert.equal(run.entries, 0)
  })
})

describe('larder prune', () => {
  test('--max-size leaves the cache under the budget and prints a summary line', async () => {
    const dir = await freshDir('prune-size')
    await populate(dir, 300)
    const before = json<{ storedBytes: number }>(await larder(['stats', '--json', '--dir', dir]))
    const budget = Math.floor(before.storedBytes / 3)
    const run = await larder(['prune', '--dir', dir, '--max-size', String(budget)])
    assert.equal(run.code, 0, run.stderr)
    assert.match(
      run.text,
      /^removed [\d,]+ of 300 entries \([\d.]+ kB\) in [\d.]+ m?s; [\d,]+ entries \([\d.]+ kB\) remain\nbudget: [\d.]+ kB, from the command line\n$/,
    )
    const afterward = json<{ storedBytes: number; entries: number }>(await larder(['stats', '--json', '--dir', dir]))
    assert.ok(afterward.storedBytes <= budget, `${afterward.storedBytes} bytes left, budget ${budget}`)
    assert.ok(afterward.entries > 0 && afterward.entries < 300)
  })

  test('--dry-run reports the victims and removes nothing; --json is the report alone', async () => {
    const dir = await freshDir('prune-dry')
    await populate(dir, 60)
    const report = json<{ dryRun: boolean; evicted: number; keys: string[]; remainingEntries: number }>(
      await larder(['prune', '--dir', dir, '--max-entries', '20', '--dry-run', '--json']),
    )
    assert.equal(report.dryRun, true)
    assert.equal(report.evicted, 40)
    assert.equal(report.keys.length, 40)
    assert.equal(report.remainingEntries, 20)
    assert.equal(json<{ entries: number }>(await larder(['stats', '--json', '--dir', dir])).entries, 60)
  })

  test('--tag, --pattern and --max-age remove what they match; LARDER_MAX_ENTRIES sets the budget', async () => {
    const dir = await freshDir('prune-filters')
    await populate(dir, 90)
    const byTag = json<{ matched: number }>(await larder(['prune', '--dir', dir, '--tag', 'table:users', '--json']))
    assert.equal(byTag.matched, 30)
    const byPattern = json<{ matched: number }>(await larder(['prune', '--dir', dir, '--pattern', 'row:1*', '--json']))
    // row:1, row:10–19, row:100… minus those tagged table:users (multiples of 3), already gone
    const expected = ['row:1', ...Array.from({ length: 10 }, (_, i) => `row:1${i}`)].filter((k) => Number(k.slice(4)) % 3 !== 0).length
    assert.equal(byPattern.matched, expected)
    const byEnv = json<{ evicted: number; remainingEntries: number }>(
      await larder(['prune', '--dir', dir, '--json'], { env: { LARDER_MAX_ENTRIES: '10' } }),
    )
    assert.equal(byEnv.remainingEntries, 10)
    const byAge = json<{ matched: number; remainingEntries: number }>(await larder(['prune', '--dir', dir, '--max-age', '0s', '--json']))
    assert.equal(byAge.matched, 10)
    assert.equal(byAge.remainingEntries, 0)
  })

  test('without flags it honours the budget the application recorded', async () => {
    const dir = await freshDir('prune-recorded')
    const cache = await Larder.open({ dir, maintenance: false, maxEntries: 1000 })
    await cache.close()
    await populate(dir, 50) // opened without a budget: the recorded one stays
    const app = await Larder.open({ dir, maintenance: false, maxEntries: 40 }) // records 40
    await app.close()
    const report = json<{ remainingEntries: number; evicted: number }>(await larder(['prune', '--dir', dir, '--json']))
    // Over the budget of 40: evicted down to the low-water mark (90 %).
    assert.equal(report.remainingEntries, 36)
  })

  test('a budget flag replaces the recorded budget whole: the recorded budget it leaves out evicts nothing', async () => {
    const dir = await freshDir('prune-flag-replaces')
    await populate(dir, 50)
    const app = await Larder.open({ dir, maintenance: false, maxEntries: 40, maxSize: '1KB' }) // records both
    await app.close()
    const report = json<{ evicted: number; remainingEntries: number; budget: { maxSize: number; maxEntries: number | null } }>(
      await larder(['prune', '--dir', dir, '--max-size', '1GB', '--json']),
    )
    assert.deepEqual(report.budget.maxEntries, null)
    assert.equal(report.evicted, 0)
    assert.equal(report.remainingEntries, 50)
    const byEntries = json<{ evicted: number }>(await larder(['prune', '--dir', dir, '--max-entries', '45', '--json']))
    assert.equal(byEntries.evicted, 5, 'an entry flag is exact, whatever size budget is recorded')
  })

  test('on a terminal it draws a progress bar; piped, it draws none', async () => {
    const dir = await freshDir('prune-tty')
    await populate(dir, 200)
    const tty = larderOnTty(['prune', '--dir', dir, '--max-entries', '100'])
    assert.equal(tty.code, 0, tty.output)
    assert.match(tty.output, /scanning\s+\[[█░]+\] \d+% \| \d+\/\d+ partitions/)
    assert.match(tty.output, /removed 100 of 200 entries/)
    const piped = await larder(['prune', '--dir', dir, '--max-entries', '50'])
    assert.equal(piped.code, 0)
    assert.equal(piped.stderr, '')
    // eslint-disable-next-line no-control-regex -- ESC is exactly what a terminal control sequence starts with
    assert.doesNotMatch(piped.text, /scanning|\u001b\[/)
  })

  test('Ctrl-C cancels a running prune cleanly: a partial report and exit code 130', { timeout: 120_000 }, async () => {
    const dir = await freshDir('prune-int')
    const cache = await Larder.open({ dir, maintenance: false })
    const value = { rows: 'x'.repeat(200) }
    for (let i = 0; i < 30_000; i += 1000) await cache.setMany(Array.from({ length: 1000 }, (_, j) => ({ key: `k${i + j}`, value })))
    await cache.close()
    const lock = path.join(dir, 'v1', 'default', 'meta', 'maintenance.lock')
    // Interrupted once the prune holds its lock, i.e. the work has begun.
    const { code, stdout, stderr } = await interruptedOnceLocked(['prune', '--dir', dir, '--max-entries', '0', '--json'], lock)
    assert.equal(code, 130, `stdout: ${stdout}\nstderr: ${stderr}`)
    const partial = JSON.parse(stdout) as { interrupted: boolean; remainingEntries: number; scanned: number }
    assert.equal(partial.interrupted, true)
    assert.match(stderr, /^larder: prune interrupted/)
    assert.ok(!fs.existsSync(lock), 'the lock was released')
    // Whatever was removed is gone; the rest reads back whole.
    const check = await Larder.open({ dir, maintenance: false })
    const left = await check.entries()
    assert.ok(left.length > 0, 'the prune was interrupted before it removed everything')
    assert.equal(left.length, partial.remainingEntries || left.length)
    assert.deepEqual(await check.get(left[0]!.key), value)
    await check.close()
  })
})

describe('larder verify', () => {
  test('a clean cache verifies with exit 0; a damaged entry gives exit 1 until --repair removes it', async () => {
    const dir = await freshDir('verify')
    await populate(dir, 30)
    const clean = await larder(['verify', '--dir', dir])
    assert.equal(clean.code, 0, clean.stderr)
    assert.match(clean.text, /^checked 30 entries \([\d.]+ kB\) in [\d.]+ m?s: 30 intact, 0 damaged$/m)

    const cache = await Larder.open({ dir, maintenance: false })
    const victim = (await cache.entries())[0]!.key
    await cache.close()
    const file = findEntryFile(dir, victim)
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 40]! ^= 0x10
    fs.writeFileSync(file, bytes)

    const found = await larder(['verify', '--dir', dir])
    assert.equal(found.code, 1)
    assert.match(found.text, /29 intact, 1 damaged/)
    assert.match(found.stderr, /^larder: 1 entry damaged; run larder verify --repair to remove it$/m)
    assert.ok(fs.existsSync(file), 'without --repair nothing is removed')

    const repaired = json<{ corrupt: number; repaired: boolean; ok: number }>(await larder(['verify', '--repair', '--json', '--dir', dir]))
    assert.deepEqual([repaired.corrupt, repaired.repaired, repaired.ok], [1, true, 29])
    assert.ok(!fs.existsSync(file))
    assert.equal((await larder(['verify', '--dir', dir])).code, 0)
  })
})

describe('larder ls', () => {
  test('filters by prefix, pattern and tag, sorts and limits, in human and JSON form', async () => {
    const dir = await freshDir('ls')
    await populate(dir, 40)
    const all = json<{ key: string; size: number; tags: string[]; expiresAt: number | null; codec: string }[]>(
      await larder(['ls', '--json', '--dir', dir]),
    )
    assert.equal(all.length, 40)
    assert.deepEqual(
      all.map((e) => e.key),
      [...all.map((e) => e.key)].sort(),
    )
    assert.ok(all.every((e) => e.codec === 'json' && e.expiresAt === null))

    const tagged = json<{ key: string; tags: string[] }[]>(await larder(['ls', '--json', '--dir', dir, '--tag', 'table:users']))
    assert.equal(tagged.length, 14)
    assert.ok(tagged.every((e) => e.tags.includes('table:users')))
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir, '--prefix', 'row:3'])).length, 11)
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir, '--pattern', 'row:?'])).length, 10)

    const biggest = json<{ size: number }[]>(await larder(['ls', '--json', '--dir', dir, '--sort', 'size', '--limit', '5']))
    assert.equal(biggest.length, 5)
    assert.equal(biggest[0]!.size, Math.max(...all.map((e) => e.size)))
    assert.ok(biggest.every((e, i) => i === 0 || e.size <= biggest[i - 1]!.size))

    const human = await larder(['ls', '--dir', dir, '--limit', '3'])
    assert.equal(human.code, 0)
    const lines = human.text.trimEnd().split('\n')
    assert.match(lines[0]!, /^key\s+size\s+age\s+expires\s+tags$/)
    assert.match(lines[2]!, /^row:0\s+[\d.]+ (B|kB)\s+[\d.]+ (ms|s)\s+never\s+table:users$/)
    assert.equal(lines.at(-1), '3 of 40 entries')
  })

  test('without --sort or --limit it prints as it lists: a small cache exactly as the whole listing sorted by key', async () => {
    const dir = await freshDir('ls-streamed')
    await populate(dir, 40)
    // The age column aside (the two runs are moments apart), the same table, line for line.
    const withoutAge = (text: string): string[][] =>
      text
        .trimEnd()
        .split('\n')
        .map((line) => line.split(/\s{2,}/).filter((_, i) => i !== 2))
    const streamed = await larder(['ls', '--dir', dir])
    const sorted = await larder(['ls', '--dir', dir, '--sort', 'key'])
    assert.equal(streamed.code, 0, streamed.stderr)
    assert.equal(sorted.code, 0, sorted.stderr)
    assert.deepEqual(withoutAge(streamed.text), withoutAge(sorted.text))
    assert.equal(streamed.text.trimEnd().split('\n').length, 2 + 40 + 1)
    assert.equal(streamed.text.trimEnd().split('\n').at(-1), '40 entries')
    assert.equal((await larder(['ls', '--dir', dir, '--prefix', 'nothing'])).text, 'no entries\n')
    assert.equal((await larder(['ls', '--dir', dir, '--quiet'])).text, '')
  })
})

describe('larder ls --sort', () => {
  test('entries of one size are in key order, whichever partitions hold them', async () => {
    const dir = await freshDir('ls-ties')
    const cache = await Larder.open({ dir, maintenance: false })
    // Keys of one length and values of one length: every entry file has the same size, and
    // the 30 keys land in partitions whose order is not the keys'.
    const keys = Array.from({ length: 30 }, (_, i) => `tie:${String(i).padStart(2, '0')}`)
    await cache.setMany(keys.map((key) => ({ key, value: 'v'.repeat(100) })))
    await cache.close()
    for (const args of [
      ['--sort', 'size'],
      ['--sort', 'size', '--limit', '10'],
    ]) {
      const listed = json<{ key: string; size: number }[]>(await larder(['ls', '--json', '--dir', dir, ...args]))
      assert.equal(new Set(listed.map((e) => e.size)).size, 1)
      assert.deepEqual(
        listed.map((e) => e.key),
        keys.slice(0, listed.length),
        args.join(' '),
      )
    }
  })
})

describe('larder ls --limit', () => {
  test('lists a cache whose listing would not fit in its heap, holding only the first entries in order and a batch; without --limit, a chunk at a time', async () => {
    const dir = await freshDir('ls-limit')
    // 1,200 entries whose heads (a 2,000-character key, 40 tags of 1,000) make a listing of
    // about 50 MB: more than the 32 MB heap the command runs with below.
    const cache = await Larder.open({ dir, maintenance: false })
    const n = 1200
    for (let i = 0; i < n; i += 100)
      await cache.setMany(
        Array.from({ length: 100 }, (_, j) => ({
          key: `k${String(i + j).padStart(4, '0')}:`.padEnd(2000, 'x'),
          value: i + j,
          tags: Array.from({ length: 40 }, (_, t) => `${t}:${i + j}:`.padEnd(1000, 't')),
        })),
      )
    await cache.close()
    const env = { NODE_OPTIONS: '--max-old-space-size=32' }

    const first = await larder(['ls', '--dir', dir, '--limit', '3'], { env })
    assert.equal(first.code, 0, `exit ${first.code}; stderr: ${first.stderr.slice(0, 2000)}`)
    const lines = first.text.trimEnd().split('\n')
    assert.deepEqual(
      lines.slice(2, 5).map((line) => line.slice(0, 6)),
      ['k0000:', 'k0001:', 'k0002:'],
    )
    assert.equal(lines.at(-1), '3 of 1,200 entries')

    // The same entries, ties included, as the whole listing sorted (listed with a heap that holds it).
    for (const sort of ['age', 'size']) {
      const limited = json<{ key: string }[]>(await larder(['ls', '--json', '--dir', dir, '--sort', sort, '--limit', '7'], { env }))
      const whole = json<{ key: string }[]>(await larder(['ls', '--json', '--dir', dir, '--sort', sort]))
      assert.equal(whole.length, n)
      assert.deepEqual(
        limited.map((e) => e.key),
        whole.slice(0, 7).map((e) => e.key),
        `--sort ${sort} --limit 7`,
      )
    }

    // Without --limit (or --sort) the whole listing prints, with the same heap: a chunk at a
    // time as it is listed, never held whole.
    const streamed = await larder(['ls', '--dir', dir], { env })
    assert.equal(streamed.code, 0, `exit ${streamed.code}; stderr: ${streamed.stderr.slice(0, 2000)}`)
    const rows = streamed.text.trimEnd().split('\n')
    assert.match(rows[0]!, /^key\s+size\s+age\s+expires\s+tags$/)
    assert.equal(rows.at(-1), '1,200 entries')
    const keys = rows.slice(2, -1).map((line) => line.slice(0, 6))
    assert.equal(keys.length, n)
    assert.equal(new Set(keys).size, n, 'every entry printed once')
  })
})

describe('larder get and set', () => {
  test('binary data goes in through stdin and comes out through stdout byte for byte', async () => {
    const dir = await freshDir('binary')
    const data = randomBytes(3 * 1024 * 1024 + 17)
    const stored = await larder(['set', 'artifact', '--dir', dir, '--ttl', '1h', '--tag', 'build', '--tag', 'x'], { input: data })
    assert.equal(stored.code, 0, stored.stderr)
    assert.equal(stored.text, 'stored "artifact" (3.1 MB)\n')
    const got = await larder(['get', 'artifact', '--dir', dir])
    assert.equal(got.code, 0, got.stderr)
    assert.ok(got.stdout.equals(data), `got ${got.stdout.length} bytes, wrote ${data.length}`)
    const [info] = json<{ tags: string[]; expiresAt: number; codec: string }[]>(await larder(['ls', '--json', '--dir', dir]))
    assert.deepEqual(info!.tags, ['build', 'x'])
    assert.equal(info!.codec, 'stream')
    assert.ok(info!.expiresAt > Date.now() + 3_500_000 && info!.expiresAt <= Date.now() + 3_600_000)
  })

  test('get of a damaged streamed entry writes no byte to stdout (a pipe into tar cannot take bytes back): exit 1, ERR_CORRUPT', async () => {
    const dir = await freshDir('damaged')
    const data = randomBytes(5 * 1024 * 1024)
    assert.equal((await larder(['set', 'artifact', '--dir', dir], { input: data })).code, 0)
    // The entry file: the only file of the cache that large.
    const file = (fs.readdirSync(dir, { recursive: true }) as string[])
      .map((f) => path.join(dir, f))
      .find((f) => fs.lstatSync(f).isFile() && fs.lstatSync(f).size > data.length)!
    const bytes = fs.readFileSync(file)
    bytes[Math.floor(bytes.length * 0.3)]! ^= 0x40 // early: a streamed read would have passed it on
    fs.writeFileSync(file, bytes)
    const got = await larder(['get', 'artifact', '--dir', dir])
    assert.equal(got.code, 1)
    assert.equal(got.stdout.length, 0, `${got.stdout.length} bytes written`)
    assert.match(got.stderr, /damaged \(checksum mismatch\): nothing written/)
    const asJson = await larder(['get', 'artifact', '--json', '--dir', dir])
    assert.equal(asJson.code, 1)
    assert.equal((JSON.parse(asJson.text) as { error: { code: string } }).error.code, 'ERR_CORRUPT')
  })

  test('set and rm without the keys of a cache whose entries are sealed are refused (exit 2): no plaintext written, no removal claimed; get is a miss that says why', async () => {
    const dir = await freshDir('sealed')
    const keys = `k1:${'ab'.repeat(32)}`
    const app = await Larder.open({
      dir,
      maintenance: false,
      encryption: { keys: { k1: Buffer.from('ab'.repeat(32), 'hex') }, activeKey: 'k1' },
    })
    await app.set('secret', 'value')
    await app.close()
    const before = (fs.readdirSync(dir, { recursive: true }) as string[]).sort()
    const set = await larder(['set', 'other', '--dir', dir], { input: Buffer.from('plain') })
    assert.equal(set.code, 2, set.stderr)
    assert.match(set.stderr, /entries are sealed .*LARDER_ENCRYPTION_KEYS/)
    const rm = await larder(['rm', 'secret', '--dir', dir])
    assert.equal(rm.code, 2, rm.stderr)
    assert.deepEqual((fs.readdirSync(dir, { recursive: true }) as string[]).sort(), before, 'nothing written or removed')
    // get without the keys: a miss that says why, not "damaged" (verify counts the entry intact)
    const get = await larder(['get', 'secret', '--dir', dir])
    assert.equal(get.code, 1)
    assert.equal(get.stdout.length, 0)
    assert.match(get.stderr, /sealed under an encryption key this command was not given \(LARDER_ENCRYPTION_KEYS\)/)
    const getJson = await larder(['get', 'secret', '--json', '--dir', dir])
    assert.equal(getJson.code, 1)
    assert.equal((JSON.parse(getJson.text) as { error: { code: string } }).error.code, 'ERR_NOT_FOUND')
    const env = { LARDER_ENCRYPTION_KEYS: keys }
    assert.equal((await larder(['get', 'secret', '--dir', dir], { env })).text, '"value"\n')
    assert.equal((await larder(['set', 'other', '--dir', dir], { input: Buffer.from('sealed'), env })).code, 0)
    assert.equal((await larder(['rm', 'secret', '--dir', dir], { env })).text, 'removed 1 entry\n')
  })

  test('set reads a FILE; get of an application JSON value prints JSON', async () => {
    const dir = path.join(await freshDir('file'), 'cache') // set creates it; the input lives beside it
    const file = path.join(dir, '..', 'input.bin')
    const data = Buffer.concat([Buffer.from('text then zeros\n'), Buffer.alloc(70_000), randomBytes(1000)])
    fs.writeFileSync(file, data)
    assert.equal(
      (await larder(['set', 'from-file', file, '--dir', dir, '--json'])).text,
      JSON.stringify({ key: 'from-file', bytes: data.length }, null, 2) + '\n',
    )
    assert.ok((await larder(['get', 'from-file', '--dir', dir])).stdout.equals(data))

    const cache = await Larder.open({ dir, maintenance: false })
    await cache.set('row', { id: 1, name: 'ada', tags: ['x'] })
    await cache.set('text', 'plain words', { ttl: '1h' })
    await cache.close()
    assert.equal((await larder(['get', 'row', '--dir', dir])).text, '{"id":1,"name":"ada","tags":["x"]}\n')
    assert.equal((await larder(['get', 'text', '--dir', dir])).text, '"plain words"\n')
  })

  test("get decodes a custom serializer's entry with the serializer of the config file; without it, prints its bytes", async () => {
    const root = await freshDir('custom')
    fs.writeFileSync(
      path.join(root, 'larder.config.mjs'),
      [
        'export default {',
        "  dir: 'cache',",
        '  serializer: {',
        "    serialize: (value) => Buffer.from('CUSTOM:' + JSON.stringify(value)),",
        "    deserialize: (bytes) => JSON.parse(Buffer.from(bytes).toString().slice('CUSTOM:'.length)),",
        '  },',
        '}',
        '',
      ].join('\n'),
    )
    const app = await Larder.open({ config: { env: false, cwd: root } })
    await app.set('row', { id: 7, name: 'ada' })
    await app.close()
    assert.equal((await larder(['get', 'row'], { cwd: root })).text, '{"id":7,"name":"ada"}\n')
    const asJson = JSON.parse((await larder(['get', 'row', '--json'], { cwd: root })).text) as Record<string, unknown>
    assert.deepEqual(asJson, { key: 'row', codec: 'custom', encoding: 'json', value: { id: 7, name: 'ada' } })
    // run from elsewhere, the file is not found: the stored bytes, as before
    assert.equal((await larder(['get', 'row', '--dir', path.join(root, 'cache')])).text, 'CUSTOM:{"id":7,"name":"ada"}')
  })

  test('a miss exits 1 with a message on stderr and nothing on stdout; a missing FILE is a usage error', async () => {
    const dir = await freshDir('miss')
    await (await Larder.open({ dir })).close()
    const miss = await larder(['get', 'nothing-here', '--dir', dir])
    assert.equal(miss.code, 1)
    assert.equal(miss.stdout.length, 0)
    assert.equal(miss.stderr, 'larder: no entry for key "nothing-here"\n')
    const noFile = await larder(['set', 'k', path.join(dir, 'does-not-exist'), '--dir', dir])
    assert.equal(noFile.code, 2)
    assert.match(noFile.stderr, /does-not-exist: no such file/)
  })
})

describe('larder rm and clear', () => {
  test('rm removes keys, a pattern or a tag, and prints how many', async () => {
    const dir = await freshDir('rm')
    await populate(dir, 30)
    assert.equal((await larder(['rm', 'row:1', 'row:2', 'nope', '--dir', dir])).text, 'removed 2 entries\n')
    assert.deepEqual(json(await larder(['rm', '--tag', 'table:users', '--json', '--dir', dir])), { removed: 10 })
    assert.deepEqual(json(await larder(['rm', '--pattern', 'row:2?', '--json', '--dir', dir])), { removed: 7 }) // row:20–29 minus 21, 24, 27 (tagged, already gone)
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir])).length, 30 - 2 - 10 - 7)
    const usage = await larder(['rm', '--dir', dir])
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /rm needs keys, --pattern or --tag/)
  })

  test('a writing command naming a namespace no application wrote to fails (exit 1, ERR_NOT_FOUND) and creates nothing', async () => {
    const dir = await freshDir('ns-typo')
    const app = await Larder.open({ dir, namespace: 'orders', maintenance: false })
    await app.set('k', 1)
    await app.close()
    const before = (fs.readdirSync(dir, { recursive: true }) as string[]).sort()
    for (const args of [['prune'], ['rm', 'k'], ['rm', '--pattern', '*'], ['clear', '--yes'], ['verify', '--repair']]) {
      const run = await larder([...args, '--namespace', 'order', '--json', '--dir', dir])
      assert.equal(run.code, 1, `${args.join(' ')}: ${run.stderr}`)
      assert.equal((JSON.parse(run.text) as { error: { code: string } }).error.code, 'ERR_NOT_FOUND')
      assert.match(run.stderr, /has no namespace "order"/)
    }
    assert.deepEqual((fs.readdirSync(dir, { recursive: true }) as string[]).sort(), before, 'nothing was created')
    assert.deepEqual(json(await larder(['rm', 'k', '--namespace', 'orders', '--json', '--dir', dir])), { removed: 1 })
  })

  test('rm --pattern or --tag on a cache over its recorded budget removes what matches and evicts nothing else', async () => {
    const dir = await freshDir('rm-budget')
    const app = await Larder.open({ dir, maxEntries: 10, maintenance: false })
    for (let i = 0; i < 30; i++) await app.set(`keep:${i}`, i)
    await app.set('junk:1', 'x')
    await app.set('junk:2', 'x', { tags: ['junk'] })
    await app.close()
    assert.deepEqual(json(await larder(['rm', '--pattern', 'junk:1', '--json', '--dir', dir])), { removed: 1 })
    assert.deepEqual(json(await larder(['rm', '--tag', 'junk', '--json', '--dir', dir])), { removed: 1 })
    const keys = json<{ key: string }[]>(await larder(['ls', '--json', '--dir', dir])).map((e) => e.key)
    assert.equal(keys.length, 30, `every keep:* entry stays: ${keys.length}`)
    const budget = JSON.parse(fs.readFileSync(path.join(dir, 'v1', 'default', 'meta', 'budget.json'), 'utf8')) as { maxEntries: number }
    assert.equal(budget.maxEntries, 10, "the application's recorded budget is left as it was")
  })

  test('rm --pattern and --tag remove what matches, expired or not, count exactly that, and leave every other entry, expired and damaged ones too', async () => {
    const dir = await freshDir('rm-only')
    const app = await Larder.open({ dir, maintenance: false })
    await app.set('user:1', 1)
    await app.set('user:2', 2, { tags: ['t'] })
    await app.set('user:old', 3, { ttl: 1 })
    await app.set('post:1', 4)
    await app.set('post:old', 5, { ttl: 1 })
    await app.set('post:tagged-old', 6, { ttl: 1, tags: ['t'] })
    await app.set('post:damaged', randomBytes(4000).toString('hex')) // the largest file

    await app.close()
    const expiredBy = Date.now() + 5
    while (Date.now() < expiredBy) await new Promise((resolve) => setTimeout(resolve, 5))
    const damaged = entryFiles(dir).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0]!
    const bytes = fs.readFileSync(damaged)
    bytes[0]! ^= 0xff // its head: a prune removes it as damaged
    fs.writeFileSync(damaged, bytes)

    assert.deepEqual(
      json(await larder(['rm', '--pattern', 'user:*', '--json', '--dir', dir])),
      { removed: 3 },
      'user:1, user:2 and the expired user:old',
    )
    assert.deepEqual(json(await larder(['rm', '--tag', 't', '--json', '--dir', dir])), { removed: 1 }, 'the expired post:tagged-old')
    const left = await Larder.open({ dir, readOnly: true, maintenance: false })
    try {
      assert.deepEqual((await left.entries()).map((e) => e.key).sort(), ['post:1'])
      assert.equal((await left.usage()).expired, 1, 'post:old, expired but not matching, stays for a prune')
      assert.ok(fs.existsSync(damaged), 'a damaged entry that does not match stays for verify --repair or a prune')
    } finally {
      await left.close()
    }
  })

  test(
    'Ctrl-C during rm --pattern stops it as it stops a prune: what was removed reported, exit 130, the lock released, the running totals right',
    { timeout: 120_000 },
    async () => {
      const dir = await freshDir('rm-int')
      const cache = await Larder.open({ dir, maintenance: false })
      for (let i = 0; i < 30_000; i += 1000)
        await cache.setMany(Array.from({ length: 1000 }, (_, j) => ({ key: `k${i + j}`, value: i + j })))
      await cache.close()
      const lock = path.join(dir, 'v1', 'default', 'meta', 'maintenance.lock')
      const { code, stdout, stderr } = await interruptedOnceLocked(['rm', '--pattern', 'k*', '--dir', dir, '--json'], lock)
      assert.equal(code, 130, `stdout: ${stdout}\nstderr: ${stderr}`)
      const partial = JSON.parse(stdout) as { removed: number; interrupted: boolean }
      assert.equal(partial.interrupted, true)
      assert.match(stderr, /^larder: rm interrupted/)
      assert.ok(!fs.existsSync(lock), 'the lock was released')
      const stats = json<{ entries: number; runningTotals: { entries: number } }>(await larder(['stats', '--json', '--dir', dir]))
      assert.equal(stats.entries, 30_000 - partial.removed, 'the report counts what went')
      assert.equal(stats.runningTotals.entries, stats.entries, 'the running totals were settled')
    },
  )

  test('clear refuses without --yes when not on a terminal, asks on one, and clears with --yes', async () => {
    const dir = await freshDir('clear')
    await populate(dir, 10)
    const refused = await larder(['clear', '--dir', dir])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /pass --yes/)
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir])).length, 10)

    const declined = larderOnTty(['clear', '--dir', dir], 'n\n')
    assert.equal(declined.code, 0)
    assert.match(declined.output, /Remove every entry in .*\? \[y\/N\]/)
    assert.match(declined.output, /nothing removed/)
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir])).length, 10)

    const confirmed = larderOnTty(['clear', '--dir', dir], 'y\n')
    assert.equal(confirmed.code, 0)
    assert.match(confirmed.output, /cleared /)
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir])).length, 0)

    await populate(dir, 3)
    assert.equal((await larder(['clear', '--yes', '--dir', dir])).code, 0)
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir])).length, 0)
  })

  test('Ctrl-C at the clear prompt interrupts the run (exit 130, "larder: interrupted"); Ctrl-D is a no; nothing is removed', async () => {
    const dir = await freshDir('clear-interrupt')
    await populate(dir, 5)
    // The prompt's terminal is in raw mode: Ctrl-C comes as a key, not as a signal.
    const interrupted = await answerOnTty(['clear', '--dir', dir], /\[y\/N\]/, '\x03')
    assert.equal(interrupted.code, 130, interrupted.output)
    assert.match(interrupted.output, /larder: interrupted/)
    assert.doesNotMatch(interrupted.output, /Aborted/)
    const ended = await answerOnTty(['clear', '--dir', dir], /\[y\/N\]/, '\x04')
    assert.equal(ended.code, 0, ended.output)
    assert.match(ended.output, /nothing removed/)
    assert.equal(json<unknown[]>(await larder(['ls', '--json', '--dir', dir])).length, 5)
  })
})

describe('usage errors, help and version', () => {
  const bad: [string, string[], Record<string, string>?, RegExp?][] = [
    ['a size with a bad unit', ['prune', '--max-size', '5XB'], undefined, /--max-size <size>' argument '5XB' is invalid\. not a size/],
    ['a negative size', ['prune', '--max-size', '-1GB'], undefined, /--max-size/],
    ['a bad duration', ['prune', '--max-age', 'soon'], undefined, /--max-age <duration>' argument 'soon' is invalid\. not a duration/],
    ['a bad duration for set --ttl', ['set', 'k', '--ttl', '1 fortnight'], undefined, /--ttl/],
    ['a fractional entry count', ['prune', '--max-entries', '2.5'], undefined, /--max-entries/],
    ['a bad size from the environment', ['prune'], { LARDER_MAX_SIZE: 'lots' }, /value 'lots' from env 'LARDER_MAX_SIZE' is invalid/],
    ['an unknown sort', ['ls', '--sort', 'colour'], undefined, /choose one of key, size, age/],
    ['an unknown command', ['compact'], undefined, /unknown command 'compact'/],
    ['an unknown option', ['stats', '--colour'], undefined, /unknown option '--colour'/],
    ['a missing argument', ['get'], undefined, /missing required argument 'key'/],
  ]
  for (const [what, args, env, message] of bad) {
    test(`${what}: exit 2, one line naming it on stderr, no stack trace`, async () => {
      const dir = await freshDir('usage')
      const run = await larder([...args, '--dir', dir], { env: env ?? {} })
      assert.equal(run.code, 2, run.stderr)
      assert.equal(run.stdout.length, 0)
      assert.equal(run.stderr.trimEnd().split('\n').length, 1, `more than one line: ${run.stderr}`)
      assert.match(run.stderr, /^larder: /)
      if (message) assert.match(run.stderr, message)
      assert.doesNotMatch(run.stderr, /\n\s+at /)
    })
  }

  test('--json with no command: one ERR_USAGE document, one line on stderr (not the whole help), exit 2', async () => {
    const run = await larder(['--json'])
    assert.equal(run.code, 2)
    assert.deepEqual(JSON.parse(run.text), { error: { code: 'ERR_USAGE', message: 'no command given: larder <command> (see --help)' } })
    assert.equal(run.stderr, 'larder: no command given: larder <command> (see --help)\n')
  })

  test('--help on every command documents its options and their environment variables; --version prints the version', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }
    const v = await larder(['--version'])
    assert.equal(v.code, 0)
    assert.equal(v.text, `${version}\n`)
    const main = await larder(['--help'])
    assert.equal(main.code, 0)
    for (const command of ['stats', 'prune', 'verify', 'ls', 'get', 'set', 'rm', 'clear']) {
      assert.match(main.text, new RegExp(`^  ${command}\\b`, 'm'))
      const help = await larder([command, '--help'])
      assert.equal(help.code, 0, `${command} --help`)
      assert.match(help.text, new RegExp(`^Usage: larder ${command}`))
    }
    assert.match(main.text, /env:\s+LARDER_DIR/)
    const prune = await larder(['prune', '--help'])
    for (const name of ['LARDER_MAX_SIZE', 'LARDER_MAX_ENTRIES', 'LARDER_MAX_AGE']) assert.match(prune.text, new RegExp(`env:\\s+${name}`))
  })

  test("README's list of the commands' environment variables is the one their --help texts show", async () => {
    const shown = new Set<string>()
    for (const command of [[], ['stats'], ['prune'], ['verify'], ['ls'], ['get'], ['set'], ['rm'], ['clear'], ['rekey']]) {
      const help = await larder([...command, '--help'])
      for (const match of help.text.matchAll(/env:\s+(LARDER_\w+)/g)) shown.add(match[1]!)
    }
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
    const paragraph = readme.slice(readme.indexOf('**The environment.**'))
    const listed = new Set([...paragraph.slice(0, paragraph.indexOf('\n\n')).matchAll(/`(LARDER_\w+)`/g)].map((m) => m[1]!))
    assert.deepEqual([...listed].sort(), [...shown].sort())
  })
})

/** The file of `key`'s entry: found by listing the partitions (the test does not hash keys). */
function findEntryFile(dir: string, key: string): string {
  const ns = path.join(dir, 'v1', 'default')
  for (const partition of fs.readdirSync(ns)) {
    if (!/^[0-9a-f]{2}$/.test(partition)) continue
    for (const name of fs.readdirSync(path.join(ns, partition))) {
      const file = path.join(ns, partition, name)
      const bytes = fs.readFileSync(file)
      const header = bytes[4] === 1 ? 32 : 64 // format v1 or v2
      const head = bytes.subarray(0, header + Buffer.byteLength(key))
      if (head.subarray(header).toString() === key && head.readUInt32LE(24) === Buffer.byteLength(key)) return file
    }
  }
  throw new Error(`no file for ${key}`)
}
