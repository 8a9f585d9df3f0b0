/**
 * A big value's temp file is created while it compresses (issue 14, W4 set): FileTier.encode
 * starts the exclusive create through the thread pool, the main thread compresses meanwhile,
 * and the write finishes synchronously in that file. These tests hold that path to the
 * guarantees of the others: the entry whole and readable, no temp file left whatever happens
 * to the write (a refused create, a failing lstat, an entry that came out too large for the
 * synchronous write, a value that cannot be encoded), failures counted as drops that the
 * breaker hears.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { afterEach, describe, test } from 'node:test'
import { Larder, type LarderOptions } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { eventually } from './eventually.ts'
import { listFiles, tempDir } from './helpers.ts'

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

function failure(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code })
}

/** ~48 KiB of JSON that compresses well: over the 32 KiB from which the temp is made ahead. */
function bigRows(tag: string): object {
  return { tag, rows: Array.from({ length: 600 }, (_, i) => ({ id: i, name: `row ${i}`, note: `a note that repeats ${i % 9}` })) }
}

const temps = (dir: string): string[] => listFiles(dir).filter((f) => f.endsWith('.tmp'))

/** An entry's temp file (not a meta file's): its 16 hex digits, then the temp's suffix. */
const entryTemp = (file: unknown): boolean => /^[0-9a-f]{16}\.[^/]*\.tmp$/.test(path.basename(String(file)))

/** Counts the creates of entry temp files by each path: thread pool (openFd) or synchronous. */
function countCreates(): { pool: number; sync: number } {
  const counts = { pool: 0, sync: 0 }
  disk.openFd = (file, flags, mode) => {
    if (entryTemp(file)) counts.pool++
    return realDisk.openFd(file, flags, mode)
  }
  disk.openSync = ((file: string, flags: number, mode?: number) => {
    if (entryTemp(file)) counts.sync++
    return realDisk.openSync(file, flags, mode)
  }) as typeof disk.openSync
  return counts
}

describe('a big value’s temp file is created while it compresses', () => {
  for (const [label, options] of [
    ['files only', { memory: false }],
    ['memory and files', {}],
  ] as [string, LarderOptions][]) {
    test(`${label}: one set at a time creates the temp in the thread pool; a small value, a durable cache and an uncompressed one do not`, async () => {
      const dir = tempDir()
      const cache = await Larder.open({ dir, ...options })
      const counts = countCreates()
      await cache.set('big', bigRows('a'))
      assert.deepEqual(counts, { pool: 1, sync: 0 }, 'the big value: created ahead, in the pool')
      await cache.set('small', { v: 1 })
      assert.deepEqual(counts, { pool: 1, sync: 1 }, 'a small value alone: the synchronous path')
      await cache.close()
      Object.assign(disk, realDisk)

      for (const other of [{ durable: true }, { compression: 'none' as const }]) {
        const plain = await Larder.open({ dir: tempDir(), ...options, ...other })
        const seen = countCreates()
        await plain.set('big', bigRows('b'))
        assert.equal(seen.pool + seen.sync, 1, JSON.stringify(other))
        assert.equal(seen.sync === 1 || other.durable === true, true, `${JSON.stringify(other)}: not created ahead`)
        await plain.close()
        Object.assign(disk, realDisk)
      }

      const reader = await Larder.open({ dir, memory: false })
      assert.deepEqual(await reader.get('big'), bigRows('a'))
      assert.deepEqual(await reader.get('small'), { v: 1 })
      assert.equal((await reader.stats()).corrupt, 0)
      await reader.close()
      assert.deepEqual(temps(dir), [])
    })
  }

  test('a create refused in the pool is a counted drop that the breaker hears; the value it was to replace is not served, no temp left', async () => {
    const dir = tempDir()
    const cache = await Larder.open({
      dir,
      memory: false,
      breaker: { volumeThreshold: 2, resetTimeout: 60_000, errorThresholdPercentage: 50 },
    })
    await cache.set('k', bigRows('old'))
    disk.openFd = () => new Promise((_resolve, reject) => setImmediate(() => reject(failure('ENOSPC'))))
    const states: string[] = []
    cache.on('breaker', (state) => states.push(state))
    for (let i = 0; i < 3; i++) await cache.set('k', bigRows(`new${i}`))
    Object.assign(disk, realDisk)
    const stats = await cache.stats()
    assert.equal(stats.dropped, 3)
    assert.ok(states.includes('open'), `the breaker opened: ${states.join(', ')}`)
    assert.deepEqual(temps(dir), [])
    await cache.close()
    const reader = await Larder.open({ dir, memory: false })
    assert.equal(await reader.get('k'), undefined, 'the old entry went (an unlink still works): a dropped set replaced it')
    assert.equal((await reader.stats()).corrupt, 0)
    await reader.close()
  })

  test('a failure after the create (the lstat before the rename) removes the temp made ahead', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, memory: false })
    await cache.set('k', bigRows('old'))
    let failed = 0
    disk.lstatSync = ((file: string, opts?: object) => {
      // the entry's own name (16 hex digits), not a directory or a temp file
      if (failed === 0 && /^[0-9a-f]{16}$/.test(path.basename(String(file)))) {
        failed++
        throw failure('EIO')
      }
      return realDisk.lstatSync(file, opts as never)
    }) as typeof disk.lstatSync
    await cache.set('k', bigRows('new'))
    Object.assign(disk, realDisk)
    assert.equal(failed, 1, 'the injected failure was met')
    assert.equal((await cache.stats()).dropped, 1)
    // the temp is removed once its create (in the pool) has finished
    await eventually(() => temps(dir).length === 0, 'the temp made ahead is removed')
    assert.equal(await cache.get('k'), undefined, 'the value the dropped set was to replace is not served')
    await cache.close()
  })

  test('an entry that comes out over the synchronous write limit (incompressible) goes by the pool, the temp made ahead let go', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, memory: false })
    // 100 KB of hex: DEFLATE saves about half, so it is compressed; 100 KB of random bytes is
    // not, and its entry (over 64 KiB) is written through the pool.
    const random = randomBytes(100_000)
    await cache.set('raw', random)
    await cache.set('hex', random.toString('hex').slice(0, 120_000))
    assert.deepEqual(temps(dir), [])
    await cache.close()
    const reader = await Larder.open({ dir, memory: false })
    assert.deepEqual(await reader.get('raw'), random)
    assert.equal(await reader.get('hex'), random.toString('hex').slice(0, 120_000))
    assert.equal((await reader.stats()).corrupt, 0)
    await reader.close()
  })
})
