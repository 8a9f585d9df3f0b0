/**
 * A cache without a directory whose memory tier refuses a value (larger than `memory.maxSize`):
 * found by an adversarial review (2026-12-06), the write was counted as a set and announced by
 * the `set` event though nothing held it. It is now a counted drop, as a write no tier took.
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
