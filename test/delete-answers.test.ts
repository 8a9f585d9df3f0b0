/**
 * What `delete()` answers without a directory: true only when a live entry was there (an
 * expired or invalidated one is removed too, but was not there to delete), as the file tier
 * answers. Found by an adversarial review (2026-12-06): a memory-only cache answered true for
 * any entry it held, and counted it in `deletes`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'

test('a memory-only cache: delete and deleteMany count only live entries', async () => {
  const cache = await Larder.open({ dir: false })
  try {
    await cache.set('expired', 1, { ttl: 20 })
    await cache.set('invalidated', 2, { tags: ['t'] })
    await cache.set('live', 3)
    await cache.set('live-too', 4)
    await delay(60)
    await cache.invalidateTags(['t'])
    assert.equal(await cache.delete('expired'), false)
    assert.equal(await cache.delete('invalidated'), false)
    assert.equal(await cache.delete('live'), true)
    assert.equal(await cache.delete('live'), false, 'gone')
    await cache.set('expired-too', 5, { ttl: 20 })
    await delay(60)
    assert.equal(await cache.deleteMany(['live-too', 'expired-too']), 1)
    const stats = await cache.stats()
    assert.equal(stats.deletes, 2)
    assert.equal(stats.tiers.memory!.deletes, 2)
  } finally {
    await cache.close()
  }
})
