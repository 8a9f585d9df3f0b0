/**
 * A cache directory someone damaged or planted things in (a FIFO, a huge sparse file, a
 * directory or an unreadable file where larder expects one of its files): every operation
 * finishes promptly, with bounded memory, counts the foreign item and goes on with the rest.
 * Sparse files (fs.truncateSync) stand in for huge ones: they cost no disk, and reading one
 * whole is what must not happen.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { childScript, runScript, repoRoot } from './children/shared.ts'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { compactHitLogs } from '../src/maintenance/hit-counts.ts'
import { A_THEN_B, ONLY_A, open } from './encryption-helpers.ts'
import { eventually } from './eventually.ts'
import { entryFiles, tempDir } from './helpers.ts'

/** Resolves to 'timeout' if `promise` has not settled after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

const MiB = 1024 * 1024

/** Runs `work` while sampling this process's resident memory (the workers run in it too);
 *  its result and the largest growth seen. */
async function peakRssGrowth<T>(work: () => Promise<T>): Promise<{ result: T; growth: number }> {
  const before = process.memoryUsage.rss()
  let peak = before
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 2)
  try {
    const result = await work()
    return { result, growth: Math.max(peak, process.memoryUsage.rss()) - before }
  } finally {
    clearInterval(sampler)
  }
}

/** An LFU cache of 30 entries, each read (so hit logs exist); its hits directory. */
async function lfuCache(label: string): Promise<{ dir: string; hits: string }> {
  const dir = tempDir(label)
  const cache = await Larder.open({ dir, memory: false, maintenance: false, evictionPolicy: 'lfu' })
  for (let i = 0; i < 30; i++) await cache.set(`key ${i}.`, `value ${i}`)
  for (let i = 0; i < 30; i++) await cache.get(`key ${i}.`)
  await cache.close()
  return { dir, hits: path.join(dir, 'v1', 'default', 'meta', 'hits') }
}

// As root every file is readable: the children run as nobody, and the items belong to a
// third user. As anyone else, a mode of 000 on one's own file is enough.
const asRoot = process.getuid?.() === 0
const NOBODY = 65534

/** Why the children cannot run as nobody here (this Node in a directory only root may enter),
 *  or false. */
function nobodyCannotRun(): string | false {
  if (!asRoot) return false
  try {
    execFileSync(process.execPath, ['--version'], { uid: NOBODY, gid: NOBODY, stdio: 'ignore' })
    return false
  } catch {
    return `${process.execPath} cannot be run by nobody`
  }
}

describe('maintenance with items it may not read', { skip: nobodyCannotRun() }, () => {
  const child = (mode: string, dir: string): string =>
    execFileSync(process.execPath, [...runScript(childScript('unreadable-child.ts')), mode, dir], {
      cwd: repoRoot,
      encoding: 'utf8',
      ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
    })
  const forbid = (item: string): void => {
    if (asRoot) fs.chownSync(item, 1234, 1234)
    fs.chmodSync(item, 0o000)
  }
  /** `dir` filled by the child (`fill`), then one entry file and another partition made
   *  unreadable by it. */
  const forbiddenIn = (dir: string, fill: string): { unreadableFile: string; partition: string; inPartition: number } => {
    if (asRoot) fs.chownSync(dir, NOBODY, NOBODY)
    child(fill, dir)
    const files = entryFiles(dir)
    const unreadableFile = files[0]!
    const partition = path.dirname(files.find((f) => path.dirname(f) !== path.dirname(unreadableFile))!)
    const inPartition = files.filter((f) => path.dirname(f) === partition).length
    forbid(unreadableFile)
    forbid(partition)
    return { unreadableFile, partition, inPartition }
  }

  test('an unreadable entry file and an unreadable partition are skipped (the file counted and removed), and the rest is kept within budget', () => {
    const dir = tempDir('larder-hostile-unreadable')
    const { unreadableFile, partition, inPartition } = forbiddenIn(dir, 'fill')
    const out = JSON.parse(child('maintain', dir)) as {
      verify: { error?: string; problems: { file: string }[] }
      entries: number | { error: string }
      usage: { error?: string }
      prune: { error?: string; corrupt: number; remainingEntries: number }
    }
    assert.equal(out.verify.error, undefined)
    assert.deepEqual(
      out.verify.problems.map((p) => p.file),
      [unreadableFile],
    )
    assert.equal(out.entries, 20 - 1 - inPartition)
    assert.equal(out.usage.error, undefined)
    assert.equal(out.prune.error, undefined)
    assert.equal(out.prune.corrupt, 1)
    assert.equal(out.prune.remainingEntries, 5)
    assert.equal(fs.existsSync(unreadableFile), false, 'prune removed the foreign file (the partition is ours to write)')
    fs.chmodSync(partition, 0o700) // for the temp dir's removal
  })

  test('meta directories (totals, activity) another user holds fail neither verify, activity nor prune, which keeps the budget', () => {
    const dir = tempDir('larder-hostile-unreadable-meta')
    if (asRoot) fs.chownSync(dir, NOBODY, NOBODY)
    child('fill', dir)
    const meta = path.join(dir, 'v1', 'default', 'meta')
    const forbidden = ['totals', 'activity'].map((name) => path.join(meta, name))
    for (const item of forbidden) fs.mkdirSync(item, { recursive: true })
    if (asRoot) for (const item of forbidden) fs.chownSync(item, NOBODY, NOBODY)
    child('fill', dir) // an activity record, and totals, of the second run
    for (const item of forbidden) forbid(item)
    const out = JSON.parse(child('maintain', dir)) as Record<'verify' | 'activity' | 'prune', { error?: string; remainingEntries?: number }>
    assert.equal(out.verify.error, undefined)
    assert.equal(out.activity.error, undefined)
    assert.equal(out.prune.error, undefined)
    assert.equal(out.prune.remainingEntries, 5)
    for (const item of forbidden) fs.chmodSync(item, 0o700) // for the temp dir's removal
  })

  test('rekey counts an unreadable entry file corrupt, skips an unreadable partition, and rekeys the rest', () => {
    const dir = tempDir('larder-hostile-unreadable-rekey')
    const { partition, inPartition } = forbiddenIn(dir, 'fill-sealed')
    const out = JSON.parse(child('rekey', dir)) as { rekey: { error?: string; corrupt: number; rekeyed: number } }
    assert.equal(out.rekey.error, undefined)
    assert.equal(out.rekey.corrupt, 1)
    assert.equal(out.rekey.rekeyed, 20 - 1 - inPartition)
    fs.chmodSync(partition, 0o700) // for the temp dir's removal
  })
})

describe('verify in a damaged directory', () => {
  test('an entry extended to 20 GiB (sparse) is judged by its trailer at once, not hashed to its end', async () => {
    const dir = tempDir('larder-hostile-verify-sparse')
    const cache = await Larder.open({ dir, memory: false, maintenance: false })
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, `value ${i}`)
    const extended = entryFiles(dir)[0]!
    fs.truncateSync(extended, 20 * 1024 * MiB)
    const report = await within(cache.verify({ repair: false }), 5_000)
    assert.notEqual(report, 'timeout', 'verify was still hashing the sparse file after 5 s')
    assert.deepEqual(report !== 'timeout' && report.problems.map((p) => p.file), [extended])
    await cache.close()
  })
})

describe('a maintenance lock with a time in the future', () => {
  const FUTURE = new Date('2030-01-01T00:00:00Z')
  const PAST = new Date('2000-01-01T00:00:00Z')

  /** A cache of 10 entries, and where its lock goes. */
  async function lockedCache(label: string): Promise<{ cache: Larder; lock: string }> {
    const dir = tempDir(label)
    const cache = await Larder.open({ dir, memory: false, maintenance: false })
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i)
    return { cache, lock: path.join(dir, 'v1', 'default', 'meta', 'maintenance.lock') }
  }

  test('a lock whose mtime is far ahead (no holder refreshes it) is dead: the prune takes it over', async () => {
    const { cache, lock } = await lockedCache('larder-hostile-lock-future')
    fs.mkdirSync(lock)
    fs.utimesSync(lock, FUTURE, FUTURE)
    const report = await within(cache.prune({ maxEntries: 3 }), 10_000)
    assert.notEqual(report, 'timeout', 'the prune waited for the lock')
    assert.equal(report !== 'timeout' && report.remainingEntries, 3)
    await cache.close()
  })

  test('a takeover mutex whose mtime is far ahead is cleared: a dead lock is still taken over', async () => {
    const { cache, lock } = await lockedCache('larder-hostile-mutex-future')
    fs.mkdirSync(lock)
    fs.utimesSync(lock, PAST, PAST)
    fs.mkdirSync(`${lock}.takeover`)
    fs.utimesSync(`${lock}.takeover`, FUTURE, FUTURE)
    const report = await within(cache.prune({ maxEntries: 3 }), 10_000)
    assert.notEqual(report, 'timeout', 'the prune waited for the lock')
    assert.equal(report !== 'timeout' && report.remainingEntries, 3)
    await cache.close()
  })
})

describe("a foreign directory at the maintenance lock's name", () => {
  test('a directory holding files no lock holds is no lock: the prune reports it, removes it and goes on at once (it waited 30 s, then deleted it unreported)', async () => {
    const dir = tempDir('larder-hostile-lock-foreign')
    const cache = await Larder.open({ dir, memory: false, maintenance: false })
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i)
    const reports: { file: string; reason: string }[] = []
    cache.on('corrupt', (report) => reports.push(report))
    const lock = path.join(dir, 'v1', 'default', 'meta', 'maintenance.lock')
    fs.mkdirSync(lock)
    fs.writeFileSync(path.join(lock, 'notes.txt'), 'not a lock')
    const report = await within(cache.prune({ maxEntries: 3 }), 20_000)
    assert.notEqual(report, 'timeout', 'the prune waited for a lock that is none')
    assert.equal(report !== 'timeout' && report.remainingEntries, 3)
    assert.deepEqual(
      reports.map((r) => [r.file, r.reason]),
      [[lock, "a directory holding 'notes.txt' where the maintenance lock belongs: no lock, removed, never followed"]],
    )
    assert.equal((await cache.stats()).corrupt, 1, 'counted')
    assert.equal(fs.existsSync(lock), false, 'the lock released, and nothing left at its name')
    await cache.close()
  })

  test("a directory holding files at the takeover mutex's name beside a dead lock is no mutex: reported and removed at once (it held the takeover 30 s)", async () => {
    const dir = tempDir('larder-hostile-mutex-foreign')
    const cache = await Larder.open({ dir, memory: false, maintenance: false })
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i)
    const reasons: string[] = []
    cache.on('corrupt', (report) => reasons.push(report.reason))
    const lock = path.join(dir, 'v1', 'default', 'meta', 'maintenance.lock')
    fs.mkdirSync(lock)
    fs.utimesSync(lock, new Date('2000-01-01T00:00:00Z'), new Date('2000-01-01T00:00:00Z')) // dead
    fs.mkdirSync(`${lock}.takeover`)
    fs.writeFileSync(path.join(`${lock}.takeover`, 'notes.txt'), 'not a mutex')
    const report = await within(cache.prune({ maxEntries: 3 }), 20_000)
    assert.notEqual(report, 'timeout', 'the takeover waited for a mutex that is none')
    assert.equal(report !== 'timeout' && report.remainingEntries, 3)
    assert.deepEqual(reasons, [
      "a directory holding 'notes.txt' where the maintenance lock's takeover mutex belongs: removed, never followed",
    ])
    await cache.close()
  })
})

describe('a maintenance lock waited for while meta/ becomes a link', () => {
  test('an explicit prune waiting for a live holder never touches, makes or removes anything through a link put in place of meta/', async () => {
    const dir = tempDir('larder-hostile-lock-wait')
    const cache = await Larder.open({ dir, memory: false, maintenance: false })
    await cache.set('k', 1)
    const ns = path.join(dir, 'v1', 'default')
    const meta = path.join(ns, 'meta')
    // Held by a live process of this host (init), so the prune waits and marks that it does.
    fs.mkdirSync(path.join(meta, 'maintenance.lock'))
    fs.writeFileSync(path.join(meta, 'maintenance.lock', 'owner'), JSON.stringify({ pid: 1, host: os.hostname(), token: 't' }))
    const pruned = cache.prune()
    const wanted = path.join(meta, 'maintenance.wanted')
    await eventually(() => fs.existsSync(wanted) && fs.readdirSync(wanted).length === 1, 'the wait is marked')
    // meta/ becomes a link to a copy outside the cache, lock and mark included.
    const copy = path.join(tempDir('larder-outside'), 'meta')
    fs.cpSync(meta, copy, { recursive: true, preserveTimestamps: true })
    fs.renameSync(meta, path.join(ns, 'moved'))
    fs.symlinkSync(copy, meta)
    const mark = path.join(copy, 'maintenance.wanted', fs.readdirSync(path.join(copy, 'maintenance.wanted'))[0]!)
    const marked = fs.lstatSync(mark).mtimeMs
    await delay(2500) // the waiter's tries, a second apart at most
    fs.rmSync(path.join(copy, 'maintenance.lock'), { recursive: true }) // the holder outside goes
    await pruned
    await cache.close()
    assert.ok(fs.existsSync(mark), 'the mark outside the cache was removed')
    assert.equal(fs.lstatSync(mark).mtimeMs, marked, 'the mark outside the cache was touched')
  })
})

describe('LFU hit logs in a damaged directory', () => {
  test('hits/ replaced by a link to a directory outside while the logs are folded: nothing there is renamed or removed', async () => {
    const { hits } = await lfuCache('larder-hostile-hitlog-link')
    fs.writeFileSync(path.join(hits, '1.first.log'), `@${Date.now()}\n0123456789abcdef 3\n`)
    fs.writeFileSync(path.join(hits, '2.second.log'), `@${Date.now()}\n0123456789abcdef 4\n`)
    const outside = tempDir('larder-outside')
    for (const name of fs.readdirSync(hits)) fs.writeFileSync(path.join(outside, name), 'named like a hit log')
    const before = fs.readdirSync(outside).sort()
    const readSync = fs.readSync
    let planted = false
    // Planted as the first log is read: the others are renamed aside (and removed) by path.
    fs.readSync = ((...args: Parameters<typeof fs.readSync>) => {
      if (!planted) {
        planted = true
        fs.renameSync(hits, `${hits}-moved`)
        fs.symlinkSync(outside, hits)
      }
      return readSync(...args)
    }) as typeof fs.readSync
    try {
      compactHitLogs(hits, undefined, Date.now(), 3_600_000)
    } finally {
      fs.readSync = readSync
    }
    assert.ok(planted, 'planted')
    assert.deepEqual(fs.readdirSync(outside).sort(), before, 'files outside the cache were renamed or removed')
  })

  test('a huge (sparse) file named like a hit log is not read by a prune, and is removed', async () => {
    const { dir, hits } = await lfuCache('larder-hostile-hitlog-huge')
    const planted = path.join(hits, '999.planted.log')
    fs.writeFileSync(planted, '')
    fs.truncateSync(planted, 300 * MiB)
    const cache = await Larder.open({ dir, memory: false, maintenance: false, evictionPolicy: 'lfu' })
    const { result, growth } = await peakRssGrowth(() => cache.prune({ maxEntries: 10 }))
    assert.equal(result.evicted, 20)
    assert.ok(growth < 100 * MiB, `resident memory grew by ${Math.round(growth / MiB)} MiB`)
    assert.equal(fs.existsSync(planted), false, 'the foreign log is removed by compaction')
    await cache.close()
  })

  test('a directory named like a hit log does not fail the prune, and is removed', async () => {
    const { dir, hits } = await lfuCache('larder-hostile-hitlog-dir')
    const planted = path.join(hits, 'zzz.log')
    fs.mkdirSync(path.join(planted, 'sub'), { recursive: true })
    const cache = await Larder.open({ dir, memory: false, maintenance: false, evictionPolicy: 'lfu' })
    assert.equal((await cache.prune({ maxEntries: 10 })).evicted, 20)
    assert.deepEqual(
      fs.readdirSync(hits).filter((name) => name.startsWith('zzz')),
      [],
      'neither it nor its compacting name is left',
    )
    assert.equal((await cache.prune({ maxEntries: 5 })).evicted, 5)
    await cache.close()
  })

  test('a genuine log larger than one read block is still counted whole (lines across blocks)', async () => {
    const { dir, hits } = await lfuCache('larder-hostile-hitlog-blocks')
    const cache = await Larder.open({ dir, memory: false, maintenance: false, evictionPolicy: 'lfu' })
    const popular = new Set<string>()
    const files = entryFiles(dir)
    for (let i = 0; i < 10; i++) popular.add(path.basename(files.find((f) => fs.readFileSync(f).includes(`key ${i}.`))!))
    // 1.8 MiB of counts for entries long gone, then the popular ones: read in two blocks.
    const filler = Array.from({ length: 100_000 }, (_, i) => `${i.toString(16).padStart(16, 'f')} 1`).join('\n')
    const counts = [...popular].map((hash) => `${hash} 1000`).join('\n')
    fs.writeFileSync(path.join(hits, '998.big.log'), `@${Date.now()}\n${filler}\n${counts}\n`)
    await cache.prune({ maxEntries: 10 })
    const left = new Set(entryFiles(dir).map((f) => path.basename(f)))
    assert.deepEqual(left, popular, 'the ten counted most are kept')
    await cache.close()
  })
})

describe('rekey in a damaged directory', () => {
  test('a FIFO at an entry name is counted corrupt and the rekey finishes, instead of waiting on it for ever', async () => {
    const dir = tempDir('larder-hostile-rekey-fifo')
    const writer = await open(dir, { encryption: ONLY_A })
    for (let i = 0; i < 5; i++) await writer.set(`k${i}`, `value ${i}`)
    await writer.close()
    const fifo = entryFiles(dir)[0]!
    fs.rmSync(fifo)
    execFileSync('mkfifo', [fifo])
    const cache = await open(dir, { encryption: A_THEN_B })
    const rekey = cache.rekey({ sealPlain: true })
    const report = await within(rekey, 5_000)
    if (report === 'timeout') {
      // The worker waits in open(2) for a writer: be one, so this run fails instead of hanging.
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK))
      await rekey
      assert.fail('rekey was still waiting on the FIFO after 5 s')
    }
    assert.equal(report.corrupt, 1)
    assert.equal(report.rekeyed, 4)
    await cache.close()
  })

  test('a directory named like an entry a killed rekey left aside is removed, and the rekey finishes', async () => {
    const dir = tempDir('larder-hostile-rekey-aside-dir')
    const writer = await open(dir, { encryption: ONLY_A })
    for (let i = 0; i < 5; i++) await writer.set(`k${i}`, `value ${i}`)
    await writer.close()
    const deadPid = 2 ** 22 + 17 // above Linux's pid_max default: no such process
    const planted = `${path.dirname(entryFiles(dir)[0]!)}/f23c2aaaaaaaaaaa.rekey-${deadPid}`
    fs.mkdirSync(path.join(planted, 'x'), { recursive: true })
    const cache = await open(dir, { encryption: A_THEN_B })
    const report = await cache.rekey()
    assert.equal(report.rekeyed, 5)
    assert.equal(report.recovered, 0)
    assert.equal(fs.existsSync(planted), false)
    await cache.close()
  })

  test('entries extended to hundreds of MiB and past 4 GiB (sparse) are judged by their trailer, not read whole, and the others are rekeyed', async () => {
    const dir = tempDir('larder-hostile-rekey-huge')
    const writer = await open(dir, { encryption: ONLY_A })
    for (let i = 0; i < 6; i++) await writer.set(`key ${i}.`, 'x'.repeat(200_000)) // compressed, sealed, unframed
    await writer.close()
    const files = entryFiles(dir)
    fs.truncateSync(files[0]!, 300 * MiB)
    fs.truncateSync(files[1]!, 5 * 1024 * MiB)
    const cache = await open(dir, { encryption: A_THEN_B })
    const { result, growth } = await peakRssGrowth(() => cache.rekey())
    assert.equal(result.corrupt, 2)
    assert.equal(result.rekeyed, 4)
    assert.ok(growth < 100 * MiB, `resident memory grew by ${Math.round(growth / MiB)} MiB`)
    await cache.close()
  })
})

describe('a file planted where a directory of the cache belongs, after the cache is open', () => {
  test('the next write repairs it (the file removed, the directory made) and lands, even with failOpen: false', async () => {
    for (const where of ['v1', 'v1/default', 'v1/default/meta']) {
      const dir = tempDir()
      const cache = await Larder.open({ dir, failOpen: false, maintenance: false })
      try {
        await cache.set('a', 'A1') // the change log is open and held from here
        const target = path.join(dir, where)
        fs.rmSync(target, { recursive: true })
        fs.writeFileSync(target, 'planted')
        await cache.set('a', 'A2')
        assert.equal(await cache.get('a'), 'A2', where)
        assert.ok(fs.statSync(target).isDirectory(), `${where}: a directory again`)
      } finally {
        await cache.close()
      }
    }
  })
})
