/**
 * The adapters' hot read path (issue 12's speed goal; the figures are bench/adapters.mjs's, never
 * asserted here): the memory tier behind an adapter that opens its own cache (when its options
 * ask), a Keyv get that is a memory hit, Keyv without its own serialization, and the count of
 * calls in flight that replaced a set of promises (close still waits for each). State and
 * counts only.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Keyv from 'keyv'
import { Larder } from 'larder'
import { KeyvLarder } from 'larder/keyv'
import { tempDir } from '../helpers.ts'

/** What the instances that used `dir` did, summed (activity records are written at close). */
async function activityOf(dir: string): Promise<{ hits: number; memoryHits: number; misses: number; sets: number }> {
  const reader = await Larder.open({ dir })
  try {
    return await reader.activity()
  } finally {
    await reader.close()
  }
}

/** Sets `k`, then reads it `reads` times through a Keyv over `store`, and disconnects. */
async function setAndRead(store: KeyvLarder, reads: number): Promise<void> {
  const keyv = new Keyv({ store, namespace: 'speed' })
  assert.equal(await keyv.set('k', { id: 7 }), true)
  for (let i = 0; i < reads; i++) assert.deepEqual(await keyv.get('k'), { id: 7 })
  await keyv.disconnect()
}

describe('adapters: the hot read path', () => {
  test('an adapter that opens its own cache has the memory tier its options ask for (none by default)', async () => {
    const dir = tempDir('larder-adapter-speed')
    await setAndRead(new KeyvLarder({ dir, memory: true }), 5)
    const activity = await activityOf(dir)
    assert.equal(activity.hits, 5)
    assert.equal(activity.memoryHits, 5, 'every read after the set was answered by the memory tier')
  })

  test("an adapter's options without memory keep the file tier only", async () => {
    const dir = tempDir('larder-adapter-speed')
    await setAndRead(new KeyvLarder({ dir }), 5)
    const activity = await activityOf(dir)
    assert.equal(activity.hits, 5)
    assert.equal(activity.memoryHits, 0)
  })

  test('a Keyv get over a cache with the memory tier is one memory hit, and nothing else', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-adapter-speed'), memory: true })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'speed' })
    await Promise.all(Array.from({ length: 50 }, (_, i) => keyv.set(`user:${i}`, { id: i })))
    for (let i = 0; i < 200; i++) assert.deepEqual(await keyv.get(`user:${i % 50}`), { id: i % 50 })
    const stats = await cache.stats()
    assert.equal(stats.hits, 200)
    assert.equal(stats.memoryHits, 200)
    assert.equal(stats.misses, 0)
    await keyv.disconnect()
    await cache.close()
  })

  test("a memory hit is get()'s own promise, handed on as it is; a miss, a change in flight or a 'hit' listener take the guarded path", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-adapter-speed'), memory: true })
    const store = new KeyvLarder(cache)
    const errors: Error[] = []
    store.on('error', (error: Error) => errors.push(error))
    await store.set('k', 'v1')
    const first = store.get('k')
    assert.equal(store.get('k'), first, 'the same settled promise for every hit of the entry: nothing made per hit')
    assert.equal(await first, 'v1')
    assert.equal(await store.get('absent'), undefined)

    // A set not awaited: the get after it waits for it (the call order every get keeps).
    const writing = store.set('k', 'v2')
    assert.equal(await store.get('k'), 'v2')
    await writing

    // A 'hit' listener that throws: the guarded path reports it through Keyv's channel, and the
    // read is a miss, as before this fast path existed.
    cache.on('hit', () => {
      throw new Error('listener broke')
    })
    assert.equal(await store.get('k'), undefined)
    assert.deepEqual(
      errors.map((error) => error.message),
      ['listener broke'],
    )
    const stats = await cache.stats()
    assert.equal(stats.memoryHits, 4, 'each hit counted once (the first two, the one after the set, the one the listener broke)')
    await cache.close()
    assert.equal(await store.get('k'), undefined, 'a closed cache: the guarded path (an error reported, a miss)')
    assert.equal(errors.length, 2)
  })

  test('Keyv without its own serialization: the store holds and answers the object, so Keyv parses nothing; ttl, namespaces and clear hold', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-adapter-speed'), memory: true })
    const raw = { serialize: undefined, deserialize: undefined }
    const store = new KeyvLarder(cache)
    const users = new Keyv({ store, namespace: 'users', ...raw })
    const other = new Keyv({ store: new KeyvLarder(cache), namespace: 'other', ...raw })
    assert.equal(await users.set('1', { name: 'ada' }), true)
    assert.equal(await users.set('2', { name: 'bob' }, 60_000), true)
    assert.equal(await other.set('1', 'kept'), true)

    assert.deepEqual(await store.get('users:1'), { value: { name: 'ada' } }, 'an object, not a string for Keyv to parse')
    assert.deepEqual(await users.get('1'), { name: 'ada' })
    assert.deepEqual(await users.get(['1', '2']), [{ name: 'ada' }, { name: 'bob' }])
    const expires = ((await store.get('users:2')) as { expires?: number } | undefined)?.expires
    assert.ok(typeof expires === 'number' && expires > Date.now(), "Keyv's own expiry is kept in the value")
    const info = await cache.info('users:2')
    const expiresAt = info?.expiresAt ?? null
    assert.ok(expiresAt !== null && Math.abs(expiresAt - expires) < 1000, 'and is the entry’s own expiry')

    await users.clear()
    assert.equal(await users.get('1'), undefined)
    assert.equal(await users.get('2'), undefined)
    assert.equal(await other.get('1'), 'kept', 'another namespace is left alone')
    await cache.close()
  })

  test('close waits for every call in flight, counted: sets the host did not await are all stored', async () => {
    const dir = tempDir('larder-adapter-speed')
    const keyv = new Keyv({ store: new KeyvLarder({ dir }), namespace: 'late' })
    // Started before the cache has opened (the slow path) and after (the counted fast path).
    for (let i = 0; i < 20; i++) void keyv.set(`a${i}`, i)
    assert.equal(await keyv.set('opened', true), true) // resolves once the cache is open
    for (let i = 0; i < 20; i++) void keyv.set(`b${i}`, i)
    await keyv.disconnect()

    const reader = await Larder.open({ dir })
    const stored = await reader.getMany(Array.from({ length: 20 }, (_, i) => [`late:a${i}`, `late:b${i}`]).flat())
    assert.equal(stored.filter((value) => typeof value === 'string').length, 40)
    await reader.close()
  })
})
