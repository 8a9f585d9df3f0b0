/**
 * Findings of an adversarial review of the tier stack's semantics with Redis (2026-12-06,
 * second pass), each reproduced there first and failing on the code before its fix:
 * - write-back without a directory: a value evicted from the memory tier before its batch was
 *   sent read as a miss (and `has` said false) although set() had resolved and the write was
 *   still queued in this instance; increments then lost updates (1, 1, 1).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

let prefixes = 0
const nextPrefix = (): string => `rv6-${process.pid}-${++prefixes}:`

describe('write-back without a directory: a write still queued for Redis', { skip }, () => {
  /** An instance whose memory tier holds two entries and whose queue is sent only by flush(). */
  const open = (redis = { url: server.url, prefix: nextPrefix() }): Promise<Larder> =>
    Larder.open({
      dir: false,
      memory: { maxEntries: 2 },
      redis: { ...redis, maxValueSize: 1024 },
      writeStrategy: 'write-back',
      writeBack: { maxDelay: '10m' },
      maintenance: false,
    })
  /** Two sets that push every other key out of the memory tier. */
  const evict = async (cache: Larder): Promise<void> => {
    await cache.set('evict-1', 0)
    await cache.set('evict-2', 0)
  }

  test('is read from the queue once the memory tier let it go, and increments lose no update', async () => {
    const cache = await open()
    try {
      await cache.set('a', 1)
      await evict(cache)
      assert.equal((await cache.stats()).tiers.redis!.queued, 3)
      assert.equal(await cache.get('a'), 1)
      await evict(cache)
      assert.equal(await cache.has('a'), true)
      assert.deepEqual(await cache.getMany(['a', 'nothing']), [1, undefined])
      const counted: number[] = []
      for (let i = 0; i < 3; i++) {
        counted.push(await cache.increment('n'))
        await evict(cache)
      }
      assert.deepEqual(counted, [1, 2, 3])
      assert.equal(await cache.get('n'), 3)
      await cache.flush()
      assert.equal(await cache.get('n'), 3)
    } finally {
      await cache.close()
    }
  })

  test('is judged like any entry: its expiry and its tags count', async () => {
    const cache = await open()
    try {
      await cache.set('short', 1, { ttl: 100 })
      await cache.set('tagged', 2, { tags: ['t'] })
      await cache.set('kept', 3, { tags: ['other'] })
      await evict(cache)
      await cache.invalidateTags(['t'])
      assert.equal(await cache.get('tagged'), undefined)
      assert.equal(await cache.has('tagged'), false)
      assert.equal(await cache.get('kept'), 3)
      await delay(300) // past the expiry (a wait past it, never a bound on how soon)
      await evict(cache)
      assert.equal(await cache.get('short'), undefined)
      assert.equal(await cache.has('short'), false)
    } finally {
      await cache.close()
    }
  })

  test('a queued removal hides the value Redis still holds', async () => {
    const cache = await open()
    try {
      await cache.set('k', 'small')
      await cache.flush()
      // Too large for Redis (maxValueSize 1 KiB): held in memory, and a tombstone is queued to
      // replace Redis's older value. Once memory lets it go, the key is gone, not 'small'.
      await cache.set('k', 'x'.repeat(4000))
      await evict(cache)
      assert.equal(await cache.get('k'), undefined)
      assert.equal(await cache.has('k'), false)
    } finally {
      await cache.close()
    }
  })
})
