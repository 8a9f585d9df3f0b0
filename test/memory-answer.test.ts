/**
 * A memory hit allocates nothing: every hit of a held entry gets the same resolved promise
 * (made at its first hit), and an entry replaced, expired or invalidated is never answered by
 * its old promise.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const caches: Larder[] = []
after(() => Promise.all(caches.map((c) => c.close())))

test('hits of one held entry share one resolved promise; a new entry under the key gets its own', async () => {
  const cache = await Larder.open({ dir: tempDir('larder-memory-answer'), memory: { maxEntries: 10 }, maintenance: false })
  caches.push(cache)
  await cache.set('k', { v: 1 }, { tags: ['t'] })
  await new Promise(setImmediate)
  const first = cache.get('k')
  assert.equal(cache.get('k'), first, 'the second hit hands out the same promise')
  assert.deepEqual(await first, { v: 1 })

  await cache.set('k', { v: 2 }, { tags: ['t'] })
  await new Promise(setImmediate)
  const replaced = cache.get('k')
  assert.notEqual(replaced, first)
  assert.deepEqual(await replaced, { v: 2 })

  await cache.invalidateTags(['t'])
  assert.equal(await cache.get('k'), undefined, 'an invalidated entry is not answered by its old promise')
  await cache.set('k', { v: 3 })
  await cache.delete('k')
  assert.equal(await cache.get('k'), undefined, 'nor a deleted one')
})
