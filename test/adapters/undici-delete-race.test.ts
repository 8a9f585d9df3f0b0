/**
 * larder/undici: a delete of a URL made while a response of it is still being written, right
 * after createWriteStream and its first chunk. Found by an adversarial review (2026-12-06):
 * the delete, finding no index yet (the write's index update had not landed), removed nothing
 * the write would look at, and the response was stored and served after the delete was
 * acknowledged. A delete now stamps when it was made, which a write compares with the time
 * createWriteStream was called.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { Larder } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { bodyText, keyOf, valueOf, write, type Key, type Store, type Value } from './undici-fixtures.ts'

const SIZES = [100, 200 * 1024]

/** Writes the first half of `body`, lets `deleter` delete the URL, then writes the rest;
 *  resolves once the write is done and the delete acknowledged. A small response's delete is
 *  acknowledged before the rest is written; a streamed one's waits for the stream (a removal
 *  of a stream being written waits for it), so its rest is written while the delete is under way. */
async function deletedWhileArriving(writer: Store, deleter: Store, key: Key, value: Value, body: Buffer): Promise<void> {
  const writable = writer.createWriteStream(key, value)!
  writable.on('error', () => {})
  writable.write(body.subarray(0, body.length / 2))
  const deleted = deleter.delete(key)
  if (body.length < SIZES[1]!) await deleted
  writable.end(body.subarray(body.length / 2))
  await Promise.all([once(writable, 'close'), deleted])
}

/** Every case: a response of each size, varying on nothing and on a header. */
function cases(): { label: string; key: Key; value: Value; body: Buffer }[] {
  let n = 0
  return SIZES.flatMap((size) =>
    [false, true].map((vary) => ({
      label: `${size} bytes, ${vary ? 'a variant' : 'varying on nothing'}`,
      key: keyOf(`/d${n++}`, vary ? { 'accept-language': 'en' } : {}),
      value: valueOf(vary ? { vary: { 'accept-language': 'en' } } : {}),
      body: Buffer.alloc(size, 'x'),
    })),
  )
}

describe('larder/undici: a delete made as a response begins to arrive', () => {
  test('in this process: the response is not kept; one written after the delete is', { timeout: 120_000 }, async () => {
    const cache = await Larder.open({ dir: tempDir('larder-undici-delete-race'), maintenance: false })
    const store = new LarderCacheStore(cache)
    const kept: string[] = []
    try {
      for (const { label, key, value, body } of cases()) {
        await deletedWhileArriving(store, store, key, value, body)
        if ((await store.get(key)) !== undefined) kept.push(label)
        await write(store, key, valueOf(value.vary === undefined ? {} : { vary: value.vary }), [body])
        assert.equal((await bodyText(await store.get(key)))?.length, body.length, `${label}: written after the delete, served`)
      }
      assert.deepEqual(kept, [], 'served after a delete acknowledged while they arrived')
    } finally {
      await store.close()
      await cache.close()
    }
  })

  test('by another instance of the directory (as another process): the response is not kept', { timeout: 120_000 }, async () => {
    assert.deepEqual(await keptAcrossInstances(), [], 'served after a delete acknowledged while they arrived')
  })

  test("by another instance whose clock is behind the writer's: the response is not kept", { timeout: 120_000 }, async () => {
    // An instance's clock (cache.now()) counts in µs within a millisecond and runs ahead of the
    // wall clock while it stamps faster than one per µs (a burst of writes); another instance's
    // is not ahead. A delete made after a write began, stamped by that other clock, was taken
    // for one made before: the response was kept (a CI run met it by chance, within a ms).
    const kept = await keptAcrossInstances((writerCache) => {
      const wall = Date.now()
      while (writerCache.now() < wall + 50); // the writer's clock 50 ms ahead, as after ~50,000 stamps in a burst
    })
    assert.deepEqual(kept, [], 'served after a delete acknowledged while they arrived')
  })
})

/** Every case, written through one instance of a directory and deleted through another as it
 *  arrives (`before` runs first, each time); the labels of the responses either still serves. */
async function keptAcrossInstances(before: (writerCache: Larder) => void = () => {}): Promise<string[]> {
  const dir = tempDir('larder-undici-delete-race-2')
  const writerCache = await Larder.open({ dir, maintenance: false })
  const deleterCache = await Larder.open({ dir, maintenance: false })
  const writer = new LarderCacheStore(writerCache)
  const deleter = new LarderCacheStore(deleterCache)
  const kept: string[] = []
  try {
    for (const { label, key, value, body } of cases()) {
      before(writerCache)
      await deletedWhileArriving(writer, deleter, key, value, body)
      if ((await writer.get(key)) !== undefined || (await deleter.get(key)) !== undefined) kept.push(label)
    }
    return kept
  } finally {
    await writer.close()
    await deleter.close()
    await writerCache.close()
    await deleterCache.close()
  }
}
