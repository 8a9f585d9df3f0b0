/**
 * getOrSet, warm, increment and refresh-ahead against changes made while they run (an
 * adversarial review of the API's semantics, 2026-12-05): a value read or loaded before a
 * change never outlives it, nor stands in for a loader after it; and the batch calls refuse
 * the holes of a sparse array.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder, type LarderError } from '../src/index.ts'
import { runChildScript, tempDir } from './helpers.ts'

/** A promise the test settles. */
function held<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: Error) => void } {
  let resolve!: (value: T) => void
  let reject!: (error: Error) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const microtasks = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await Promise.resolve()
}

for (const change of ['invalidateTags', 'delete', 'set'] as const) {
  test(`grace: a value within grace does not stand in for a failed loader after a ${change} made while the loader ran`, async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: { maxEntries: 100 } })
    const o = { ttl: 40, grace: '1h', tags: ['users'] }
    await cache.getOrSet('k', () => 'v1', o)
    await delay(70) // expired, within grace
    const loading = held<string>()
    const answer = cache.getOrSet('k', () => loading.promise, o)
    await delay(10)
    if (change === 'invalidateTags') await cache.invalidateTags(['users'])
    else if (change === 'delete') await cache.delete('k')
    else await cache.set('k', 'v2')
    loading.reject(new Error('database down'))
    await assert.rejects(answer, /database down/, 'the loader fails, and the changed value is not served instead')
    await cache.close()
  })
}

test('grace: without a change, a failed loader is still answered with the value within grace (stale-if-error)', async () => {
  const cache = await Larder.open({ dir: tempDir() })
  const o = { ttl: 40, grace: '1h', tags: ['users'] }
  await cache.getOrSet('k', () => 'v1', o)
  await delay(70)
  assert.equal(
    await cache.getOrSet(
      'k',
      () => {
        throw new Error('database down')
      },
      o,
    ),
    'v1',
  )
  await cache.close()
})

test('timeout: after an invalidation made while the loader ran, the soft timeout answers ERR_TIMEOUT (field timeout), not the invalidated value', async () => {
  const cache = await Larder.open({ dir: tempDir(), memory: { maxEntries: 100 } })
  const o = { ttl: 40, grace: '1h', tags: ['users'] }
  await cache.getOrSet('k', () => 'v1', o)
  await delay(70)
  const loading = held<string>()
  const answer = cache.getOrSet('k', () => loading.promise, { ...o, timeout: 100 })
  await delay(10)
  await cache.invalidateTags(['users'])
  await assert.rejects(answer, (e: LarderError) => e.code === 'ERR_TIMEOUT' && e.field === 'timeout')
  loading.resolve('v3')
  await delay(20)
  assert.equal(await cache.get('k'), undefined, "the loader's value, begun before the invalidation, is not stored either")
  await cache.close()
})

test('getOrSet: a caller that begins after another process changed the key does not join the load begun before that change', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, memory: { maxEntries: 100 } })
  const loading = held<string>()
  const first = cache.getOrSet('k', () => loading.promise)
  await delay(10)
  const peer = await runChildScript('peer.ts', ['once', dir, 'set', 'k', JSON.stringify('new')])
  assert.equal(peer.code, 0, peer.err)
  const later = cache.getOrSet('k', () => 'loaded after the change')
  loading.resolve('old')
  assert.equal(await first, 'old')
  assert.notEqual(await later, 'old', 'the later caller is not given what was read before the change')
  assert.equal(await cache.get('k'), 'new')
  await cache.close()
})

for (const dir of [true, false]) {
  for (const change of ['delete', 'set', 'clear'] as const) {
    test(`getOrSet (${dir ? 'files' : 'dir: false'}): a ${change} called just after the loader resolved, before its value is stored, is not undone`, async () => {
      const cache = await Larder.open({ dir: dir ? tempDir() : false, memory: { maxEntries: 1000 } })
      for (let hops = 0; hops < 12; hops++) {
        const key = `k${hops}`
        const loading = held<number>()
        const answer = cache.getOrSet(key, () => loading.promise)
        await delay(1)
        loading.resolve(100)
        await microtasks(hops)
        if (change === 'delete') await cache.delete(key)
        else if (change === 'set') await cache.set(key, 'new')
        else await cache.clear()
        await answer
        assert.equal(await cache.get(key), change === 'set' ? 'new' : undefined, `${hops} microtasks after the loader`)
      }
      await cache.close()
    })
  }
}

test('refresh-ahead: a set called just after the refresh loader resolved is not undone by the refresh', async () => {
  const cache = await Larder.open({ dir: tempDir(), memory: { maxEntries: 100 } })
  for (let hops = 0; hops < 10; hops++) {
    const key = `r${hops}`
    await cache.getOrSet(key, () => 'v1', { ttl: 600, refreshAhead: 0.1 })
    await delay(80)
    const loading = held<string>()
    // A hit past the mark (60 ms): a refresh begins. Not awaited before the loader resolves: a
    // loaded machine that let the entry expire (600 ms) made it a miss waiting for this loader.
    const hit = cache.getOrSet(key, () => loading.promise, { ttl: 60_000, refreshAhead: 0.1 })
    await delay(2)
    loading.resolve('refreshed')
    await hit
    await microtasks(hops)
    await cache.set(key, 'new')
    await delay(5)
    assert.equal(await cache.get(key), 'new', `${hops} microtasks after the refresh's loader`)
  }
  await cache.close()
})

test('refresh-ahead: a loader that resolves to undefined is heard as an error', async () => {
  const cache = await Larder.open({ dir: tempDir() })
  const errors: LarderError[] = []
  cache.on('error', (e) => errors.push(e as LarderError))
  // Past the mark (100 ms) and far from expiry (2 s): a loaded machine's 200 ms ttl ran out
  // before the last read (a CI run beside four other jobs).
  const o = { ttl: 2000, refreshAhead: 0.05 }
  await cache.getOrSet('k', () => 'v1', o)
  await delay(120)
  assert.equal(await cache.getOrSet('k', () => undefined, o), 'v1')
  for (let waited = 0; waited < 1000 && errors.length === 0; waited += 10) await delay(10)
  await delay(30) // and no second error
  assert.equal(errors.length, 1)
  assert.equal(errors[0]!.code, 'ERR_INVALID_VALUE')
  assert.match(errors[0]!.message, /resolved to undefined/)
  assert.equal(await cache.get('k'), 'v1', 'the old value is kept')
  await cache.close()
})

test('warm: a value its loader read before a set or delete made meanwhile is not stored over it', async () => {
  const cache = await Larder.open({ dir: tempDir(), memory: { maxEntries: 100 } })
  const loading = held<string[]>()
  const warming = cache.warm(['a', 'b', 'c'], { loader: () => loading.promise })
  await delay(10)
  await cache.set('a', 'new')
  await cache.delete('b')
  loading.resolve(['old-a', 'old-b', 'c-value'])
  const report = await warming
  assert.deepEqual(report, { warmed: 1, fromShared: 0, loaded: 1, failed: 0, superseded: 2 })
  assert.equal(await cache.get('a'), 'new')
  assert.equal(await cache.get('b'), undefined)
  assert.equal(await cache.get('c'), 'c-value')
  await cache.close()
})

test('warm: its read waits for the changes of its key called before it (a delete in flight: its old value never back in memory)', async () => {
  const cache = await Larder.open({ dir: tempDir(), memory: { maxEntries: 100 } })
  const big = (tag: string): string => tag + 'x'.repeat(300_000) // read from disk asynchronously
  for (let i = 0; i < 5; i++) {
    await cache.set('k', big('old'))
    await cache.set('j', big('old'))
    await cache.clear({ tier: 'memory' })
    const deleting = cache.delete('k')
    const setting = cache.set('j', 'new')
    const report = await cache.warm(['k', 'j'], { loader: (keys) => keys.map(() => 'loaded') })
    await Promise.all([deleting, setting])
    // Before: warm read k's file while the delete ran and held the old value in memory.
    assert.equal(String(await cache.get('k')).slice(0, 6), 'loaded', 'the deleted value is not served')
    assert.equal(await cache.get('j'), 'new')
    assert.deepEqual(report, { warmed: 2, fromShared: 0, loaded: 1, failed: 0, superseded: 0 }, 'k was deleted first: loaded')
  }
  await cache.close()
})

test('warm: without a directory, a key the memory tier holds is warm, not loaded over', async () => {
  const cache = await Larder.open({ dir: false, memory: { maxEntries: 100 } })
  await cache.set('k', 'new')
  const report = await cache.warm(['k'], { loader: (keys) => keys.map(() => 'loaded') })
  assert.deepEqual(report, { warmed: 1, fromShared: 0, loaded: 0, failed: 0, superseded: 0 })
  assert.equal(await cache.get('k'), 'new')
  await cache.close()
})

test('increment: called before an invalidation of its tags, its result is stale after it (as a set would be)', async () => {
  const dir = tempDir()
  const writer = await Larder.open({ dir })
  for (let i = 0; i < 10; i++) await writer.set(`n${i}`, 41, { tags: [`t${i}`] })
  await writer.close()
  const cache = await Larder.open({ dir, memory: { maxEntries: 100 } })
  for (let i = 0; i < 10; i++) {
    const counting = cache.increment(`n${i}`)
    await cache.invalidateTags([`t${i}`])
    assert.equal(await counting, 42)
    assert.equal(await cache.get(`n${i}`), undefined, `n${i} is invalidated`)
  }
  await cache.close()
})

test('batches refuse the holes of a sparse array by their index, and write nothing', async () => {
  const cache = await Larder.open({ dir: tempDir() })
  const keys = ['a', , 'c'] as string[] // eslint-disable-line no-sparse-arrays
  const items = [{ key: 'a', value: 1 }, , { key: 'c', value: 3 }] as { key: string; value: number }[] // eslint-disable-line no-sparse-arrays
  await assert.rejects(cache.getMany(keys), (e: LarderError) => e.code === 'ERR_INVALID_KEY' && e.field === 'keys[1]')
  await assert.rejects(cache.deleteMany(keys), (e: LarderError) => e.code === 'ERR_INVALID_KEY' && e.field === 'keys[1]')
  await assert.rejects(cache.setMany(items), (e: LarderError) => e.code === 'ERR_INVALID_VALUE' && e.field === 'items[1]')
  let called = false
  await assert.rejects(
    cache.warm(keys, {
      loader: () => {
        called = true
        return []
      },
    }),
    (e: LarderError) => e.code === 'ERR_INVALID_KEY' && e.field === 'keys[1]',
  )
  assert.equal(called, false)
  assert.equal(await cache.get('a'), undefined, 'nothing was written')
  await cache.close()
})
