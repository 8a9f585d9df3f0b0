/**
 * compressLater (issue 14's 64 KiB set): a large value is written uncompressed and a
 * maintenance worker compresses it once the sets pause, swapping the compressed file in only
 * if the entry is still the one written. What must hold: the value reads back the same from
 * every file it passes through, close() leaves the directory compressed, a newer write or a
 * delete is never undone, the running totals follow the files, and a failing disk stops the
 * worker without losing an entry.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { MessageChannel } from 'node:worker_threads'
import { Larder, LarderError } from '../src/index.ts'
import { Compression } from '../src/format/compression.ts'
import { compressEntries } from '../src/maintenance/compress-entries.ts'
import { loadHasher as loadOurHasher } from '../src/format/checksum.ts'
import { disk } from '../src/store/disk.ts'
import { swapIfSame } from '../src/store/swap-in.ts'
import { entryPathOf, COMPRESSION, forgeEntry, loadHasher, plant } from './children/forge.ts'
import { eventually } from './eventually.ts'
import { entryFiles, listFiles, runChildScript, tempDir } from './helpers.ts'

await loadHasher() // entryPathOf's
await loadOurHasher() // the worker's pass, run here

/** ~64 KiB of JSON that compresses (to about a third), different per `i`. */
function bigValue(i: number): { id: number; rows: string[] } {
  return { id: i, rows: Array.from({ length: 800 }, (_, r) => `row ${r} of value ${i}: the quick brown fox jumps over the lazy dog`) }
}

/** The codec byte of an entry file's head. */
function compressionOf(file: string): number {
  const head = Buffer.alloc(8)
  const fd = fs.openSync(file, 'r')
  try {
    fs.readSync(fd, head, 0, 8, 0)
  } finally {
    fs.closeSync(fd)
  }
  return head[6]!
}

/** The codec byte of an entry file the worker may be swapping at that moment (aside for two
 *  system calls): undefined then. */
function codecNow(file: string): number | undefined {
  try {
    return compressionOf(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** Entry files still plain (one being swapped is not). */
function plainFiles(dir: string): string[] {
  return entryFiles(dir).filter((file) => codecNow(file) === COMPRESSION.none)
}

function totalBytes(dir: string): number {
  return entryFiles(dir).reduce((sum, file) => sum + fs.statSync(file).size, 0)
}

/** The running totals' size as a new instance reads them (what every instance flushed). */
async function flushedSize(dir: string): Promise<number> {
  const fresh = await Larder.open({ dir, maintenance: false, memory: false })
  try {
    return (await fresh.stats()).size
  } finally {
    await fresh.close()
  }
}

test('a large value is written uncompressed, then compressed by a worker; it reads back the same throughout', async () => {
  const dir = tempDir('larder-compress-later')
  const cache = await Larder.open({ dir, maintenance: false, memory: false })
  try {
    // The first large value starts the worker's task and is compressed before it is written;
    // once the task runs, values are written as they are.
    let raw: { key: string; i: number } | undefined
    let i = 0
    await eventually(async () => {
      const key = `k${i}`
      await cache.set(key, bigValue(i))
      if (codecNow(entryPathOf(dir, key)) === COMPRESSION.none) raw = { key, i }
      i++
      return raw !== undefined
    }, 'a set written uncompressed once the worker runs')
    const file = entryPathOf(dir, raw!.key)
    assert.deepEqual(await cache.get(raw!.key), bigValue(raw!.i), 'read back uncompressed')
    const rawSize = fs.statSync(file).size
    await eventually(() => codecNow(file) === COMPRESSION.deflate, 'compressed once the sets paused')
    assert.ok(fs.statSync(file).size < rawSize / 2, `${fs.statSync(file).size} bytes, from ${rawSize}`)
    assert.deepEqual(await cache.get(raw!.key), bigValue(raw!.i), 'read back compressed')
    // The worker's counts come with its task's end (a moment after its last file).
    await eventually(async () => (await cache.stats()).tiers.file!.compressLater!.queued === 0, 'the task reported')
    const counts = (await cache.stats()).tiers.file!.compressLater!
    assert.ok(counts.compressed >= 1 && counts.savedBytes > 0, JSON.stringify(counts))
    assert.deepEqual(
      listFiles(dir).filter((f) => f.endsWith('.tmp')),
      [],
      'no temp file left',
    )
  } finally {
    await cache.close()
  }
})

test('sets a few hundred milliseconds apart are written plain too (the task waits for them)', async () => {
  const dir = tempDir('larder-compress-spaced')
  const cache = await Larder.open({ dir, maintenance: false, memory: false })
  try {
    let plain = 0
    for (let i = 0; i < 12 && plain === 0; i++) {
      await cache.set(`k${i}`, bigValue(i))
      if (codecNow(entryPathOf(dir, `k${i}`)) === COMPRESSION.none) plain++
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    assert.ok(plain > 0, 'a set 300 ms after the last found the task still running')
  } finally {
    await cache.close()
  }
})

test('close() waits for the values written uncompressed; the totals follow the files', async () => {
  const dir = tempDir('larder-compress-close')
  const cache = await Larder.open({ dir, maintenance: false })
  for (let i = 0; i < 60; i++) await cache.set(`k${i}`, bigValue(i))
  await cache.close()
  const files = entryFiles(dir)
  assert.equal(files.length, 60)
  for (const file of files) assert.equal(compressionOf(file), COMPRESSION.deflate, file)
  const fresh = await Larder.open({ dir, maintenance: false, memory: false })
  try {
    for (let i = 0; i < 60; i++) assert.deepEqual(await fresh.get(`k${i}`), bigValue(i))
    const stats = await fresh.stats()
    assert.equal(stats.entries, 60)
    assert.equal(stats.size, totalBytes(dir), 'the running totals know the files shrank')
  } finally {
    await fresh.close()
  }
})

test('a budget is kept at the size values have once compressed: a prune waits for the worker, and evicts nothing they leave room for', async () => {
  const dir = tempDir('larder-compress-budget')
  // 50 values of 100 kB written plain (5 MB) that compress to under 1 kB each: within 1 MB.
  const cache = await Larder.open({ dir, maxSize: '1MB' })
  let evicted = 0
  cache.on('prune', (report) => (evicted += report.evicted))
  const value = (i: number): string => `value ${i} ${'abcdefgh'.repeat(12_500)}`
  // The worker running first (till then a set compresses before it writes), kept so by the sets.
  await eventually(async () => {
    await cache.set('k0', value(0))
    await new Promise((resolve) => setTimeout(resolve, 50))
    return (await cache.stats()).tiers.file!.compressLater!.compressed > 0
  }, 'the worker compressed a value')
  for (let i = 1; i < 50; i++) await cache.set(`k${i}`, value(i))
  await cache.close()
  assert.equal(evicted, 0)
  const fresh = await Larder.open({ dir, readOnly: true })
  try {
    assert.equal((await fresh.entries()).length, 50)
    assert.ok(totalBytes(dir) < 1_000_000)
  } finally {
    await fresh.close()
  }
})

test('a prune compresses the values another process wrote plain a moment ago before it judges the budget, and evicts nothing they leave room for', async () => {
  const dir = tempDir('larder-compress-budget-fresh')
  const first = await Larder.open({ dir, maintenance: false })
  await first.close()
  // 20 values of 100 kB (2 MB plain, ~20 kB compressed), plain and fresh, as compressLater
  // leaves them in another process (whose worker waits while a prune's scan counts the files)
  // or in one that exited without close(). A prune counted them at their plain size and
  // evicted 12 of the 20 under 1 MB. (Three processes writing 50 such values into one cache
  // kept 8 of 150: each prune's scan found the others' newest values plain.)
  const payload = Buffer.from('a value that compresses well. '.repeat(3400))
  const files = Array.from({ length: 20 }, (_, i) => plant(dir, `k${i}`, forgeEntry({ key: `k${i}` }, payload, payload.length)))
  assert.equal(plainFiles(dir).length, 20)
  assert.ok(totalBytes(dir) > 2_000_000)
  const cache = await Larder.open({ dir, maxSize: '1MB', maintenance: false })
  try {
    const report = await cache.prune()
    assert.equal(report.evicted, 0)
    assert.equal(report.remainingEntries, 20)
    for (const file of files) assert.equal(compressionOf(file), COMPRESSION.deflate, 'compressed by the prune')
    assert.equal(report.remainingBytes, totalBytes(dir))
    assert.ok(totalBytes(dir) < 1_000_000)
    assert.equal((await cache.stats()).size, totalBytes(dir), 'the totals follow the files')
    assert.deepEqual(await cache.get('k7'), payload)
  } finally {
    await cache.close()
  }
})

test('a dry-run prune reports what the prune would do with values left plain, and writes nothing (a read-only instance too)', async () => {
  const dir = tempDir('larder-compress-budget-dry')
  const first = await Larder.open({ dir, maintenance: false })
  await first.close()
  const payload = Buffer.from('a value that compresses well. '.repeat(3400))
  // 20 fresh plain values of 100 kB (as in the test above) and 10 settled ones, left plain
  // two minutes ago by a writer that exited without close(): a prune compresses both kinds
  // and evicts none under 1 MB. A dry run counted them at their plain size and reported 12
  // of the 30 evicted.
  const fresh = Array.from({ length: 20 }, (_, i) => plant(dir, `k${i}`, forgeEntry({ key: `k${i}` }, payload, payload.length)))
  const settled = Array.from({ length: 10 }, (_, i) => {
    const file = plant(dir, `s${i}`, forgeEntry({ key: `s${i}` }, payload, payload.length))
    const then = (Date.now() - 120_000) / 1000
    fs.utimesSync(file, then, then)
    return file
  })
  const before = new Map([...fresh, ...settled].map((file) => [file, fs.readFileSync(file).toString('base64')]))
  const mtimes = new Map([...fresh, ...settled].map((file) => [file, fs.statSync(file).mtimeMs]))
  for (const readOnly of [false, true]) {
    const cache = await Larder.open({ dir, maxSize: '1MB', maintenance: false, readOnly })
    try {
      const report = await cache.prune({ dryRun: true })
      assert.equal(report.evicted, 0, `readOnly: ${readOnly}`)
      assert.equal(report.remainingEntries, 30)
      assert.ok(report.remainingBytes < 1_000_000, `${report.remainingBytes} bytes remaining`)
    } finally {
      await cache.close()
    }
    for (const [file, bytes] of before) {
      assert.equal(fs.readFileSync(file).toString('base64'), bytes, 'nothing rewritten')
      assert.equal(fs.statSync(file).mtimeMs, mtimes.get(file))
    }
  }
  // The prune itself does what the dry run said.
  const cache = await Larder.open({ dir, maxSize: '1MB', maintenance: false })
  try {
    const report = await cache.prune()
    assert.equal(report.evicted, 0)
    assert.equal(report.remainingEntries, 30)
  } finally {
    await cache.close()
  }
})

test('savings told to the totals when the last flush is old are taken off once (a flush asks for them again while they are told)', async () => {
  const dir = tempDir('larder-compress-told-once')
  const cache = await Larder.open({ dir, maintenance: false })
  try {
    // 600 KB values (12 MB in all) take the worker longer than the sets: it is still saving
    // after the last set, and nothing asks for the savings until stats().
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, String(i).repeat(600_000))
    await eventually(() => plainFiles(dir).length === 0, 'every value compressed')
    // Past the totals' flush interval (250 ms): telling the savings now flushes at once.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const stats = await cache.stats()
    assert.equal(stats.entries, 20)
    assert.equal(stats.size, totalBytes(dir), 'the savings are taken off once')
  } finally {
    await cache.close()
  }
  assert.equal(await flushedSize(dir), totalBytes(dir), 'and the flushed totals say the same')
})

test('a prune or verify scanning while the worker compresses: the totals stay equal to the files (a rewrite during a scan waits for its end)', async () => {
  for (const scan of ['prune', 'verify'] as const) {
    const dir = tempDir('larder-compress-scan')
    const cache = await Larder.open({ dir, maintenance: false, memory: false })
    try {
      for (let i = 0; i < 100; i++) await cache.set(`k${i}`, `row ${i} `.repeat(8000)) // ~56 KB each, written plain
      if (scan === 'prune') await cache.prune()
      else await cache.verify()
      await eventually(() => plainFiles(dir).length === 0, `${scan}: every value compressed after the scan`)
      await eventually(async () => (await cache.stats()).tiers.file!.compressLater!.queued === 0, 'the task reported')
      // Never below the files; above them by at most the one file rewritten between the
      // worker's look for a scan and the scan's start (its savings dropped, the safe way).
      const size = (await cache.stats()).size
      const onDisk = totalBytes(dir)
      assert.ok(size >= onDisk && size - onDisk <= 90_000, `${scan}: the totals ${size} are the files' ${onDisk}`)
    } finally {
      await cache.close()
    }
    const flushed = await flushedSize(dir)
    assert.ok(flushed >= totalBytes(dir) && flushed - totalBytes(dir) <= 90_000, `${scan}: and so are the flushed ones`)
  }
})

test('overwrites and deletes of keys the worker is compressing leave the totals equal to the files (a rewrite never lands inside a change)', async () => {
  for (const change of ['overwrite', 'delete'] as const) {
    const dir = tempDir('larder-compress-overwrite')
    const cache = await Larder.open({ dir, maintenance: false, memory: false })
    try {
      const value = (i: number, round: number): string => `${'x'.repeat(60)}${i}:${round}`.repeat(1200) // ~80 KB
      for (let round = 0; round < 25; round++) {
        for (let i = 0; i < 20; i++) {
          if (change === 'delete' && round % 2 === 1) await cache.delete(`k${i}`)
          else await cache.set(`k${i}`, value(i, round))
        }
        // The worker starts after 20 ms without a set: the next round meets it at work.
        await new Promise((resolve) => setTimeout(resolve, 18 + (round % 8)))
      }
      await eventually(async () => (await cache.stats()).tiers.file!.compressLater!.queued === 0, 'the task reported')
      assert.equal((await cache.stats()).size, totalBytes(dir), `${change}: the totals are the files' sizes`)
    } finally {
      await cache.close()
    }
    assert.equal(await flushedSize(dir), totalBytes(dir), `${change}: and so are the flushed ones`)
  }
})

test('a scan killed part way (its epoch begun, its lock gone or stale) does not hold compress-later back', async () => {
  for (const lock of ['gone', 'stale'] as const) {
    const dir = tempDir('larder-compress-dead-scan')
    const cache = await Larder.open({ dir, maintenance: false, memory: false })
    try {
      // Until the worker's task runs (the first values are compressed before they are written).
      let n = 0
      await eventually(async () => {
        await cache.set(`warm${n}`, bigValue(n++))
        await new Promise((resolve) => setTimeout(resolve, 200)) // a pause: the worker compresses after one
        return (await cache.stats()).tiers.file!.compressLater!.compressed > 0
      }, 'a task compressing')
      // What a prune SIGKILLed during its scan leaves: the epoch moved on, its base never
      // written, and its lock left behind until it goes stale (or taken over and removed).
      const meta = path.join(dir, 'v1', 'default', 'meta')
      const epochFile = path.join(meta, 'totals', 'epoch')
      const epoch = fs.existsSync(epochFile) ? Number(fs.readFileSync(epochFile, 'utf8')) : 0
      fs.writeFileSync(epochFile, String(epoch + 1))
      if (lock === 'stale') {
        const lockDir = path.join(meta, 'maintenance.lock')
        fs.mkdirSync(lockDir)
        const old = new Date(Date.now() - 60_000)
        fs.utimesSync(lockDir, old, old)
      }
      for (let i = 1; i <= 10; i++) await cache.set(`k${i}`, bigValue(i))
      assert.ok(plainFiles(dir).length > 0, 'inconclusive: nothing was written plain')
      await eventually(() => plainFiles(dir).length === 0, `${lock}: compressed all the same`, 5_000)
    } finally {
      await cache.close()
    }
  }
})

test("resetStats() zeroes stats().tiers.file.compressLater's counts, as every tier's figures; the files still waiting stay counted", async () => {
  const dir = tempDir('larder-compress-reset')
  const cache = await Larder.open({ dir, maintenance: false, memory: false })
  try {
    const counts = async () => (await cache.stats()).tiers.file!.compressLater!
    for (let i = 0; i < 12 && (await counts()).compressed === 0; i++) {
      await cache.set(`k${i}`, bigValue(i))
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await eventually(async () => {
      const now = await counts()
      return now.compressed > 0 && now.queued === 0
    }, 'the worker compressed some')
    cache.resetStats()
    assert.deepEqual(await counts(), { queued: 0, compressed: 0, savedBytes: 0, skipped: 0 })
    await cache.set('after', bigValue(99))
    await eventually(async () => (await counts()).queued === 0, 'the value set since had its turn')
    const after = await counts()
    assert.ok(after.compressed + after.skipped <= 1, `only the value set since is counted (${JSON.stringify(after)})`)
  } finally {
    await cache.close()
  }
})

test('compressLater: false, durable and encryption compress before the set resolves', async () => {
  const cases = [
    { compressLater: false as const },
    { durable: true },
    { encryption: { keys: { k1: Buffer.alloc(32, 7) }, activeKey: 'k1' } },
  ]
  for (const options of cases) {
    const dir = tempDir('larder-compress-now')
    const cache = await Larder.open({ dir, maintenance: false, ...options })
    try {
      for (let i = 0; i < 20; i++) {
        await cache.set(`k${i}`, bigValue(i))
        assert.notEqual(compressionOf(entryPathOf(dir, `k${i}`)), COMPRESSION.none, JSON.stringify(Object.keys(options)))
      }
      assert.equal((await cache.stats()).tiers.file!.compressLater!.queued, 0)
    } finally {
      await cache.close()
    }
  }
})

test('compressLater is validated: a size, or false ("off")', async () => {
  const dir = tempDir('larder-compress-option')
  await assert.rejects(
    Larder.open({ dir, compressLater: 'lots' }),
    (error: unknown) => error instanceof LarderError && error.code === 'ERR_INVALID_OPTION' && error.message.includes('compressLater'),
  )
  const cache = await Larder.open({ dir, maintenance: false, compressLater: 'off' })
  try {
    await cache.set('k', bigValue(1))
    assert.equal(compressionOf(entryPathOf(dir, 'k')), COMPRESSION.deflate)
  } finally {
    await cache.close()
  }
})

/** Entries written uncompressed by a cache that compresses nothing, for the worker's function
 *  to be handed directly; the creation time of each. */
async function plainEntries(dir: string, keys: string[]): Promise<number[]> {
  const cache = await Larder.open({ dir, maintenance: false, compression: 'none' })
  try {
    const times: number[] = []
    for (const [i, key] of keys.entries()) {
      await cache.set(key, bigValue(i))
      times.push((await cache.info(key))!.createdAt)
    }
    return times
  } finally {
    await cache.close()
  }
}

function compressInput(dir: string): Parameters<typeof compressEntries>[0] & { post: (message: unknown) => void } {
  const { port1, port2 } = new MessageChannel()
  return {
    task: 'compress',
    namespaceDir: path.join(dir, 'v1', 'default'),
    shared: false,
    compression: Compression.Deflate,
    level: 1,
    maxFileBytes: 64 * 1024 * 1024,
    guard: new SharedArrayBuffer(2 * 256 * 4),
    port: port2,
    running: new Int32Array(new SharedArrayBuffer(4)),
    progress: new Float64Array(4),
    post: (message) => port1.postMessage(message),
  }
}

test("the worker's pass: only the entry set wrote is compressed; one replaced, gone or never written is left", async () => {
  const dir = tempDir('larder-compress-pass')
  const [a, b] = await plainEntries(dir, ['a', 'b'])
  const fileA = entryPathOf(dir, 'a')
  const fileB = entryPathOf(dir, 'b')
  const bBytes = fs.readFileSync(fileB)
  const input = compressInput(dir)
  const done = compressEntries(input)
  input.post([fileA, a, 0])
  input.post([fileB, b! - 1, 0]) // another entry than the one posted: a newer write's
  input.post([entryPathOf(dir, 'never'), a, 0])
  input.post(null)
  const out = await done
  assert.deepEqual(out, { taken: 3, compressed: 1, savedBytes: out.savedBytes, skipped: 2, failed: undefined })
  assert.ok(out.savedBytes > 30_000, String(out.savedBytes))
  assert.equal(compressionOf(fileA), COMPRESSION.deflate)
  assert.deepEqual(fs.readFileSync(fileB), bBytes, 'left byte for byte')
  assert.equal(fs.existsSync(entryPathOf(dir, 'never')), false, 'nothing made where nothing was')
  assert.equal(input.running[0], 0, 'no longer taking files')
  const fresh = await Larder.open({ dir, maintenance: false, memory: false })
  try {
    assert.deepEqual(await fresh.get('a'), bigValue(0))
    assert.deepEqual(await fresh.get('b'), bigValue(1))
  } finally {
    await fresh.close()
  }
})

test("the worker's pass compresses what it holds within about a second when the sets never pause", async () => {
  const dir = tempDir('larder-compress-steady')
  const [a] = await plainEntries(dir, ['a'])
  const file = entryPathOf(dir, 'a')
  const input = compressInput(dir)
  const done = compressEntries(input)
  // A file every 2 ms: never the 20 ms pause the pass waits for.
  const posting = setInterval(() => input.post([file, a, 0]), 2)
  try {
    await eventually(() => compressionOf(file) === COMPRESSION.deflate, 'compressed while the posts went on', 5_000)
  } finally {
    clearInterval(posting)
  }
  input.post(null)
  const out = await done
  assert.equal(out.compressed, 1)
  assert.equal(out.failed, undefined)
})

test("the worker's pass stops at a failing disk: the file it failed on and the rest are not taken", async () => {
  const dir = tempDir('larder-compress-fail')
  const [a] = await plainEntries(dir, ['a'])
  const input = compressInput(dir)
  const done = compressEntries(input)
  // A file where a partition directory belongs: opening an entry under it fails with ENOTDIR,
  // a disk's error, not a miss.
  const blocked = path.join(dir, 'v1', 'default', 'not-a-dir')
  fs.writeFileSync(blocked, '')
  input.post([path.join(blocked, '0123456789abcdef'), a, 0])
  input.post([entryPathOf(dir, 'a'), a, 0])
  const out = await done
  assert.equal(out.failed, 'ENOTDIR')
  assert.equal(out.taken, 1, 'the file after the failure is left for the caller')
  assert.equal(compressionOf(entryPathOf(dir, 'a')), COMPRESSION.none)
})

test('a clear() while the worker runs leaves the running totals equal to the files (what it saved before is not taken off again)', async () => {
  const dir = tempDir('larder-compress-clear')
  const cache = await Larder.open({ dir, maintenance: false })
  try {
    // Sets until the worker takes them (its thread starts meanwhile), then a run of values
    // written plain, then a pause for the worker.
    let i = 0
    await eventually(async () => {
      await cache.set(`w${i}`, bigValue(i))
      return codecNow(entryPathOf(dir, `w${i++}`)) === COMPRESSION.none
    }, 'a set written plain')
    for (let i = 0; i < 40; i++) await cache.set(`a${i}`, bigValue(i))
    await eventually(() => plainFiles(dir).length === 0, 'every file compressed')
    // and the worker's counts of them written (a moment after each swap)
    await eventually(async () => (await cache.stats()).tiers.file!.compressLater!.queued === 0, 'the worker counted them')
    await cache.clear()
    for (let i = 0; i < 40; i++) await cache.set(`b${i}`, bigValue(i))
  } finally {
    await cache.close()
  }
  const fresh = await Larder.open({ dir, maintenance: false })
  try {
    const stats = await fresh.stats()
    assert.equal(stats.entries, 40)
    assert.equal(entryFiles(dir).length, 40)
    assert.equal(stats.size, totalBytes(dir))
  } finally {
    await fresh.close()
  }
})

test('a prune compresses what compressLater left plain, each value by one scan, and not one its writer may still be at', async () => {
  const dir = tempDir('larder-compress-prune')
  const payload = Buffer.from('a value that compresses well. '.repeat(2200))
  /** A plain entry as a writer that exited without close() leaves it. */
  const plantPlain = (key: string, createdAt: number, mtime: number): string => {
    const file = plant(dir, key, forgeEntry({ key, createdAt }, payload, payload.length))
    fs.utimesSync(file, mtime / 1000, mtime / 1000)
    return file
  }
  // A prune by a cache that compresses first: it compresses nothing, and records its scan.
  const first = await Larder.open({ dir, maintenance: false, compressLater: false })
  await first.prune()
  await first.close()
  const now = Date.now()
  const left = plantPlain('left', now, now - 120_000)
  const older = plantPlain('older', now - 600_000, now - 120_000) // created before that scan: it was that scan's to try
  const fresh = plantPlain('fresh', now, now) // its writer's worker may be at it still
  const cache = await Larder.open({ dir, maintenance: false })
  try {
    await cache.prune()
    assert.equal(compressionOf(left), COMPRESSION.deflate)
    assert.equal(compressionOf(older), COMPRESSION.none)
    assert.equal(compressionOf(fresh), COMPRESSION.none)
    assert.ok(Math.abs(fs.statSync(left).mtimeMs - (now - 120_000)) < 1, 'its LRU position kept')
    assert.deepEqual(await cache.get('left'), payload)
    assert.equal((await cache.stats()).size, totalBytes(dir), 'the scan counted the compressed size')
  } finally {
    await cache.close()
  }
})

test('a swap finds the entry replaced since it was read: the newer one stays, the rewrite is dropped', () => {
  const dir = tempDir('larder-swap')
  const file = path.join(dir, 'entry')
  fs.writeFileSync(file, 'old')
  const judged = fs.statSync(file)
  const temp = `${file}.rewrite`
  fs.writeFileSync(temp, 'rewritten old')
  fs.writeFileSync(`${file}.new`, 'newer')
  fs.renameSync(`${file}.new`, file)
  assert.equal(swapIfSame(file, temp, judged), 'changed')
  assert.equal(fs.readFileSync(file, 'utf8'), 'newer')
  // The rewrite is the caller's to drop (compress-entries.ts and rekey-entries.ts do).
  assert.deepEqual(fs.readdirSync(dir).sort(), ['entry', 'entry.rewrite'], 'nothing left at the aside name')
  const same = fs.statSync(file)
  fs.writeFileSync(temp, 'rewritten newer')
  assert.equal(swapIfSame(file, temp, same), 'swapped')
  assert.equal(fs.readFileSync(file, 'utf8'), 'rewritten newer')
  assert.deepEqual(fs.readdirSync(dir).sort(), ['entry'])
})

test('a swap whose rewrite is gone (a clear() moved it away) or that cannot link puts the entry back', () => {
  const dir = tempDir('larder-swap-back')
  const file = path.join(dir, 'entry')
  const temp = `${file}.rewrite`
  fs.writeFileSync(file, 'old')
  fs.writeFileSync(temp, 'rewritten')
  fs.rmSync(temp)
  assert.equal(swapIfSame(file, temp, fs.statSync(file)), 'changed')
  assert.equal(fs.readFileSync(file, 'utf8'), 'old')
  assert.deepEqual(fs.readdirSync(dir), ['entry'])
  // A file system without hard links (vfat, exFAT): link() fails with EPERM.
  fs.writeFileSync(temp, 'rewritten')
  const link = disk.linkSync
  disk.linkSync = () => {
    throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' })
  }
  try {
    assert.throws(() => swapIfSame(file, temp, fs.statSync(file)), { code: 'EPERM' })
  } finally {
    disk.linkSync = link
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'old', 'back under its name, not left aside')
  assert.deepEqual(fs.readdirSync(dir).sort(), ['entry', 'entry.rewrite'])
})

test('another process reading while the worker rewrites never gets a wrong value', async () => {
  const dir = tempDir('larder-compress-readers')
  const keys = 40
  const writer = await Larder.open({ dir, maintenance: false })
  for (let i = 0; i < keys; i++) await writer.set(`k${i}`, bigValue(i))
  const reader = runChildScript('compress-reader', [dir, String(keys), '3000'])
  // Rounds of new values for every key while the child reads: each round's sets are written
  // uncompressed (once the worker's task runs), and compressed in the pause after the round.
  for (let round = 1; round <= 6; round++) {
    for (let i = 0; i < keys; i++) await writer.set(`k${i}`, bigValue(i + round * 1000))
    await new Promise((resolve) => setTimeout(resolve, 150))
  }
  const counts = (await writer.stats()).tiers.file!.compressLater!
  await writer.close()
  const { code, out, err } = await reader
  assert.equal(code, 0, err)
  const seen = JSON.parse(out) as { hits: number; misses: number; wrong: string[]; corrupt: number }
  assert.deepEqual(seen.wrong, [])
  assert.equal(seen.corrupt, 0)
  assert.ok(seen.hits > 0, out)
  assert.ok(counts.compressed > 0, `rewritten while the reader ran: ${JSON.stringify(counts)}`)
})
