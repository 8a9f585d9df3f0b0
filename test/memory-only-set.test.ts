/**
 * A cache without a directory (and without Redis), its memory tier the only one. Found by an
 * adversarial review (2026-12-06):
 * - a value the tier refuses (larger than `memory.maxSize`) was counted as a set and announced
 *   by the `set` event though nothing held it; it is now a counted drop, as a write no tier took;
 * - a read that found an entry expired or invalidated by a tag was not counted in `expired`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder } from '../src/index.ts'

test('dir: false: a value larger than memory.maxSize is a counted drop, not a set', async () => {
  const cache = await Larder.open({ dir: false, memory: { maxSize: '50KB' } })
  const announced: string[] = []
  cache.on('set', (key) => announced.push(key))
  try {
    await cache.set('big', 'x'.repeat(60_000))
    await cache.set('small', 'y')
    assert.equal(await cache.get('big'), undefined)
    assert.equal(await cache.get('small'), 'y')
    const stats = await cache.stats()
    assert.equal(stats.sets, 1)
    assert.equal(stats.dropped, 1)
    assert.equal(stats.tiers.memory!.sets, 1)
    assert.equal(stats.tiers.memory!.dropped, 1)
    assert.deepEqual(announced, ['small'])
  } finally {
    await cache.close()
  }
})

test('dir: false: a read that finds an entry expired or invalidated counts it in expired, once', async () => {
  const cache = await Larder.open({ dir: false })
  try {
    await cache.set('e', 1, { ttl: 30 })
    await cache.set('t', 1, { tags: ['x'] })
    await new Promise((resolve) => setTimeout(resolve, 60))
    await cache.invalidateTags(['x'])
    const seen: number[] = []
    for (const key of ['e', 't', 'e', 't']) {
      assert.equal(await cache.get(key), undefined)
      seen.push((await cache.stats()).expired)
    }
    assert.deepEqual(seen, [1, 2, 2, 2])
  } finally {
    await cache.close()
  }
})
