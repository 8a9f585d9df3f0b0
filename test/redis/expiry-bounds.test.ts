/**
 * An expiry Redis cannot take: `ttl` and `grace` accept any finite duration, and past 2^53 ms
 * an expiry is "never" in Redis too (PXAT refuses what an int64 cannot hold, and each refusal
 * counted against the Redis breaker, so a few such writes stopped every write reaching Redis).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder } from '../../src/index.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe('expiries past what Redis holds', { skip }, () => {
  test('a ttl or grace of Number.MAX_VALUE is stored in Redis without an expiry, and the breaker stays closed', async () => {
    const options = { dir: false as const, memory: { maxEntries: 10 }, redis: { url: server.url, prefix: 'huge:' } }
    const writer = await Larder.open(options)
    const states: string[] = []
    writer.on('breaker', (state, tier) => states.push(`${state}:${tier}`))
    for (let i = 0; i < 6; i++) await writer.set(`forever${i}`, i, { ttl: Number.MAX_VALUE })
    for (let i = 0; i < 6; i++) await writer.getOrSet(`graced${i}`, () => i, { ttl: 1e20, grace: Number.MAX_VALUE })
    await writer.set('user:1', 'ada')
    const stats = await writer.stats()
    assert.deepEqual(states, [])
    assert.equal(stats.tiers.redis!.errors, 0)
    const reader = await Larder.open(options)
    assert.equal(await reader.get('user:1'), 'ada')
    assert.equal(await reader.get('forever5'), 5)
    assert.equal(await reader.get('graced5'), 5)
    await reader.close()
    await writer.close()
  })
})
