/**
 * Findings of a review of the Redis tier (2026-12-07), each reproduced first and failing on the
 * code before its fix:
 * - with a caller's ioredis client configured with `keyPrefix`, `clear()` and `prune({ pattern })`
 *   removed nothing from Redis: ioredis prefixes the keys a command names but not SCAN's MATCH,
 *   so the sweep matched nothing, and every host went on serving what was cleared;
 * - caches kept apart by their clients' keyPrefix heard each other's bus messages (ioredis
 *   prefixes keys, not channels): one's clear() cleared the other's directory, one's
 *   invalidateTags() its entries;
 * - entries invalidated by a tag that no read met again stayed in Redis for good (an entry
 *   without a ttl: Redis's own expiry never takes it):
 *   prune() now removes them.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe("a caller's client with an ioredis keyPrefix", { skip }, () => {
  test('clear() and prune({ pattern }) remove the values from Redis: no host reads them again', async () => {
    const keyPrefix = `app-${process.pid}:`
    const clients = [0, 1, 2].map(() => new Redis(server.port, '127.0.0.1', { keyPrefix }))
    const raw = new Redis(server.port, '127.0.0.1')
    const open = (client: Redis): Promise<Larder> => Larder.open({ dir: tempDir(), redis: { client }, maintenance: false })
    const [a, b] = [await open(clients[0]!), await open(clients[1]!)]
    try {
      await a.set('k', 'v')
      await a.set('x1', 'v')
      await a.set('x2', 'v')
      await a.set('y1', 'v')
      assert.equal(await b.get('k'), 'v', 'shared through Redis')
      const pruned = await a.prune({ pattern: 'x*' })
      assert.equal(pruned.sharedRemoved, 2, 'the pattern found both values in Redis')
      await a.clear()
      const fresh = await open(clients[2]!)
      try {
        for (const key of ['k', 'x1', 'x2', 'y1']) assert.equal(await fresh.get(key), undefined, `a host opened later reads no ${key}`)
        assert.equal(await b.get('k'), undefined, 'nor does the host that had read it')
      } finally {
        await fresh.close()
      }
      const left = (await raw.keys(`${keyPrefix}*`)).filter((name) => /:(k|x1|x2|y1)$/.test(name))
      assert.deepEqual(left, [], 'Redis holds none of them')
      for (const client of clients) assert.equal(client.options.keyPrefix, keyPrefix, "the caller's client is left as it was")
    } finally {
      await a.close()
      await b.close()
      for (const client of [...clients, raw]) client.disconnect()
    }
  })

  test("caches kept apart by their clients' keyPrefix do not hear each other's changes on the bus; caches sharing one do", async () => {
    const [one, two] = [`kp1-${process.pid}:`, `kp2-${process.pid}:`]
    const clients = [one, two, one].map((keyPrefix) => new Redis(server.port, '127.0.0.1', { keyPrefix }))
    const open = (client: Redis): Promise<Larder> => Larder.open({ dir: tempDir(), redis: { client }, maintenance: false })
    const [a, b, sameAsA] = [await open(clients[0]!), await open(clients[1]!), await open(clients[2]!)]
    try {
      await b.set('k', 'B', { tags: ['t'] })
      await sameAsA.set('k', 'A', { tags: ['t'] })
      await a.invalidateTags(['t'])
      await a.clear()
      // A message takes a round trip at most: the cache on A's keyPrefix has heard both.
      assert.ok(await eventually(async () => (await sameAsA.get('k')) === undefined), "A's invalidation reaches a cache on its keyPrefix")
      assert.equal(await b.get('k'), 'B', "nor A's invalidation nor its clear reach a cache on another keyPrefix")
      assert.equal((await b.entries()).length, 1, "B's directory was not cleared")
    } finally {
      for (const cache of [a, b, sameAsA]) await cache.close()
      for (const client of clients) client.disconnect()
    }
  })
})

describe('prune() and what Redis holds that no instance will serve again', { skip }, () => {
  test('entries invalidated by a tag are removed from Redis; live ones and expired ones in their grace stay', async () => {
    const prefix = `rv7-${process.pid}-dead:`
    const raw = new Redis(server.port, '127.0.0.1')
    const cache = await Larder.open({ dir: tempDir(), redis: { url: server.url, prefix }, maintenance: false })
    try {
      for (let i = 0; i < 40; i++) await cache.set(`tagged${i}`, i, { tags: ['users'] })
      for (let i = 0; i < 10; i++) await cache.set(`short${i}`, i, { ttl: 20 })
      for (let i = 0; i < 10; i++) await cache.getOrSet(`graced${i}`, () => i, { ttl: 20, grace: '1h' })
      for (let i = 0; i < 5; i++) await cache.set(`live${i}`, i)
      await cache.invalidateTags(['users'])
      await new Promise((resolve) => setTimeout(resolve, 50))
      const names = async (): Promise<string[]> => (await raw.keys(`${prefix}default:*`)).filter((name) => !name.includes('\0'))
      // Redis drops the expired ones itself (PEXPIREAT at expiry + grace); no read met the rest.
      assert.equal((await names()).length, 55, 'Redis still holds the invalidated ones')
      const report = await cache.prune()
      assert.equal(report.sharedRemoved, 40, 'the invalidated ones went')
      const left = (await names()).map((name) => name.slice(`${prefix}default:`.length)).sort()
      assert.equal(left.length, 15)
      assert.ok(
        left.every((key) => key.startsWith('live') || key.startsWith('graced')),
        `entries in their grace and live ones stay: ${left.join(' ')}`,
      )
      for (let i = 0; i < 5; i++) assert.equal(await cache.get(`live${i}`), i)
    } finally {
      await cache.close()
      raw.disconnect()
    }
  })
})
