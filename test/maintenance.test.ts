/**
 * Maintenance in worker threads: eviction policies, budgets across processes, prune filters,
 * dry runs, cancellation, verify, running totals, the lock, readers during eviction, and
 * processes exiting with and without close().
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'
import lockfile from 'proper-lockfile'
import { Larder, LarderError, type LarderOptions } from '../src/index.ts'
import {
  artifactDigest,
  artifactSource,
  childScript,
  runScript,
  digestStream,
  entryName,
  MiB,
  repoRoot,
  type ArtifactSpec,
} from './children/shared.ts'
import { entryFiles, listFiles, tempDir } from './helpers.ts'
import { readHitCounts } from '../src/maintenance/hit-counts.ts'

const run = promisify(execFile)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function open(dir: string, options: Omit<LarderOptions, 'dir'> = {}): Promise<Larder> {
  return Larder.open({ dir, maintenance: { interval: 0, touchAfter: 0 }, ...options })
}

async function child(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [...runScript(childScript('maintenance-child.ts')), ...args], {
    cwd: repoRoot,
    timeout: 120_000,
  })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
}

async function present(cache: Larder, keys: string[]): Promise<string[]> {
  const out: string[] = []
  for (const key of keys) if (await cache.has(key)) out.push(key)
  return out
}

const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

describe('eviction policies keep the right entries', () => {
  test('lru keeps the recently read', async () => {
    const cache = await open(tempDir())
    const all = keys('k', 10)
    for (const key of all) await cache.set(key, key)
    await sleep(20)
    for (const key of all.slice(0, 5)) await cache.get(key) // touch: mtime = now
    const report = await cache.prune({ maxEntries: 5 })
    assert.equal(report.evicted, 5)
    assert.deepEqual(await present(cache, all), all.slice(0, 5))
    await cache.close()
  })

  test('lfu keeps the frequently read, counting hits made by another process', async () => {
    const dir = tempDir()
    const cache = await open(dir, { evictionPolicy: 'lfu' })
    const all = keys('k', 10)
    for (const key of all) await cache.set(key, key)
    // Read last the ones that should go, so recency alone would keep them.
    await child('reads', dir, ...all.slice(5).map((k) => `${k}=4`))
    for (const key of all.slice(0, 5)) await cache.get(key)
    const report = await cache.prune({ maxEntries: 5 })
    assert.equal(report.evicted, 5)
    assert.deepEqual(await present(cache, all), all.slice(5))
    await cache.close()
  })

  test('fifo keeps the newest, however often the old are read', async () => {
    const cache = await open(tempDir(), { evictionPolicy: 'fifo' })
    const all = keys('k', 10)
    for (const key of all) await cache.set(key, key)
    for (let round = 0; round < 3; round++) for (const key of all.slice(0, 5)) await cache.get(key)
    await cache.prune({ maxEntries: 5 })
    assert.deepEqual(await present(cache, all), all.slice(5))
    await cache.close()
  })

  test('expired and tag-invalidated entries go first, before any live entry is evicted', async () => {
    const cache = await open(tempDir())
    for (const key of keys('live', 4)) await cache.set(key, key)
    await cache.set('short', 1, { ttl: 1 })
    await cache.set('tagged', 1, { tags: ['users'] })
    await cache.invalidateTags(['users'])
    await sleep(10)
    const report = await cache.prune({ maxEntries: 4 })
    assert.equal(report.expired, 2)
    assert.equal(report.evicted, 0)
    assert.equal(report.remainingEntries, 4)
    assert.deepEqual(await present(cache, keys('live', 4)), keys('live', 4))
    await cache.close()
  })
})

describe('budgets', () => {
  test('maxSize: a prune evicts to the low-water mark of the configured budget, in bytes', async () => {
    const dir = tempDir()
    const cache = await open(dir, { maxSize: '20KB', maintenance: false })
    for (const key of keys('k', 40)) await cache.set(key, 'x'.repeat(900))
    const before = (await cache.stats()).size
    assert.ok(before > 20_000, `${before} bytes before`)
    const report = await cache.prune()
    assert.ok(report.remainingBytes <= 18_000, `${report.remainingBytes} bytes remain`)
    const onDisk = entryFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0)
    assert.equal(onDisk, report.remainingBytes)
    assert.equal((await cache.stats()).size, onDisk)
    await cache.close()
  })

  test('a write that takes the totals over budget starts a prune by itself', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maxEntries: 50, maintenance: { interval: 0 } })
    const pruned = new Promise((resolve) => cache.once('prune', resolve))
    for (const key of keys('k', 51)) await cache.set(key, key)
    const report = (await pruned) as { remainingEntries: number }
    assert.ok(report.remainingEntries <= 45)
    assert.ok(entryFiles(dir).length <= 46) // one write may land after the scan
    await cache.close()
  })

  test('several processes writing bursts into one budgeted cache leave it within budget', async () => {
    const dir = tempDir()
    const budget = 150
    const results = await Promise.all([0, 1, 2].map((w) => child('burst', dir, String(w), '300', String(budget))))
    const prunes = results.reduce((n, r) => n + (r.pruned as number), 0)
    assert.ok(prunes >= 1, 'no process pruned')
    // 900 entries were written; what remains is the budget plus at most the writes that
    // raced the last prune's scan.
    const remaining = entryFiles(dir).length
    assert.ok(remaining <= budget * 1.5, `${remaining} entries remain for a budget of ${budget}`)
    // The running totals agree with the disk once a scan has run.
    const cache = await open(dir, { maxEntries: budget })
    const report = await cache.prune()
    assert.ok(report.remainingEntries <= budget)
    assert.equal(entryFiles(dir).length, report.remainingEntries)
    assert.equal((await cache.stats()).entries, report.remainingEntries)
    await cache.close()
  })
})

describe('prune filters', () => {
  async function populated(): Promise<{ dir: string; cache: Larder }> {
    const dir = tempDir()
    const cache = await open(dir)
    await cache.set('user:1', 1, { tags: ['users'] })
    await cache.set('user:2', 2, { tags: ['users'] })
    await cache.set('post:1', 1, { tags: ['posts'] })
    await cache.set('post:2', 2)
    return { dir, cache }
  }

  test('pattern removes the keys its glob matches', async () => {
    const { cache } = await populated()
    const report = await cache.prune({ pattern: 'user:*' })
    assert.equal(report.matched, 2)
    assert.deepEqual(await present(cache, ['user:1', 'user:2', 'post:1', 'post:2']), ['post:1', 'post:2'])
    await cache.close()
  })

  test('tags removes the entries carrying any of them', async () => {
    const { cache } = await populated()
    const report = await cache.prune({ tags: ['posts', 'nothing'] })
    assert.equal(report.matched, 1)
    assert.deepEqual(await present(cache, ['user:1', 'user:2', 'post:1', 'post:2']), ['user:1', 'user:2', 'post:2'])
    await cache.close()
  })

  test('olderThan removes entries created before a time; maxAge those not used within a duration', async () => {
    const { cache } = await populated()
    await sleep(30)
    const cut = new Date()
    await sleep(5)
    await cache.set('fresh', 1)
    assert.equal((await cache.prune({ olderThan: cut })).matched, 4)
    assert.deepEqual(await present(cache, ['user:1', 'post:2', 'fresh']), ['fresh'])

    await cache.set('used', 1)
    await cache.set('unused', 1)
    await sleep(60)
    await cache.get('used')
    assert.equal((await cache.prune({ maxAge: 40 })).matched, 2) // 'fresh' and 'unused'
    assert.deepEqual(await present(cache, ['fresh', 'used', 'unused']), ['used'])
    await cache.close()
  })

  test('maxSize and maxEntries given to prune are exact targets', async () => {
    const { dir, cache } = await populated()
    assert.equal((await cache.prune({ maxEntries: 3 })).remainingEntries, 3)
    const report = await cache.prune({ maxSize: 1 })
    assert.equal(report.remainingEntries, 0)
    assert.equal(entryFiles(dir).length, 0)
    await cache.close()
  })

  test('bad prune and verify options are LarderErrors naming the field', async () => {
    const cache = await open(tempDir())
    const cases: [unknown, string, string][] = [
      [{ maxSize: -1 }, 'ERR_INVALID_VALUE', 'maxSize'],
      [{ maxEntries: 1.5 }, 'ERR_INVALID_VALUE', 'maxEntries'],
      [{ maxAge: 'soon' }, 'ERR_INVALID_TTL', 'maxAge'],
      [{ olderThan: 'yesterday' }, 'ERR_INVALID_VALUE', 'olderThan'],
      [{ pattern: '' }, 'ERR_INVALID_VALUE', 'pattern'],
      [{ tags: 'users' }, 'ERR_INVALID_VALUE', 'tags'],
      [{ signal: {} }, 'ERR_INVALID_VALUE', 'signal'],
      [{ everything: true }, 'ERR_INVALID_OPTION', 'everything'],
    ]
    for (const [options, code, field] of cases) {
      await assert.rejects(
        cache.prune(options as never),
        (e: unknown) => e instanceof LarderError && e.code === code && e.message.includes(field),
        JSON.stringify(options),
      )
    }
    await assert.rejects(cache.verify({ repair: 'yes' } as never), (e: unknown) => e instanceof LarderError && e.field === 'repair')
    await cache.close()
    await assert.rejects(cache.prune(), (e: unknown) => e instanceof LarderError && e.code === 'ERR_CLOSED')
  })
})

describe('dry runs and cancellation', () => {
  test('a dry run deletes nothing and reports the same victims as the real prune', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    for (const key of keys('k', 30)) await cache.set(key, key)
    await cache.set('gone', 1, { ttl: 1 })
    await sleep(10)
    // Entry files only: the running totals may flush their delta file (meta/) at any moment.
    const entryFiles = (): string[] =>
      listFiles(dir)
        .filter((f) => !f.includes('/meta/'))
        .sort()
    const before = entryFiles()
    const dry = await cache.prune({ maxEntries: 10, dryRun: true })
    assert.deepEqual(entryFiles(), before)
    assert.equal(dry.dryRun, true)
    const real = await cache.prune({ maxEntries: 10, listKeys: true })
    assert.equal(dry.evicted, 20)
    assert.equal(dry.expired, 1)
    assert.deepEqual(
      { ...dry, durationMs: 0, dryRun: false, keys: [...dry.keys!].sort() },
      { ...real, durationMs: 0, keys: [...real.keys!].sort() },
    )
    await cache.close()
  })

  test('an aborted prune rejects with ERR_ABORTED and a partial report; the cache stays usable', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    await cache.setMany(keys('k', 3000).map((key) => ({ key, value: key })))
    const controller = new AbortController()
    const progress: number[] = []
    const pruning = cache.prune({
      maxEntries: 0,
      signal: controller.signal,
      onProgress: (p) => {
        progress.push(p.done)
        if (p.phase === 'scan' && p.done > 0) controller.abort()
      },
    })
    await assert.rejects(
      pruning,
      (e: unknown) =>
        e instanceof LarderError &&
        e.code === 'ERR_ABORTED' &&
        typeof (e as unknown as { report: { scanned: number } }).report.scanned === 'number',
    )
    assert.ok(progress.length >= 2)
    assert.ok(entryFiles(dir).length > 0, 'the aborted prune went on evicting')
    // The lock was released: the next prune runs.
    assert.equal((await cache.prune({ maxEntries: 0 })).remainingEntries, 0)
    const signal = AbortSignal.abort()
    await assert.rejects(cache.verify({ signal }), (e: unknown) => e instanceof LarderError && e.code === 'ERR_ABORTED')
    await cache.close()
  })
})

describe('verify', () => {
  test('removes corrupt entries and stale temp files, keeps fresh temp files, and corrects the totals', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    for (const key of keys('k', 20)) await cache.set(key, { key, body: 'y'.repeat(2000) })
    const files = entryFiles(dir)
    // A flipped bit deep in the payload: only a checksum over every byte finds it.
    const victim = path.join(dir, 'v1', 'default', (await entryName('k3')).slice(0, 2), await entryName('k3'))
    const bytes = fs.readFileSync(victim)
    bytes[bytes.length - 40] = bytes[bytes.length - 40]! ^ 1
    fs.writeFileSync(victim, bytes)
    const partition = path.dirname(files[0]!)
    const stale = path.join(partition, `${path.basename(files[0]!)}.1234567`)
    const staleStream = path.join(partition, `${path.basename(files[0]!)}.999999-1.tmp`)
    const fresh = path.join(partition, `${path.basename(files[1]!)}.7654321`)
    for (const f of [stale, staleStream, fresh]) fs.writeFileSync(f, 'partial')
    const old = (Date.now() - 60 * 60_000) / 1000
    fs.utimesSync(stale, old, old)
    fs.utimesSync(staleStream, old, old)

    const check = await cache.verify({ repair: false })
    assert.equal(check.corrupt, 1)
    assert.ok(fs.existsSync(victim) && fs.existsSync(stale), 'verify without repair removed files')
    const report = await cache.verify()
    assert.equal(report.scanned, 20)
    assert.equal(report.corrupt, 1)
    assert.equal(report.ok, 19)
    assert.equal(report.tempFilesRemoved, 2)
    assert.match(report.problems[0]!.reason, /checksum/)
    assert.ok(!fs.existsSync(victim) && !fs.existsSync(stale) && !fs.existsSync(staleStream))
    assert.ok(fs.existsSync(fresh), 'a temp file another process may still be writing was removed')
    const stats = await cache.stats()
    assert.equal(stats.entries, 19)
    assert.equal(
      stats.size,
      entryFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0),
    )
    await cache.close()
  })

  test("prune finds files swapped between entries, foreign files and directories in entries' places", async () => {
    const dir = tempDir()
    const cache = await open(dir)
    for (const key of keys('k', 6)) await cache.set(key, key)
    const [a, b, c, d] = entryFiles(dir) as [string, string, string, string]
    const aBytes = fs.readFileSync(a)
    fs.copyFileSync(b, a)
    fs.writeFileSync(b, aBytes)
    fs.writeFileSync(c, 'not an entry at all, but long enough to look like one at first glance....')
    fs.rmSync(d)
    fs.mkdirSync(d)
    const report = await cache.prune()
    assert.equal(report.corrupt, 4)
    assert.equal(report.remainingEntries, 2)
    assert.equal(entryFiles(dir).length, 2)
    await cache.close()
  })
})

describe('running totals', () => {
  test('stats() reports entries and size written by every process, without a scan', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    await cache.set('mine', 'x'.repeat(500))
    await child('burst', dir, '7', '40', '1000000')
    const stats = await cache.stats()
    assert.equal(stats.entries, 41)
    assert.equal(
      stats.size,
      entryFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0),
    )
    // Overwrites change bytes, not entries; deletes remove both.
    await cache.set('mine', 'x')
    await cache.delete('burst:7:0')
    const after = await cache.stats()
    assert.equal(after.entries, 40)
    assert.equal(
      after.size,
      entryFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0),
    )
    await cache.close()
  })
})

describe('concurrency and safety', () => {
  test('a reader that opened an entry still reads it whole while it is evicted', async () => {
    const dir = tempDir()
    const cache = await open(dir, { compression: 'none' })
    const spec: ArtifactSpec = { version: 41, size: 8 * MiB, kind: 'random' }
    await cache.setStream('artifact', artifactSource(spec))
    const stream = await cache.getStream('artifact')
    assert.ok(stream)
    const reading = digestStream(stream)
    const report = await cache.prune({ maxEntries: 0 })
    assert.equal(report.evicted, 1)
    assert.deepEqual(await reading, artifactDigest(spec))
    assert.equal(await cache.get('artifact'), undefined)
    await cache.close()
  })

  test('an entry rewritten after it was chosen as a victim survives', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    for (const key of keys('k', 40)) await cache.set(key, key)
    const name = await entryName('k0')
    const k0 = path.join(dir, 'v1', 'default', name.slice(0, 2), name)
    let rewritten = false
    const report = await cache.prune({
      maxEntries: 0,
      onProgress: (p) => {
        // Between planning and evicting (every entry is a victim), another writer replaces
        // k0 the way every writer does: a new file renamed into place.
        if (p.phase === 'evict' && p.done === 0 && !rewritten) {
          rewritten = true
          fs.writeFileSync(k0 + '.rewrite', fs.readFileSync(k0))
          fs.renameSync(k0 + '.rewrite', k0)
        }
      },
    })
    assert.ok(rewritten)
    assert.equal(report.evicted, 39)
    assert.equal(report.remainingEntries, 1)
    assert.equal(await cache.get('k0'), 'k0')
    await cache.close()
  })

  test("an explicit prune waits for another process's lock; an automatic one stands aside", async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maxEntries: 5, maintenance: { interval: 0 } })
    const lockTarget = path.join(dir, 'v1', 'default', 'meta', 'maintenance')
    fs.mkdirSync(path.dirname(lockTarget), { recursive: true })
    const release = await lockfile.lock(lockTarget, { realpath: false, lockfilePath: lockTarget + '.lock' })
    let autoReports = 0
    cache.on('prune', () => autoReports++)
    for (const key of keys('k', 10)) await cache.set(key, key)
    await sleep(200)
    assert.equal(autoReports, 0)
    assert.equal(entryFiles(dir).length, 10)
    const started = Date.now()
    const explicit = cache.prune()
    await sleep(300)
    await release()
    const report = await explicit
    assert.ok(Date.now() - started >= 300)
    assert.ok(report.remainingEntries <= 5)
    await cache.close()
  })
})

describe('process lifetime', () => {
  for (const mode of ['close', 'no-close']) {
    test(`a process that ran a prune and a verify exits by itself (${mode})`, async () => {
      const dir = tempDir()
      const started = Date.now()
      const result = await child('exit', dir, mode)
      assert.equal(result.expired, 25)
      assert.equal(result.ok, 25)
      assert.ok(Date.now() - started < 60_000)
    })
  }

  test('no worker thread starts until maintenance is needed', async () => {
    const cache = await open(tempDir())
    await cache.set('a', 1)
    await cache.get('a')
    await cache.stats()
    // A pool exists only after prune: measured through the process's thread count. (That the
    // work itself runs in a worker is shown in maintenance-review.test.ts, by bytes read per thread.)
    const threads = () => fs.readdirSync('/proc/self/task').length
    const before = threads()
    await cache.prune()
    assert.ok(threads() > before, 'prune ran without a worker thread')
    await cache.close()
    await sleep(100)
    assert.ok(threads() <= before + 1)
  })
})

describe('bookkeeping files of a cache nobody prunes', () => {
  test('running-total deltas left by many processes are folded into the base by an opening instance, and the totals stay right', async () => {
    const dir = tempDir()
    const cache = await open(dir, { maintenance: false })
    for (const key of keys('live', 5)) await cache.set(key, 'v')
    await cache.stats() // this instance's delta is in memory and soon on disk
    await sleep(300)
    // 300 earlier processes that each wrote one 10-byte entry and exited.
    const totalsDir = path.join(dir, 'v1', 'default', 'meta', 'totals')
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(totalsDir, `0.${100000 + i}.x${i}`), JSON.stringify({ entries: 1, bytes: 10 }))
    const expected = (await cache.stats()).entries
    assert.equal(expected, 305)
    // One open in 16 looks; 400 opens all miss with probability (15/16)^400 ≈ 6e-12.
    for (let i = 0; i < 400 && fs.readdirSync(totalsDir).length > 50; i++) await (await open(dir, { maintenance: false })).close()
    assert.ok(fs.readdirSync(totalsDir).length <= 3, `still ${fs.readdirSync(totalsDir).length} files`)
    assert.equal((await cache.stats()).entries, 305, 'the live instance does not count its folded delta twice')
    await cache.set('after-fold', 'v')
    await sleep(300)
    const other = await open(dir, { maintenance: false })
    assert.equal((await other.stats()).entries, 306)
    await other.close()
    await cache.close()
  })

  test('LFU hit logs left by many processes are folded into one by an opening instance, and their counts kept', async () => {
    const dir = tempDir()
    await (await open(dir, { maintenance: false, evictionPolicy: 'lfu' })).close()
    // 300 earlier processes that each counted one hit of the same entry and exited.
    const hitsDir = path.join(dir, 'v1', 'default', 'meta', 'hits')
    fs.mkdirSync(hitsDir, { recursive: true })
    const countedAt = Date.now()
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(hitsDir, `${100000 + i}.x${i}.log`), `@${countedAt}\n0123456789abcdef 1\n`)
    // One open in 16 looks; 400 opens all miss with probability (15/16)^400 ≈ 6e-12.
    for (let i = 0; i < 400 && fs.readdirSync(hitsDir).length > 50; i++) await (await open(dir, { maintenance: false })).close()
    assert.ok(fs.readdirSync(hitsDir).length <= 3, `still ${fs.readdirSync(hitsDir).length} files`)
    const counts = readHitCounts(hitsDir, Date.now(), 3_600_000)
    const hits = counts.get('0123456789abcdef') ?? 0
    assert.ok(hits > 299 && hits <= 300, `the 300 hits counted once each (${hits})`)
  })
})
