/**
 * Maintenance defects found by the second outside review (issue 16, and issue 18's lock and
 * glob findings): removals guarded by the judged inode, budgets kept under a burst, LRU and LFU
 * order, cancellation, listeners, the lock after a failed release, and the breaker's reach.
 * Real files, real child processes, real mounts where a fault needs one.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { after, describe, test, type TestContext } from 'node:test'
import { Larder, LarderError, type LarderOptions } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { childScript, runScript, entryName, repoRoot } from './children/shared.ts'
import { entryFiles, tempDir } from './helpers.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const GiB = 1024 * 1024 * 1024

async function open(dir: string, options: Omit<LarderOptions, 'dir'> = {}): Promise<Larder> {
  return Larder.open({ dir, maintenance: { interval: 0 }, ...options })
}

async function entryPath(dir: string, key: string): Promise<string> {
  const name = await entryName(key)
  return path.join(dir, 'v1', 'default', name.slice(0, 2), name)
}

/** A child process of test/children/review-child.ts, read line by line. */
function reviewChild(...args: string[]): { child: ChildProcessWithoutNullStreams; line: () => Promise<string> } {
  const child = spawn(process.execPath, [...runScript(childScript('review-child.ts')), ...args], { cwd: repoRoot })
  const lines = createInterface({ input: child.stdout })
  const queue: string[] = []
  const waiting: ((line: string) => void)[] = []
  lines.on('line', (l) => (waiting.length > 0 ? waiting.shift()!(l) : queue.push(l)))
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  child.on('exit', (code) => {
    if (code !== 0) for (const w of waiting.splice(0)) w(`exit ${code}: ${stderr}`)
  })
  return { child, line: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolve) => waiting.push(resolve))) }
}

/** Whether this process holds an open descriptor on the inode `ino`. */
function holdsInode(ino: number): boolean {
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.statSync(`/proc/self/fd/${fd}`).ino === ino) return true
    } catch {
      // closed meanwhile
    }
  }
  return false
}

describe('a removal removes only the file that was judged', () => {
  test('verify --repair keeps a fresh entry another process wrote while the damaged one was being checked', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    await cache.set('victim', 'old value')
    const file = await entryPath(dir, 'victim')
    // A damaged entry large enough that checking every byte takes a while: the real head of
    // an entry, 2 GiB of (sparse) zeros where the payload should be, and a trailer whose
    // lengths agree with the file's size (verify checks those first), so that only the
    // checksum, known once every byte is hashed, finds it damaged.
    const bytes = fs.readFileSync(file)
    const payloadOffset = 64 + bytes.readUInt32LE(24) + bytes.readUInt32LE(28)
    fs.writeFileSync(file, bytes.subarray(0, payloadOffset))
    fs.truncateSync(file, 2 * GiB)
    const trailer = Buffer.alloc(32)
    trailer.writeBigUInt64LE(BigInt(2 * GiB - payloadOffset - 32), 0) // stored length
    trailer.writeBigUInt64LE(BigInt(2 * GiB - payloadOffset - 32), 8) // logical length
    trailer.writeUInt32LE(0x4544524c, 16) // "LRDE"; grace 0; a checksum of 0, which is wrong
    const fd = fs.openSync(file, 'r+')
    fs.writeSync(fd, trailer, 0, 32, 2 * GiB - 32)
    fs.closeSync(fd)
    const damaged = fs.statSync(file).ino
    const writer = reviewChild('set-on-go', dir, 'victim', 'fresh value')
    assert.equal(await writer.line(), 'ready')

    const verifying = cache.verify({ repair: true })
    while (!holdsInode(damaged)) await sleep(5) // the worker is reading the damaged file
    writer.child.stdin.write('go\n')
    assert.equal(await writer.line(), 'done')
    assert.ok(holdsInode(damaged), 'inconclusive: verify finished before the fresh value was written')
    const report = await verifying

    assert.equal(report.corrupt, 1)
    assert.equal(await cache.get('victim'), 'fresh value', 'verify removed the entry written after its judgement')
    assert.notEqual(fs.statSync(file).ino, damaged)
    await cache.close()
  })
})

/** Files under the namespace's partitions: entries, and anything else (temp files). */
function partitionFiles(dir: string): { entries: string[]; others: string[] } {
  const ns = path.join(dir, 'v1', 'default')
  const out = { entries: [] as string[], others: [] as string[] }
  for (const p of fs.readdirSync(ns)) {
    if (!/^[0-9a-f]{2}$/.test(p)) continue
    for (const name of fs.readdirSync(path.join(ns, p))) (/^[0-9a-f]{16}$/.test(name) ? out.entries : out.others).push(name)
  }
  return out
}

describe('a cancelled prune reports what it did and leaves the totals right', () => {
  test('a signal aborted before the prune begins: ERR_ABORTED, nothing removed, and the report says what remains', async () => {
    const dir = tempDir()
    const cache = await open(dir, { maintenance: false })
    await cache.setMany(Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: `value ${i}` })))
    const error = await cache.prune({ maxEntries: 0, signal: AbortSignal.abort() }).then(
      () => undefined,
      (e: unknown) => e as { code: string; report: { evicted: number; remainingEntries: number; remainingBytes: number } },
    )
    assert.equal(error?.code, 'ERR_ABORTED')
    assert.equal(error.report.evicted, 0)
    assert.equal(entryFiles(dir).length, 100, 'nothing removed')
    assert.equal(error.report.remainingEntries, 100)
    assert.equal(
      error.report.remainingBytes,
      entryFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0),
    )
    await cache.close()
  })

  test('cancelled while evicting: the partial report counts what was removed, nothing is left half-removed, the totals agree with the disk', async () => {
    const dir = tempDir()
    const cache = await open(dir, { maintenance: false })
    const count = 6000 // two eviction tasks of 4,096 victims
    await cache.setMany(Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: i })))
    const controller = new AbortController()
    const pruning = cache.prune({
      maxEntries: 0,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'evict' && p.done > 0) controller.abort()
      },
    })
    const error = await pruning.then(
      () => undefined,
      (e: unknown) => e as { code: string; report: { evicted: number; remainingEntries: number; remainingBytes: number } },
    )
    assert.equal(error?.code, 'ERR_ABORTED')
    const { entries, others } = partitionFiles(dir)
    assert.ok(entries.length > 0, 'inconclusive: the prune finished before it was cancelled')
    assert.deepEqual(others, [], 'a file was left renamed aside')
    assert.equal(error.report.evicted, count - entries.length)
    assert.equal(error.report.remainingEntries, entries.length)
    assert.equal(
      error.report.remainingBytes,
      entryFiles(dir).reduce((n, f) => n + fs.statSync(f).size, 0),
    )
    assert.equal((await cache.stats()).entries, entries.length)
    await cache.close()
    const fresh = await open(dir, { maintenance: false })
    assert.equal((await fresh.stats()).entries, entries.length)
    await fresh.close()
  })

  test('cancelled while scanning: what the scan removed is counted, and taken off the totals', async () => {
    const dir = tempDir()
    const cache = await open(dir, { maintenance: false })
    const count = 3000
    await cache.setMany(Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: i, ttl: 1 })))
    await sleep(5) // every entry has expired
    const controller = new AbortController()
    const pruning = cache.prune({
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'scan' && p.done > 0) controller.abort()
      },
    })
    const error = await pruning.then(
      () => undefined,
      (e: unknown) => e as { code: string; report: { expired: number; remainingEntries: number } },
    )
    assert.equal(error?.code, 'ERR_ABORTED')
    const { entries, others } = partitionFiles(dir)
    assert.ok(entries.length > 0, 'inconclusive: the prune finished before it was cancelled')
    assert.deepEqual(others, [])
    assert.equal(error.report.expired, count - entries.length)
    assert.equal(error.report.remainingEntries, entries.length)
    await cache.close()
    const fresh = await open(dir, { maintenance: false })
    assert.equal((await fresh.stats()).entries, entries.length)
    await fresh.close()
  })
})

describe("automatic prunes and the instance's lifetime", () => {
  test('many automatic prunes leave no listener behind (no MaxListenersExceededWarning)', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error): void => {
      warnings.push(w.name)
    }
    process.on('warning', onWarning)
    const cache = await open(tempDir(), { maxEntries: 2 })
    let prunes = 0
    cache.on('prune', () => prunes++)
    for (let i = 0; prunes < 15; i++) {
      const pruned = new Promise((resolve) => cache.once('prune', resolve))
      await cache.set(`k${i}`, i)
      await cache.set(`k${i}b`, i)
      await cache.set(`k${i}c`, i)
      await pruned
    }
    await cache.close()
    await sleep(10) // warnings are emitted on the next tick
    process.off('warning', onWarning)
    assert.deepEqual(
      warnings.filter((w) => w === 'MaxListenersExceededWarning'),
      [],
    )
  })
})

/** Bytes of every entry file under `dir`. A file listed may be gone when it is looked at: a
 *  prune removed it, or compressLater's swap has it aside for two system calls. */
function entryBytes(dir: string): number {
  return entryFiles(dir).reduce((n, f) => n + (fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0), 0)
}

async function childBurst(dir: string, maxSize: string, count: number, how: 'set' | 'setMany'): Promise<{ prunes: number }> {
  const { line, child } = reviewChild('burst', dir, maxSize, String(count), how)
  const out = await line()
  await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)))
  assert.equal(child.exitCode, 0, out)
  return JSON.parse(out) as { prunes: number }
}

describe('budgets are kept under a burst from one process', () => {
  for (const how of ['set', 'setMany'] as const) {
    test(`a ${how} burst of 30 KB values leaves the cache within its size budget after close(), with running totals that agree`, async () => {
      const dir = tempDir()
      const result = await childBurst(dir, '1MB', 300, how) // 9 MB written against a 1 MB budget
      assert.ok(result.prunes >= 1)
      const onDisk = entryBytes(dir)
      assert.ok(onDisk <= 1_000_000, `${onDisk} bytes on disk after close() for a budget of 1 MB`)
      // The running totals agree with the disk, within the drift the README documents (the
      // writes that raced the last pass, counted by both its scan and their writer's delta).
      const cache = await open(dir, { maintenance: false })
      const { size } = await cache.stats()
      assert.ok(size <= 1_000_000 && Math.abs(size - onDisk) <= 100_000, `the running totals say ${size} bytes, the disk holds ${onDisk}`)
      await cache.close()
    })
  }

  test('shortly after a burst ends the cache is back within budget, without close() or another write', async () => {
    const dir = tempDir()
    const cache = await open(dir, { maxSize: '1MB' })
    for (let i = 0; i < 300; i++) await cache.set(`burst:${i}`, { i, pad: (i.toString(36) + 'x').repeat(15_000) })
    // Nothing more is written: the automatic prunes must catch up on their own.
    let onDisk = entryBytes(dir)
    for (let waited = 0; onDisk > 1_000_000 && waited < 60_000; waited += 100) {
      await sleep(100)
      onDisk = entryBytes(dir)
    }
    assert.ok(onDisk <= 1_000_000, `${onDisk} bytes on disk a minute after the burst, for a budget of 1 MB`)
    await cache.close()
  })
})

describe('running totals', () => {
  test("a writer's delta file is rewritten during a burst that never yields to the event loop", async () => {
    const dir = tempDir()
    const cache = await open(dir, { maintenance: false })
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, i)
    await cache.close()
    const writer = await open(dir, { maintenance: false })
    const totalsDir = path.join(dir, 'v1', 'default', 'meta', 'totals')
    const deltas = (): string =>
      fs
        .readdirSync(totalsDir)
        .filter((n) => /^\d+\.\d+\./.test(n))
        .sort()
        .map((n) => {
          try {
            return fs.readFileSync(path.join(totalsDir, n), 'utf8')
          } catch {
            return ''
          }
        })
        .join('|')
    // Overwrites of existing entries complete without a turn of the event loop, so no timer
    // can fire while this loop runs.
    const seen = new Set<string>([deltas()])
    const started = Date.now()
    for (let n = 0; Date.now() - started < 1500; n++) {
      await writer.set(`k${n % 100}`, 'x'.repeat(n % 50))
      if (n % 20 === 0) seen.add(deltas())
    }
    assert.ok(seen.size >= 3, `the delta files changed ${seen.size - 1} times in 1.5 s of writing`)
    await writer.close()
  })

  test("while another scan is under way, stats() still counts this process's writes from before it began", async () => {
    const dir = tempDir()
    const cache = await open(dir, { maintenance: false })
    await cache.setMany(Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: i })))
    await sleep(300) // flushed: this process's delta file of epoch 0 holds the 200
    assert.equal((await cache.stats()).entries, 200)
    // A scan begins (any process's prune or verify, this one's too): it bumps the epoch, and
    // writers start new delta files; the old ones count until the scan writes its base.
    const totalsDir = path.join(dir, 'v1', 'default', 'meta', 'totals')
    fs.writeFileSync(path.join(totalsDir, 'epoch'), '1')
    await cache.set('during', 1)
    for (let i = 0; i < 100 && !fs.readdirSync(totalsDir).some((n) => n.startsWith('1.')); i++) await sleep(20)
    assert.equal((await cache.stats()).entries, 201)
    const other = await open(dir, { maintenance: false })
    assert.equal((await other.stats()).entries, 201)
    await other.close()
    await cache.close()
  })
})

describe('LRU follows reads at any age of the entry', () => {
  /** A, B, C, D written 40, 30, 20 and 10 s ago: file times are coarser than a few writes. */
  async function abcd(dir: string, cache: Larder): Promise<void> {
    for (const [i, key] of ['A', 'B', 'C', 'D'].entries()) {
      await cache.set(key, key)
      const at = (Date.now() - (4 - i) * 10_000) / 1000
      fs.utimesSync(await entryPath(dir, key), at, at)
    }
  }

  async function present(cache: Larder, keys: string[]): Promise<string[]> {
    const out: string[] = []
    for (const key of keys) if ((await cache.info(key)) !== undefined) out.push(key)
    return out
  }

  test('write A, B, C, D; read A ten times; prune to 3 entries: B goes, A stays (default touchAfter)', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    await abcd(dir, cache)
    for (let i = 0; i < 10; i++) assert.equal(await cache.get('A'), 'A')
    const report = await cache.prune({ maxEntries: 3 })
    assert.equal(report.evicted, 1)
    assert.deepEqual(await present(cache, ['A', 'B', 'C', 'D']), ['A', 'C', 'D'])
    await cache.close()
  })

  test('reads in another process count too, once it has closed (its merged touches are written then)', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    await abcd(dir, cache)
    const reader = await open(dir)
    assert.equal(await reader.get('A'), 'A')
    await reader.close()
    await cache.prune({ maxEntries: 3 })
    assert.deepEqual(await present(cache, ['A', 'B', 'C', 'D']), ['A', 'C', 'D'])
    await cache.close()
  })

  test('the default touchAfter: a hit on an entry last used over a minute ago refreshes its mtime at once; hits within the minute are merged into one later touch', async () => {
    const dir = tempDir()
    const cache = await open(dir)
    await cache.set('old', 1)
    await cache.set('recent', 2)
    const old = await entryPath(dir, 'old')
    const recent = await entryPath(dir, 'recent')
    const twoMinutesAgo = (Date.now() - 120_000) / 1000
    fs.utimesSync(old, twoMinutesAgo, twoMinutesAgo)
    const before = Date.now()
    await cache.get('old')
    assert.ok(fs.statSync(old).mtimeMs >= before - 1000, 'a hit on an entry unused for two minutes did not refresh its mtime')

    const written = fs.statSync(recent).mtimeMs
    await sleep(20)
    for (let i = 0; i < 5; i++) await cache.get('recent')
    assert.equal(fs.statSync(recent).mtimeMs, written, 'a hit within a minute of the last use touched the file at once')
    const lastHit = Date.now()
    await cache.close() // the merged touch is written at close (and before a prune, and each minute)
    const touched = fs.statSync(recent).mtimeMs
    assert.ok(touched > written && touched <= lastHit + 1, `mtime ${touched}: not the time of the last hit`)
  })
})

describe('LFU forgets popularity over time, not per prune', () => {
  test('a key read 64 times survives 60 automatic prunes triggered by writes that are never read', async () => {
    const cache = await open(tempDir(), { evictionPolicy: 'lfu', maxEntries: 3 })
    await cache.set('hot', 'hot')
    for (let i = 0; i < 64; i++) assert.equal(await cache.get('hot'), 'hot')
    let prunes = 0
    cache.on('prune', () => prunes++)
    for (let i = 0; prunes < 60; i++) {
      const pruned = new Promise((resolve) => cache.once('prune', resolve))
      for (let j = 0; j < 3; j++) await cache.set(`cold:${i}:${j}`, j)
      await pruned
    }
    assert.equal(await cache.info('hot').then((e) => e?.key), 'hot', `evicted within ${prunes} prunes`)
    await cache.close()
  })

  test('counts decay with elapsed time (maintenance.lfuHalfLife): old popularity loses to a recent read', async () => {
    const dir = tempDir()
    const cache = await open(dir, { evictionPolicy: 'lfu', maintenance: { interval: 0, lfuHalfLife: 200 } })
    await cache.set('once-popular', 1)
    await cache.set('recent', 2)
    for (let i = 0; i < 8; i++) await cache.get('once-popular')
    await cache.prune() // folds the counts into one log, as any prune does
    await sleep(2100) // over ten half-lives: 8 hits weigh less than 1/100 of a hit now
    await cache.get('recent')
    await cache.prune({ maxEntries: 1 })
    assert.equal((await cache.info('once-popular'))?.key, undefined)
    assert.equal((await cache.info('recent'))?.key, 'recent')
    await cache.close()
  })
})

describe('key globs match in linear time', () => {
  test('what the documented syntax matches, and what it does not', async () => {
    const { Glob } = await import('../src/maintenance/glob.ts')
    const cases: [string, string, boolean][] = [
      ['user:*', 'user:1', true],
      ['user:*', 'user:', true],
      ['user:*', 'users:1', false],
      ['user:*', 'xuser:1', false],
      ['*:done', 'a:b:c:done', true],
      ['*:done', 'a:b:c:don', false],
      ['*', '', true],
      ['*', 'line\nbreak', true],
      ['a?c', 'abc', true],
      ['a?c', 'ac', false],
      ['a?c', 'a😀c', true],
      ['a?c', 'abbc', false],
      ['[abc]x', 'bx', true],
      ['[abc]x', 'dx', false],
      ['[a-c]', 'b', true],
      ['[a-c]', 'd', false],
      ['[z-a]*', 'apple', false],
      ['[z-a]*', 'zebra', false],
      ['[!z-a]', 'q', true],
      ['[!a-c]', 'd', true],
      ['[!a-c]', 'a', false],
      ['[^0-9]', 'x', true],
      ['[]]', ']', true],
      ['[a-]', '-', true],
      ['{user,post}:*', 'post:9', true],
      ['{user,post}:*', 'page:9', false],
      ['{a,{b,c}d}', 'cd', true],
      ['{a,{b,c}d}', 'c', false],
      ['{a,}b', 'b', true],
      ['\\*', '*', true],
      ['\\*', 'x', false],
      ['[abc', '[abc', true],
      ['{a,b', '{a,b', true],
      ['a**b', 'ab', true],
      ['build:*:*:*:done', 'build:x:y:z:done', true],
      ['build:*:*:*:done', 'build:x:y:done', false],
    ]
    for (const [pattern, key, expected] of cases) assert.equal(new Glob(pattern).test(key), expected, `${pattern} ~ ${JSON.stringify(key)}`)
  })

  test('a pattern with braces nested past 32 levels is ERR_INVALID_VALUE naming pattern (it overflowed the stack), 32 levels match', async () => {
    const { Glob } = await import('../src/maintenance/glob.ts')
    assert.equal(new Glob('{'.repeat(32) + 'a' + '}'.repeat(32)).test('a'), true)
    const cache = await open(tempDir())
    const deep = '{'.repeat(5000) + 'a' + '}'.repeat(5000)
    for (const call of [
      () => cache.prune({ pattern: deep }),
      () => cache.entries({ pattern: deep }),
      () => Promise.resolve().then(() => new Glob(deep)),
    ]) {
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(error instanceof LarderError && error.code === 'ERR_INVALID_VALUE' && error.field === 'pattern', String(error))
        return true
      })
    }
    await cache.close()
  })

  test('keys of the maximum length (8 KiB) are matched correctly by patterns with many stars', async () => {
    const { Glob } = await import('../src/maintenance/glob.ts')
    const near = 'build:' + ':'.repeat(8 * 1024 - 'build:'.length - 'donX'.length) + 'donX' // 8 KiB, never matches
    const hit = 'build:' + ':'.repeat(8 * 1024 - 'build:'.length - 'done'.length) + 'done'
    assert.equal(Buffer.byteLength(near), 8 * 1024)
    for (const pattern of ['build:*:*:*:done', '*:*:*:*:*:*:done', 'build:{*:,:*}*:done', '*[:]*[:]*done']) {
      assert.equal(new Glob(pattern).test(near), false, pattern)
      assert.equal(new Glob(pattern).test(hit), true, pattern)
    }
  })

  test('entries() and prune() with a star-heavy pattern over 8 KiB keys', { timeout: 120_000 }, async () => {
    const cache = await open(tempDir())
    const near = 'build:' + ':'.repeat(8 * 1024 - 10) + 'donX'
    const hit = 'build:' + ':'.repeat(8 * 1024 - 10) + 'done'
    await cache.set(near, 1)
    await cache.set(hit, 2)
    const listed = await cache.entries({ pattern: 'build:*:*:*:done' })
    assert.deepEqual(
      listed.map((e) => e.key),
      [hit],
    )
    const report = await cache.prune({ pattern: 'build:*:*:*:done' })
    assert.equal(report.matched, 1)
    assert.equal(await cache.get(near), 1)
    assert.equal(await cache.get(hit), undefined)
    await cache.close()
  })
})

describe('a lock whose release failed is not left to go stale', () => {
  /** A cache in `<base>/src` seen through a bind mount at `<base>/mnt`, with one damaged entry
   *  (so verify --repair must write); undefined if this machine refuses the mount. */
  async function boundCache(t: TestContext): Promise<{ mnt: string; lockDir: string } | undefined> {
    // Not tempDir(): the mount must be gone before the directory is removed.
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-bind-'))
    after(() => {
      spawnSync('umount', [path.join(base, 'mnt')])
      fs.rmSync(base, { recursive: true, force: true })
    })
    const src = path.join(base, 'src')
    const mnt = path.join(base, 'mnt')
    fs.mkdirSync(src)
    fs.mkdirSync(mnt)
    const mounted = spawnSync('mount', ['--bind', src, mnt])
    if (mounted.status !== 0) {
      t.skip(`mount --bind is not permitted here: ${String(mounted.stderr).trim()}`)
      return undefined
    }
    const cache = await open(mnt, { maintenance: false })
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, 'v'.repeat(100))
    await cache.close()
    const damaged = await entryPath(mnt, 'k3')
    const bytes = fs.readFileSync(damaged)
    bytes[bytes.length - 20]! ^= 1
    fs.writeFileSync(damaged, bytes)
    return { mnt, lockDir: path.join(mnt, 'v1', 'default', 'meta', 'maintenance.lock') }
  }

  /** Keeps the lock directory's mtime fresh, as a live holder's refreshes would, so only
   *  knowing that its holder is gone can free it (not its age). */
  function keepFresh(lockDir: string): () => void {
    const timer = setInterval(() => {
      const now = Date.now() / 1000
      try {
        fs.utimesSync(lockDir, now, now)
      } catch {
        // released
      }
    }, 200)
    return () => clearInterval(timer)
  }

  test(
    'verify meets EROFS in this process: the lock it could not release does not block the next maintenance',
    { timeout: 120_000 },
    async (t) => {
      const bound = await boundCache(t)
      if (bound === undefined) return
      const cache = await open(bound.mnt, { maintenance: false })
      try {
        let remounted = false
        await assert.rejects(
          cache.verify({
            repair: true,
            onProgress: () => {
              if (remounted) return
              remounted = true
              assert.equal(spawnSync('mount', ['-o', 'remount,ro,bind', bound.mnt]).status, 0)
            },
          }),
          (e: { code?: string }) => e.code === 'ERR_UNAVAILABLE',
        )
        assert.ok(fs.existsSync(bound.lockDir), 'inconclusive: the lock was released on the read-only mount')
        assert.equal(spawnSync('mount', ['-o', 'remount,rw,bind', bound.mnt]).status, 0)
        const stop = keepFresh(bound.lockDir)
        try {
          const report = await cache.verify({ repair: true })
          assert.equal(report.corrupt, 1)
        } finally {
          stop()
        }
        assert.ok(!fs.existsSync(bound.lockDir), 'the lock is still there after the next verify')
      } finally {
        spawnSync('mount', ['-o', 'remount,rw,bind', bound.mnt])
        await cache.close() // before the unmount, whatever happened
      }
    },
  )

  test('verify meets EROFS in a process that then exits: the next process takes its lock over at once', { timeout: 120_000 }, async (t) => {
    const bound = await boundCache(t)
    if (bound === undefined) return
    const { line } = reviewChild('verify-remount-ro', bound.mnt, bound.mnt)
    assert.equal(await line(), 'ERR_UNAVAILABLE')
    assert.ok(fs.existsSync(bound.lockDir), 'inconclusive: the lock was released on the read-only mount')
    assert.equal(spawnSync('mount', ['-o', 'remount,rw,bind', bound.mnt]).status, 0)
    const stop = keepFresh(bound.lockDir)
    const cache = await open(bound.mnt, { maintenance: false })
    try {
      assert.equal((await cache.verify({ repair: true })).corrupt, 1)
    } finally {
      stop()
      await cache.close() // before the unmount, whatever happened
    }
  })
})

describe('explicit maintenance is not starved by automatic prunes', () => {
  test('a prune() called while writes keep the cache over budget gets the lock within seconds (it waited a minute, then ERR_BUSY)', async () => {
    // The automatic prune takes the lock pass after pass while writes keep the cache over its
    // budget; the explicit call, trying at most a second apart, found it held every time.
    const dir = tempDir()
    const cache = await open(dir, { maxEntries: 50 })
    const other = await open(dir)
    let writing = true
    const writes = (async () => {
      for (let i = 0; writing; i++) await cache.set(`k${i % 400}`, 'x'.repeat(2000))
    })()
    try {
      await sleep(300) // the automatic runs are under way
      for (const caller of [other, cache]) {
        const started = Date.now()
        const report = await caller.prune({ pattern: 'k1*', signal: AbortSignal.timeout(20_000) })
        assert.equal(report.skipped, false)
        assert.ok(Date.now() - started < 10_000, `the explicit prune waited ${Date.now() - started} ms for the lock`)
      }
    } finally {
      writing = false
      await writes
    }
    await sleep(1500)
    const { entries } = await cache.stats()
    assert.ok(entries <= 60, `the budget is kept again once the explicit prune is done (${entries} entries)`)
    await other.close()
    await cache.close()
  })

  test("a waiter's mark left by a killed process holds automatic prunes back for seconds at most, and is removed", async () => {
    const dir = tempDir()
    const wanted = path.join(dir, 'v1', 'default', 'meta', 'maintenance.wanted')
    fs.mkdirSync(wanted, { recursive: true, mode: 0o700 })
    const mark = path.join(wanted, '999999-0123456789ab')
    fs.writeFileSync(mark, '')
    const old = new Date(Date.now() - 60_000)
    fs.utimesSync(mark, old, old)
    const cache = await open(dir, { maxEntries: 10 })
    for (let i = 0; i < 30; i++) await cache.set(`k${i}`, i)
    await sleep(1500)
    assert.ok((await cache.stats()).entries <= 10, 'the automatic prune ran')
    assert.equal(fs.existsSync(mark), false, 'the stale mark was removed')
    await cache.close()
  })
})

describe('the breaker guards bookkeeping and maintenance too', () => {
  const fastBreaker = { volumeThreshold: 2, resetTimeout: 60_000, errorThresholdPercentage: 50 }
  const realDisk = { ...disk }

  /** Makes every disk call (through the fault seam) whose path contains `part` fail with EIO,
   *  whatever the call: the seam's members may change, the paths do not. */
  function failPaths(part: string): () => void {
    for (const [name, fn] of Object.entries(realDisk)) {
      ;(disk as Record<string, unknown>)[name] = (...args: unknown[]) => {
        if (typeof args[0] === 'string' && args[0].includes(part))
          throw Object.assign(new Error(`EIO: injected (${name} ${args[0]})`), { code: 'EIO' })
        return (fn as (...a: unknown[]) => unknown)(...args)
      }
    }
    return () => Object.assign(disk, realDisk)
  }

  /** Collects what would have reached the host uncaught. */
  function watchHost(): { problems: unknown[]; stop: () => void } {
    const problems: unknown[] = []
    const onProblem = (e: unknown): void => {
      problems.push(e)
    }
    process.on('uncaughtException', onProblem)
    process.on('unhandledRejection', onProblem)
    return {
      problems,
      stop: () => {
        process.off('uncaughtException', onProblem)
        process.off('unhandledRejection', onProblem)
      },
    }
  }

  test('a prune removes the entries a tag stamp the disk refused invalidated (held unwritten), as reads judge them, rather than keeping them as survivors', async () => {
    const cache = await open(tempDir(), { memory: false })
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, i, { tags: i < 2 ? ['t'] : [] })
    const restore = failPaths(`${path.sep}tags${path.sep}`)
    try {
      await cache.invalidateTags(['t']) // failOpen: held by this instance until the disk takes it
    } finally {
      restore()
    }
    const report = await cache.prune() // before any read of them, which would remove them itself
    assert.equal(report.expired, 2, 'the two invalidated entries')
    assert.equal(report.remainingEntries, 3)
    assert.deepEqual(await Promise.all([0, 1, 2, 3, 4].map((i) => cache.get(`k${i}`))), [undefined, undefined, 2, 3, 4])
    await cache.close()
  })

  test('a failing running-totals flush is counted by the breaker, and nothing reaches the host', async () => {
    const cache = await open(tempDir(), { breaker: fastBreaker })
    const host = watchHost()
    const restore = failPaths(`${path.sep}meta${path.sep}totals`)
    try {
      for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i) // the entries are written; their totals are not
      await sleep(400) // the deferred flush runs too
      const { breaker, sets } = await cache.stats()
      assert.equal(sets, 10)
      assert.ok(breaker.failures >= 1, 'the failing flush never reached the breaker')
    } finally {
      restore()
      host.stop()
    }
    assert.deepEqual(host.problems, [])
    await cache.close()
  })

  test('stats() on a failing disk answers from what it last knew, and the breaker counts the failure', async () => {
    const cache = await open(tempDir(), { breaker: fastBreaker })
    await cache.set('a', 1)
    const restore = failPaths(`${path.sep}meta${path.sep}totals`)
    try {
      const stats = await cache.stats()
      assert.equal(stats.entries, 1)
      assert.ok(stats.breaker.failures >= 1, 'the failing read never reached the breaker')
    } finally {
      restore()
    }
    await cache.close()
  })

  test('while the breaker is open, prune, verify, entries and usage are refused at once with ERR_UNAVAILABLE', async () => {
    const dir = tempDir()
    const cache = await open(dir, { breaker: fastBreaker })
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, i)
    const restore = failPaths(`${path.sep}v1${path.sep}default${path.sep}`)
    try {
      for (let i = 0; i < 20; i++) await cache.get(`k${i % 5}`) // misses that open the breaker
      assert.equal((await cache.stats()).breaker.state, 'open')
    } finally {
      restore() // the disk is fine again; the breaker does not know it yet
    }
    for (const call of [() => cache.prune(), () => cache.verify(), () => cache.entries(), () => cache.usage()]) {
      await assert.rejects(call(), (e: { code?: string; message: string }) => e.code === 'ERR_UNAVAILABLE' && /breaker/.test(e.message))
    }
    assert.equal(entryFiles(dir).length, 5)
    await cache.close()
  })

  test('a maintenance step that fails on the disk is counted by the breaker', async () => {
    const dir = tempDir()
    const cache = await open(dir, { breaker: fastBreaker })
    await cache.set('a', 1)
    const restore = failPaths(path.join(dir, 'v1', 'default'))
    try {
      await assert.rejects(cache.prune(), (e: { code?: string }) => e.code === 'ERR_UNAVAILABLE')
      assert.ok((await cache.stats()).breaker.failures >= 1, 'the failed prune never reached the breaker')
    } finally {
      restore()
    }
    await cache.close()
  })
})

describe('maintenance runs in worker threads', () => {
  /** Bytes each thread of this process has read (`rchar`), by thread id. */
  function bytesReadByThread(): Map<string, number> {
    const out = new Map<string, number>()
    for (const tid of fs.readdirSync('/proc/self/task')) {
      try {
        out.set(tid, Number(/rchar: (\d+)/.exec(fs.readFileSync(`/proc/self/task/${tid}/io`, 'utf8'))![1]))
      } catch {
        // the thread ended meanwhile
      }
    }
    return out
  }

  test('verify reads every byte of every entry in a thread it started, not on the main thread', async () => {
    const dir = tempDir()
    const cache = await open(dir, { compression: 'none' })
    await cache.setMany(Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: randomBytes(20_000) })))
    const entryTotal = entryBytes(dir)
    const before = bytesReadByThread()
    const report = await cache.verify({ repair: false })
    const after = bytesReadByThread()
    assert.equal(report.ok, 100)
    const main = String(process.pid)
    const mainRead = after.get(main)! - before.get(main)!
    let newThreadsRead = 0
    for (const [tid, read] of after) if (!before.has(tid)) newThreadsRead += read
    assert.ok(newThreadsRead >= entryTotal, `threads started by verify read ${newThreadsRead} bytes of ${entryTotal}`)
    assert.ok(mainRead < entryTotal / 10, `the main thread read ${mainRead} bytes during verify`)
    await cache.close()
  })
})

describe('readOnly: true', () => {
  test('opens without creating anything, writes nothing, removes nothing, and refuses writes with ERR_READ_ONLY', async () => {
    const base = tempDir()
    const absent = path.join(base, 'not', 'here')
    const ghost = await Larder.open({ dir: absent, readOnly: true })
    assert.equal(await ghost.get('k'), undefined)
    assert.deepEqual(await ghost.entries(), [])
    await ghost.close()
    assert.deepEqual(fs.readdirSync(base), [])

    const dir = path.join(base, 'cache')
    const app = await open(dir, { evictionPolicy: 'lfu', maxEntries: 10 })
    await app.set('live', 1)
    await app.set('expired', 2, { ttl: 1 })
    await app.set('damaged', 3)
    await app.close()
    const damaged = await entryPath(dir, 'damaged')
    const bytes = fs.readFileSync(damaged)
    bytes[bytes.length - 20]! ^= 1
    fs.writeFileSync(damaged, bytes)
    await sleep(5)
    const files = (): string[] =>
      (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((f) => `${f} ${fs.lstatSync(path.join(dir, f)).mtimeMs}`)
    const before = files()

    const reader = await Larder.open({ dir, readOnly: true, evictionPolicy: 'lfu', memory: true })
    for (let i = 0; i < 3; i++) assert.equal(await reader.get('live'), 1)
    assert.equal(await reader.get('expired'), undefined)
    assert.equal(await reader.get('damaged'), undefined)
    assert.equal((await reader.verify({ repair: false })).corrupt, 1)
    await reader.entries()
    await reader.usage()
    await reader.activity()
    const writes: [string, () => Promise<unknown>][] = [
      ['set', () => reader.set('k', 1)],
      ['setMany', () => reader.setMany([{ key: 'k', value: 1 }])],
      ['setStream', () => reader.setStream('k', [Buffer.from('x')])],
      ['getOrSet', () => reader.getOrSet('k', () => 1)],
      ['increment', () => reader.increment('k')],
      ['decrement', () => reader.decrement('k')],
      ['delete', () => reader.delete('live')],
      ['deleteMany', () => reader.deleteMany(['live'])],
      ['clear', () => reader.clear()],
      ['invalidateTags', () => reader.invalidateTags(['t'])],
      ['prune', () => reader.prune()],
      ['verify', () => reader.verify()],
    ]
    for (const [name, call] of writes) await assert.rejects(call(), (e: { code?: string }) => e.code === 'ERR_READ_ONLY', name)
    await reader.close()
    assert.deepEqual(files(), before, 'a read-only instance changed the cache directory')
  })

  test('a budget and an interval given to a read-only instance prune nothing, at open, on the interval or after configure()', async () => {
    const dir = tempDir()
    const app = await open(dir)
    for (let i = 0; i < 20; i++) await app.set(`k${i}`, 'v'.repeat(200))
    await app.close()
    const files = (): string[] =>
      (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((f) => `${f} ${fs.lstatSync(path.join(dir, f)).mtimeMs}`)
    const before = files()
    const reader = await Larder.open({ dir, readOnly: true, maxEntries: 3, maintenance: { interval: '200ms' } })
    assert.equal(reader.options.maintenance.auto, false, 'no automatic maintenance')
    await sleep(700)
    await reader.configure({ maxEntries: 2, maxSize: '1KB' })
    await sleep(500)
    let readable = 0
    for (let i = 0; i < 20; i++) if ((await reader.get(`k${i}`)) !== undefined) readable++
    await reader.close()
    assert.equal(readable, 20)
    assert.deepEqual(files(), before, 'a read-only instance changed the cache directory')
  })

  test('meta/budget.json records the last open, "no budget" included', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'v1', 'default', 'meta', 'budget.json')
    await (await open(dir, { maxEntries: 100 })).close()
    assert.equal((JSON.parse(fs.readFileSync(file, 'utf8')) as { maxEntries: number }).maxEntries, 100)
    await (await open(dir)).close()
    const recorded = JSON.parse(fs.readFileSync(file, 'utf8')) as { maxEntries: unknown; maxSize: unknown; recordedAt: number }
    assert.deepEqual([recorded.maxEntries, recorded.maxSize], [null, null])
    assert.ok(Number.isFinite(recorded.recordedAt))
  })
})

test('prune({ pattern }) and prune({ tags }) remove only what was there when called: a set called after the prune keeps its entry file, for every process', async () => {
  const dir = tempDir('larder-prune-after')
  const writer = await Larder.open({ dir, memory: { maxEntries: 5000 }, maintenance: false })
  const reader = await Larder.open({ dir, memory: false, maintenance: false })
  try {
    for (const filter of [{ pattern: 'k*' }, { tags: ['t'] }]) {
      await writer.setMany(Array.from({ length: 3000 }, (_, i) => ({ key: `k${i}`, value: i, tags: ['t'] })))
      // A prune is in no key's order: the sets below run at once, while its workers' pass
      // still scans, and it removed their files too (the writer kept its memory copies, every
      // other process missed).
      const pruning = writer.prune(filter)
      const late = Array.from({ length: 30 }, (_, i) => `k${i * 100}`)
      await Promise.all(late.map((key) => writer.set(key, `late ${key}`, { tags: ['t'] })))
      const report = await pruning
      assert.ok(report.matched >= 2970, `${JSON.stringify(filter)}: matched ${report.matched}`)
      for (const key of late) assert.equal(await reader.get(key), `late ${key}`, `${JSON.stringify(filter)}: ${key}`)
      await writer.clear()
    }
  } finally {
    await Promise.all([writer.close(), reader.close()])
  }
})
