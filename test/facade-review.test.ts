/**
 * The facade's promises met by a review of its calls against the README: what close() waits
 * for, and what the events say. Real files and a real redis-server; no wall-clock margins.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { eventually } from './eventually.ts'
import { tempDir } from './helpers.ts'
import { redisAvailable, startRedis } from './redis/server.ts'

describe('facade review', () => {
  test('close() waits for an invalidateTags called before it: every batch of its tags is stamped, none resolves unwritten', async () => {
    // 2,000 tags are 32 batches of an entry's most tags (64): a close() called while the first
    // was stamped let the others resolve written nowhere, and the entries of the last tags were
    // served again after a reopen.
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const tags = Array.from({ length: 2000 }, (_, i) => `t${i}`)
    await cache.set('first', 1, { tags: [tags[0]!] })
    await cache.set('last', 2, { tags: [tags.at(-1)!] })
    const invalidated = cache.invalidateTags(tags)
    await cache.close()
    await invalidated
    const reopened = await Larder.open({ dir })
    assert.equal(await reopened.get('first'), undefined)
    assert.equal(await reopened.get('last'), undefined)
    await reopened.close()
  })

  test(
    "the callers who joined a getOrSet load that Redis answered hear 'hit' from 'redis', as its first caller does",
    {
      skip: redisAvailable() ? false : 'redis-server is not installed',
    },
    async () => {
      // They heard 'file' whichever tier had answered the load.
      const server = await startRedis()
      const redis = `redis://127.0.0.1:${server.port}`
      const writer = await Larder.open({ dir: tempDir(), redis })
      const reader = await Larder.open({ dir: tempDir(), redis, memory: true })
      try {
        await writer.set('k', 'v')
        const sources: string[] = []
        reader.on('hit', (_key, tier, source) => sources.push(`${tier}/${source}`))
        const values = await Promise.all([1, 2, 3].map(() => reader.getOrSet('k', () => 'loaded')))
        assert.deepEqual(values, ['v', 'v', 'v'])
        assert.deepEqual(sources, ['disk/redis', 'disk/redis', 'disk/redis'])
      } finally {
        await writer.close()
        await reader.close()
        await server.stop()
      }
    },
  )

  test(
    'a read of an entry expired in its grace, or invalidated, counts one `expired` when the files and Redis both hold it, and one past its expiry that only the memory tier held',
    {
      skip: redisAvailable() ? false : 'redis-server is not installed',
    },
    async () => {
      // Each tier counted the entry it judged: one get counted two.
      const server = await startRedis()
      const cache = await Larder.open({ dir: tempDir(), redis: `redis://127.0.0.1:${server.port}` })
      try {
        for (const key of await expiredTwoWays(cache, '')) {
          cache.resetStats()
          assert.equal(await cache.get(key), undefined)
          const { expired, misses } = await cache.stats()
          assert.deepEqual({ expired, misses }, { expired: 1, misses: 1 }, key)
        }
        // Without a directory, an entry past its expiry (and grace) is gone from Redis, which
        // drops it then: the memory tier that found it dead counted nothing (expired 0).
        const shared = await Larder.open({ dir: false, memory: true, redis: `redis://127.0.0.1:${server.port}`, namespace: 'no-dir' })
        try {
          await shared.set('ttl', 'v', { ttl: 20 })
          assert.equal(await shared.get('ttl'), 'v')
          const keys = [...(await expiredTwoWays(shared, '')), 'ttl']
          await delay(40)
          for (const key of keys) {
            shared.resetStats()
            assert.equal(await shared.get(key), undefined)
            const { expired, misses } = await shared.stats()
            assert.deepEqual({ expired, misses }, { expired: 1, misses: 1 }, `dir: false, ${key}`)
          }
        } finally {
          await shared.close()
        }
      } finally {
        await cache.close()
        await server.stop()
      }
    },
  )

  test(
    'getStream, has and info of an entry expired in its grace, or invalidated, count one `expired` each when the files and Redis both hold it (each call one read)',
    {
      skip: redisAvailable() ? false : 'redis-server is not installed',
    },
    async () => {
      // getStream counted the check before streaming, the file's stream and Redis's copy (3 for
      // a kept entry, 2 for an invalidated one); has counted the file and Redis's copy (2).
      const server = await startRedis()
      const cache = await Larder.open({ dir: tempDir(), redis: `redis://127.0.0.1:${server.port}` })
      try {
        const reads = {
          getStream: async (key: string) => assert.equal(await cache.getStream(key), undefined),
          has: async (key: string) => assert.equal(await cache.has(key), false),
          info: async (key: string) => assert.equal(await cache.info(key), undefined),
        }
        for (const [name, read] of Object.entries(reads)) {
          for (const key of await expiredTwoWays(cache, `-${name}`)) {
            cache.resetStats()
            await read(key)
            const { expired } = await cache.stats()
            assert.equal(expired, 1, key)
          }
        }
        // Each call is one read (README, Stats): has then info count two for the entry in its
        // grace, one for the invalidated entry, which the first removes.
        const [kept, tagged] = await expiredTwoWays(cache, '-both')
        for (const [key, expected] of [
          [kept, 2],
          [tagged, 1],
        ] as const) {
          cache.resetStats()
          assert.equal(await cache.has(key), false)
          assert.equal(await cache.info(key), undefined)
          const { expired, hits, misses } = await cache.stats()
          assert.deepEqual({ expired, hits, misses }, { expired: expected, hits: 0, misses: 0 }, `has then info: ${key}`)
        }
      } finally {
        await cache.close()
        await server.stop()
      }
    },
  )

  test(
    'getOrSet with a grace that finds an entry expired within it counts one `expired`, as a get of it does',
    {
      skip: redisAvailable() ? false : 'redis-server is not installed',
    },
    async () => {
      // Read with the grace, the entry was stale, not expired, to every tier: counted by none.
      const server = await startRedis()
      const caches = {
        dir: await Larder.open({ dir: tempDir() }),
        'dir and redis': await Larder.open({ dir: tempDir(), redis: `redis://127.0.0.1:${server.port}` }),
      }
      try {
        for (const [name, cache] of Object.entries(caches)) {
          for (const outcome of ['fails', 'loads']) {
            const key = `kept-${outcome}`
            await cache.getOrSet(key, () => 'v', { ttl: 20, grace: '1h' })
            await delay(40)
            cache.resetStats()
            const loader = (): string => {
              if (outcome === 'fails') throw new Error('down')
              return 'new'
            }
            assert.equal(await cache.getOrSet(key, loader, { ttl: '1h', grace: '1h' }), outcome === 'fails' ? 'v' : 'new')
            const { expired, misses } = await cache.stats()
            assert.deepEqual({ expired, misses }, { expired: 1, misses: 1 }, `${name}: ${key}`)
          }
        }
      } finally {
        for (const cache of Object.values(caches)) await cache.close()
        await server.stop()
      }
    },
  )

  test(
    "a getOrSet waiting for another instance's lock counts one `expired` for the entry in its grace it found, however often it looks again",
    {
      skip: redisAvailable() ? false : 'redis-server is not installed',
    },
    async () => {
      // Each look for the holder's value met the entry in its grace on disk and counted it:
      // 10 for one call in 400 ms of waiting.
      const server = await startRedis()
      const redis = `redis://127.0.0.1:${server.port}`
      const holder = await Larder.open({ dir: tempDir(), redis })
      const waiter = await Larder.open({ dir: tempDir(), redis })
      try {
        await waiter.getOrSet('k', () => 'old', { ttl: 20, grace: '1h' })
        await delay(40)
        let release!: () => void
        const gate = new Promise<void>((resolve) => (release = resolve))
        let started!: () => void
        const loading = new Promise<void>((resolve) => (started = resolve))
        const holding = holder.getOrSet(
          'k',
          async () => {
            started()
            await gate
            return 'new'
          },
          { lock: true, ttl: '1h', grace: '1h' },
        )
        await loading
        waiter.resetStats()
        const waiting = waiter.getOrSet('k', () => 'own', { lock: true, ttl: '1h', grace: '1h' })
        await eventually(async () => (await waiter.stats()).tiers.file!.misses >= 4, 'the waiter looked again for the value')
        release()
        assert.deepEqual([await holding, await waiting], ['new', 'new'])
        const { expired, misses } = await waiter.stats()
        assert.deepEqual({ expired, misses }, { expired: 1, misses: 1 })
      } finally {
        await holder.close()
        await waiter.close()
        await server.stop()
      }
    },
  )

  test('warm() whose loader is still running when close() is called reports its keys as failed, not superseded, and loads no further batch', async () => {
    // Nothing changed the keys: close() let go of their values, and the report said superseded.
    const cache = await Larder.open({ dir: tempDir() })
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    let started!: () => void
    const loading = new Promise<void>((resolve) => (started = resolve))
    let calls = 0
    const keys = Array.from({ length: 150 }, (_, i) => `k${i}`) // two batches of the loader
    const warming = cache.warm(keys, {
      loader: async (batch) => {
        calls++
        started()
        await gate
        return batch.map((key) => `v-${key}`)
      },
    })
    await loading
    const closing = cache.close()
    release()
    const report = await warming
    await closing
    assert.deepEqual(report, { warmed: 0, fromShared: 0, loaded: 0, failed: 150, superseded: 0 })
    assert.equal(calls, 1, 'the batch after close() is not loaded')
  })
})

/** Two entries no read may serve, both still on disk and in Redis: `kept<suffix>`, expired but
 *  within its grace, and `tagged<suffix>`, invalidated by its tag. Their keys. */
async function expiredTwoWays(cache: Larder, suffix: string): Promise<[kept: string, tagged: string]> {
  const [kept, tagged] = [`kept${suffix}`, `tagged${suffix}`]
  await cache.getOrSet(kept, () => 'v', { ttl: 20, grace: '1h' })
  await cache.set(tagged, 'v', { tags: [tagged] })
  await cache.invalidateTags([tagged])
  await delay(40)
  return [kept, tagged]
}
