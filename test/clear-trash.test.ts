/**
 * clear() deletes the partitions it moved to the trash in a maintenance worker, after its turn
 * in the call order: found by an adversarial review (2026-12-06), where the deletion ran on
 * the main thread (no timer fired for 1.9 s while 90,000 entries went) and every call made
 * after the clear waited for it, though nothing it could read was left.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { MaintenancePool } from '../src/maintenance/pool.ts'
import { disk } from '../src/store/disk.ts'
import { FileTier } from '../src/tiers/file-tier.ts'
import { entryFiles, tempDir } from './helpers.ts'
import { eventually, redisAvailable, startRedis } from './redis/server.ts'

test('the trash goes in a worker, after calls made after the clear have run, before clear() resolves', async () => {
  const dir = tempDir('larder-clear-trash')
  const cache = await Larder.open({ dir, maintenance: false })
  const realRm = disk.rm
  const removedHere: string[] = []
  disk.rm = ((target: string, options: fs.RmOptions) => {
    removedHere.push(target)
    return realRm(target, options)
  }) as typeof disk.rm
  try {
    await cache.setMany(Array.from({ length: 3000 }, (_, i) => ({ key: `k${i}`, value: i })))
    const order: string[] = []
    const cleared = cache.clear().then(() => order.push('clear'))
    const read = cache.get('k1').then((value) => order.push(`get ${String(value)}`))
    await Promise.all([cleared, read])
    assert.deepEqual(order, ['get undefined', 'clear'], 'a get called after the clear does not wait for the trash')
    assert.deepEqual(removedHere, [], 'nothing was deleted on the main thread')
    assert.deepEqual(entryFiles(dir), [])
    const versionDir = path.join(dir, 'v1')
    assert.deepEqual(
      fs.readdirSync(versionDir).filter((name) => name.includes('trash')),
      [],
      'the trash is gone once clear() resolves',
    )
    await cache.set('after', 1)
    assert.equal(await cache.get('after'), 1)
  } finally {
    disk.rm = realRm
    await cache.close()
  }
})

test("a write whose partition another process's clear() moves away between its check and its open or rename makes it again and lands (no ENOENT failure)", async () => {
  for (const step of ['openSync', 'renameSync'] as const) {
    for (const times of [1, 3]) {
      const dir = tempDir('larder-clear-race')
      const cache = await Larder.open({ dir, maintenance: false, failOpen: false })
      await cache.set('k', 'old') // the partition exists and has been checked
      const seam = disk as unknown as Record<string, (...args: unknown[]) => unknown>
      const real = seam[step]!
      let moves = 0
      seam[step] = (...args: unknown[]) => {
        const target = String(args[0])
        if (target.endsWith('.tmp') && moves < times) {
          // What a clear elsewhere does: the partition renamed into its trash, here and now.
          const partition = path.dirname(target)
          fs.renameSync(partition, path.join(path.dirname(path.dirname(partition)), `moved-${moves++}`))
        }
        return real(...args)
      }
      try {
        await cache.set('k', 'new')
      } finally {
        seam[step] = real
      }
      assert.equal(moves, times, `${step}: the partition was moved ${times} time(s)`)
      assert.equal((await cache.stats()).errors, 0, `${step}: no failure counted`)
      const fresh = await Larder.open({ dir, maintenance: false, memory: false })
      assert.equal(await fresh.get('k'), 'new', `${step} ×${times}: the write landed`)
      await fresh.close()
      await cache.close()
    }
  }
})

test('a clear() whose trash a prune elsewhere sweeps while it still moves partitions into it (tempMaxAge passed) still removes every entry', async () => {
  // The trash's age is counted from its name; a clear slower than another process's
  // `tempMaxAge` (1 s at least) could have its trash swept mid-way. A move into a trash gone
  // answered ENOENT, taken for a partition another clear took, and the partition stayed: its
  // entries outlived the clear that resolved.
  const dir = tempDir('larder-clear-swept')
  const cache = await Larder.open({ dir, maintenance: false })
  await cache.setMany(Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: i })))
  const realRename = disk.rename
  let moves = 0
  disk.rename = (async (from: string, to: string) => {
    if (path.basename(path.dirname(to)).startsWith('.trash-') && ++moves === 3) {
      fs.rmSync(path.dirname(to), { recursive: true, force: true }) // the sweep of a stale trash
    }
    return realRename(from, to)
  }) as typeof disk.rename
  try {
    await cache.clear()
  } finally {
    disk.rename = realRename
  }
  assert.ok(moves >= 3, 'the trash was swept part way')
  assert.deepEqual(entryFiles(dir), [], 'no entry outlives the clear')
  for (let i = 0; i < 200; i++) assert.equal(await cache.get(`k${i}`), undefined, `k${i}`)
  await cache.close()
})

test('v1/ replaced by a link to a copy outside the cache while a clear() moves its partitions: nothing outside is moved or deleted', async () => {
  const root = tempDir('larder-clear-link')
  const dir = path.join(root, 'cache')
  const cache = await Larder.open({ dir, maintenance: false })
  for (let i = 0; i < 40; i++) await cache.set(`k${i}`, i) // a few dozen partitions
  const v1 = path.join(dir, 'v1')
  const outside = path.join(root, 'outside')
  const rename = disk.rename
  let planted: string[] | undefined
  disk.rename = async (from, to) => {
    await rename(from, to)
    if (planted === undefined) {
      // After the first partition moved: v1/ goes, and a link to a copy of it takes its place.
      fs.renameSync(v1, path.join(dir, 'moved'))
      fs.cpSync(path.join(dir, 'moved'), outside, { recursive: true })
      fs.symlinkSync(outside, v1)
      planted = entryFiles(outside).sort()
    }
  }
  try {
    await cache.clear()
  } finally {
    disk.rename = rename
  }
  assert.ok(planted !== undefined && planted.length > 30, 'planted')
  assert.deepEqual(entryFiles(outside).sort(), planted, 'entries outside the cache were moved or deleted')
  await cache.close()
})

test(
  "a clear() heard on the bus while the cache closes, after close()'s last wait for the disk, changes nothing there: it went on (its trash deleted by a worker pool started again) after close() resolved",
  {
    skip: redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)',
  },
  async () => {
    const server = await startRedis()
    const redis = { url: server.url, prefix: 'closing:' }
    const a = await Larder.open({ dir: tempDir('larder-clear-heard-a'), maintenance: false, redis })
    const dirB = tempDir('larder-clear-heard-b')
    const b = await Larder.open({ dir: dirB, maintenance: false, redis })
    await b.setMany(Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: i })))
    const held = entryFiles(dirB).sort()
    // The clears each file tier is asked for, by tier: A's own, then the one B hears.
    const asked = new Map<FileTier, Promise<void>>()
    // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, called with its tier
    const clear = FileTier.prototype.clear
    FileTier.prototype.clear = function (this: FileTier) {
      const done = clear.call(this)
      asked.set(this, done)
      return done
    }
    // Held inside B's close, past its last wait for the disk (its worker pools are destroyed
    // next), until B has heard A's clear and done with it.
    // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, called with its pool
    const destroy = MaintenancePool.prototype.destroy
    let heard: Promise<void> | undefined
    MaintenancePool.prototype.destroy = function (this: MaintenancePool) {
      heard ??= (async () => {
        await a.clear()
        assert.ok(await eventually(() => asked.size === 2), 'B heard the clear')
        await [...asked.values()][1]
      })()
      return heard.then(() => destroy.call(this))
    }
    try {
      await b.close()
    } finally {
      MaintenancePool.prototype.destroy = destroy
      FileTier.prototype.clear = clear
    }
    assert.deepEqual(entryFiles(dirB).sort(), held, "B's directory changed after close()'s last wait")
    await a.close()
  },
)
