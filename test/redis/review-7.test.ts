/**
 * Findings of a review of the Redis tier (2026-12-07), each reproduced first and failing on the
 * code before its fix:
 * - with a caller's ioredis client configured with `keyPrefix`, `clear()` and `prune({ pattern })`
 *   removed nothing from Redis: ioredis prefixes the keys a command names but not SCAN's MATCH,
 *   so the sweep matched nothing, and every host went on serving what was cleared.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

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
})
