/**
 * `memory.maxSize` bounds what the memory tier holds, keys and all: an entry counts its
 * serialized size, its key and the heap of the objects that hold it (tiers/memory-tier.ts,
 * `footprint`), so neither long keys nor tiny values let the tier hold many times its bound.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Larder } from '../src/index.ts'
import { footprint } from '../src/tiers/memory-tier.ts'

describe('memory.maxSize', () => {
  it('counts each key: 4,000-character keys over 1-byte values fill a 64 KiB tier in 15 entries', async () => {
    const cache = await Larder.open({ dir: false, memory: { maxSize: 64 * 1024 }, serializer: 'raw' })
    const keys = Array.from({ length: 200 }, (_, i) => `${String(i).padStart(4, '0')}${'k'.repeat(3996)}`)
    for (const key of keys) await cache.set(key, Buffer.from([1]))
    const held = (await cache.stats()).memoryEntries
    // Counting the values alone, all 200 (200 bytes) were held: ~800 KB of keys in a 64 KiB tier.
    assert.equal(held, Math.floor((64 * 1024) / footprint(keys[0]!, 1)))
    assert.equal(held, 15)
    assert.deepEqual(await cache.get(keys.at(-1)!), Buffer.from([1]), 'the newest entry is still held')
    assert.equal(await cache.get(keys[0]!), undefined, 'the oldest went to make room')
    await cache.close()
  })

  it('counts the heap an entry takes: 1-byte values under short keys are bounded by maxSize alone', async () => {
    const maxSize = 1024 * 1024
    const cache = await Larder.open({ dir: false, memory: { maxSize }, serializer: 'raw' })
    const value = Buffer.from([7])
    for (let i = 0; i < 50_000; i++) await cache.set(`k${i}`, value)
    const held = (await cache.stats()).memoryEntries
    // Counting the values alone, all 50,000 were held (50 KB "in" a 1 MiB tier, ~7 MB of heap).
    assert.ok(held < 7_000, `held ${held} entries of ~157 counted bytes in 1 MiB`)
    assert.ok(held > 6_000, `held ${held}: the bound is used, not undercut`)
    await cache.close()
  })

  it('a key alone longer than the tier is not held (the rest stays)', async () => {
    const cache = await Larder.open({ dir: false, memory: { maxSize: 1000 }, serializer: 'raw' })
    await cache.set('short', Buffer.from('kept'))
    await cache.set('x'.repeat(1000), Buffer.from('v'))
    assert.equal((await cache.stats()).memoryEntries, 1)
    assert.deepEqual(await cache.get('short'), Buffer.from('kept'))
    await cache.close()
  })
})
