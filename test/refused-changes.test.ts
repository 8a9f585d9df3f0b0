/**
 * A change the disk refused (a set or delete that failed, or that the open breaker turned
 * away) is a counted drop under failOpen: the caller goes on as if it was made. So the entry
 * it was to replace must not be served again: not by this instance (a miss until the disk lets
 * it go), and, once removed, by no other (tiers/refused-changes.ts). Faults through the disk
 * seam (EIO from unlink, ENOSPC from writes), as the rest of the fault tests inject them.
 */
import { afterEach, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { tempDir } from './helpers.ts'

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

const seam = disk as unknown as Record<string, (...args: unknown[]) => unknown>

function failing(code: string, name: string): (...args: unknown[]) => never {
  return () => {
    throw Object.assign(new Error(`${code}: injected, ${name}`), { code })
  }
}

test('a delete whose unlink fails (EIO) is a counted drop; the value stays unserved here while the disk refuses, and goes from the disk once it lets it', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir })
  await cache.set('k', 'old')
  const other = await Larder.open({ dir, readOnly: true })
  seam.unlinkSync = failing('EIO', 'unlink')
  assert.equal(await cache.delete('k'), false)
  const stats = await cache.stats()
  assert.equal(stats.dropped, 1)
  assert.equal(await cache.get('k'), undefined, 'this instance does not serve what it was asked to delete')
  assert.equal(await cache.has('k'), false)
  assert.equal(await cache.info('k'), undefined)
  assert.equal(await cache.getStream('k'), undefined)
  Object.assign(disk, realDisk)
  assert.equal(await cache.get('k'), undefined, 'the next read removed it')
  assert.equal(await other.get('k'), undefined, 'and so no other instance reads it either')
  await cache.set('k', 'new')
  assert.equal(await other.get('k'), 'new', 'a later write is served as ever')
  await other.close()
  await cache.close()
})

test('a set refused while the breaker is open: the entry it was to replace goes once the breaker closes again, with no read of that key', async () => {
  const dir = tempDir()
  const breaker = { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeout: 200 }
  const cache = await Larder.open({ dir, breaker })
  await cache.set('k', 'old')
  await cache.set('probe', 1)
  const other = await Larder.open({ dir, readOnly: true })
  seam.openSync = failing('EIO', 'open')
  seam.lstatSync = failing('EIO', 'lstat')
  const opened = once(cache, 'breaker')
  await cache.set('j', 'x') // fails: the breaker opens
  assert.deepEqual((await opened)[0], 'open')
  await cache.set('k', 'new') // refused by the open breaker: a counted drop
  assert.equal((await cache.stats()).dropped, 2)
  Object.assign(disk, realDisk)
  assert.equal(await other.get('k'), 'old', 'the other instance cannot know yet: the disk refused every change')
  const closed = new Promise<void>((resolve) => cache.on('breaker', (state) => state === 'closed' && resolve()))
  await new Promise((resolve) => setTimeout(resolve, 250))
  assert.equal(await cache.get('probe'), 1, "the half-open trial (another key's read) succeeds")
  await closed
  for (let i = 0; i < 50 && (await other.get('k')) !== undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(await other.get('k'), undefined, 'the entry the refused set was to replace is gone from the disk')
  await other.close()
  await cache.close()
})

test('with failOpen false the caller hears of the failure, and the key stays as it was', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, failOpen: false })
  await cache.set('k', 'old')
  seam.unlinkSync = failing('EIO', 'unlink')
  await assert.rejects(cache.delete('k'), { code: 'ERR_UNAVAILABLE' })
  Object.assign(disk, realDisk)
  assert.equal(await cache.get('k'), 'old')
  await cache.close()
})

test('a newer write of the key by this instance settles a refused change: its value is served', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir })
  await cache.set('k', 'old')
  seam.unlinkSync = failing('EIO', 'unlink')
  await cache.delete('k')
  await cache.set('k', 'newer') // the rename replaces the old entry; unlink is not needed
  Object.assign(disk, realDisk)
  assert.equal(await cache.get('k'), 'newer')
  const other = await Larder.open({ dir, readOnly: true })
  assert.equal(await other.get('k'), 'newer')
  await other.close()
  await cache.close()
})

test('a clear the disk refused (EIO): no entry older than it is served here, later writes are, and the clear goes through once the breaker closes', async () => {
  const dir = tempDir()
  const breaker = { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeout: 200 }
  const cache = await Larder.open({ dir, breaker })
  for (const key of ['a', 'b', 'c']) await cache.set(key, `old ${key}`)
  const other = await Larder.open({ dir, readOnly: true })
  seam.readdirSync = failing('EIO', 'readdir')
  const opened = once(cache, 'breaker')
  await cache.clear() // a counted drop: the caller goes on as if the cache were empty
  assert.deepEqual((await opened)[0], 'open')
  assert.equal((await cache.stats()).dropped, 1)
  assert.equal(await cache.get('a'), undefined, 'not served while the disk refuses')
  assert.equal(await cache.info('b'), undefined)
  assert.equal(await cache.getStream('c'), undefined)
  Object.assign(disk, realDisk)
  await new Promise((resolve) => setTimeout(resolve, 250))
  const closed = new Promise<void>((resolve) => cache.on('breaker', (state) => state === 'closed' && resolve()))
  assert.equal(await cache.get('a'), undefined, 'the half-open trial: the older entry is removed, not read')
  await closed
  for (let i = 0; i < 100 && ((await other.get('b')) !== undefined || (await other.get('c')) !== undefined); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  assert.equal(await other.get('b'), undefined, 'the clear went through: no instance reads what it removes')
  assert.equal(await other.get('c'), undefined)
  assert.equal(await cache.get('b'), undefined)
  await cache.set('d', 'new')
  assert.equal(await cache.get('d'), 'new', 'a write after the clear is served')
  assert.equal(await other.get('d'), 'new')
  await other.close()
  await cache.close()
})

test('a clear the disk refused with failOpen false: the caller is told, and the entries stay readable', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, failOpen: false })
  await cache.set('a', 'old')
  seam.readdirSync = failing('EIO', 'readdir')
  await assert.rejects(cache.clear(), { code: 'ERR_UNAVAILABLE' })
  Object.assign(disk, realDisk)
  assert.equal(await cache.get('a'), 'old')
  await cache.close()
})

test('after a refused clear, a write made meanwhile is served while the disk still refuses the clear', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, breaker: { volumeThreshold: 1000 } })
  await cache.set('a', 'old')
  await cache.set('b', 'old')
  seam.readdirSync = failing('EIO', 'readdir')
  await cache.clear()
  assert.equal(await cache.get('a'), undefined)
  await cache.set('b', 'new')
  assert.equal(await cache.get('b'), 'new', 'created after the refused clear')
  await cache.close()
})

test('an invalidateTags the disk refused (failOpen): its entries are not served here, and the stamp is written once the breaker closes', async () => {
  const dir = tempDir()
  const breaker = { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeout: 200 }
  const cache = await Larder.open({ dir, breaker })
  await cache.set('k', 'old', { tags: ['t'] })
  await cache.set('probe', 1)
  const other = await Larder.open({ dir, readOnly: true })
  seam.openSync = failing('EIO', 'open')
  const opened = once(cache, 'breaker')
  await cache.invalidateTags(['t']) // a counted drop
  assert.deepEqual((await opened)[0], 'open')
  Object.assign(disk, realDisk)
  assert.equal(await cache.get('k'), undefined, 'this instance holds the stamp the disk refused')
  assert.equal(await other.get('k'), 'old', 'the other cannot know yet')
  await new Promise((resolve) => setTimeout(resolve, 250))
  const closed = new Promise<void>((resolve) => cache.on('breaker', (state) => state === 'closed' && resolve()))
  assert.equal(await cache.get('probe'), 1)
  await closed
  for (let i = 0; i < 100 && (await other.get('k')) !== undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(await other.get('k'), undefined, 'the stamp is on disk now, for every process')
  await cache.set('k', 'new', { tags: ['t'] })
  assert.equal(await cache.get('k'), 'new')
  await other.close()
  await cache.close()
})

test('changes the open breaker turned away are tried once more at close: a delete, an invalidateTags and a clear all reach the disk, and other instances stop reading what they removed', async () => {
  for (const change of ['delete', 'invalidateTags', 'clear'] as const) {
    const dir = tempDir()
    // A reset timeout longer than the test: the breaker stays open until close.
    const breaker = { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeout: 60_000 }
    const cache = await Larder.open({ dir, breaker, maintenance: false })
    cache.on('error', () => {})
    await cache.set('session', 'secret-v1', { tags: ['user:1'] })
    seam.openSync = failing('ENOSPC', 'open')
    seam.lstatSync = failing('ENOSPC', 'lstat')
    const opened = once(cache, 'breaker')
    await cache.set('j', 'x') // fails: the breaker opens
    assert.deepEqual((await opened)[0], 'open')
    Object.assign(disk, realDisk) // the disk has room again; the breaker does not know yet
    if (change === 'delete') await cache.delete('session')
    else if (change === 'invalidateTags') await cache.invalidateTags(['user:1'])
    else await cache.clear()
    assert.equal((await cache.stats()).breaker.state, 'open', change)
    assert.equal(await cache.get('session'), undefined, `${change}: not served here meanwhile`)
    await cache.close()
    const other = await Larder.open({ dir, readOnly: true })
    assert.equal(await other.get('session'), undefined, `${change}: tried again at close, so another instance no longer reads it`)
    await other.close()
  }
})
