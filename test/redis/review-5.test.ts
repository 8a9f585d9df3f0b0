/**
 * Findings of an adversarial review of the tier stack's semantics with Redis (2026-12-06),
 * each reproduced there first and failing on the code before its fix:
 * - an increment of a key read from Redis left the value it read in its entry file (the
 *   promotion of that read, queued behind the increment, wrote it over the increment's own
 *   write): the instance then served the older value, and its next increment lost an update.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

let prefixes = 0
const nextPrefix = (): string => `rv5-${process.pid}-${++prefixes}:`

describe('increment of a key read from Redis', { skip }, () => {
  for (const writeStrategy of ['write-through', 'cache-aside'] as const) {
    test(`${writeStrategy}: sequential increments lose no update, and the instance reads its own result`, async () => {
      const redis = { url: server.url, prefix: nextPrefix() }
      const a = await Larder.open({ dir: tempDir(), redis, writeStrategy, maintenance: false })
      const b = await Larder.open({ dir: tempDir(), redis, maintenance: false })
      try {
        const counted: number[] = []
        for (let i = 0; i < 4; i++) counted.push(await a.increment('n'))
        assert.deepEqual(counted, [1, 2, 3, 4])
        assert.equal(await a.get('n'), 4)
        // Another instance's value, which this one has no copy of: read from Redis.
        await b.set('m', 5)
        const more: number[] = []
        for (let i = 0; i < 3; i++) more.push(await a.increment('m'))
        assert.deepEqual(more, [6, 7, 8])
        assert.equal(await a.get('m'), 8)
        assert.equal(await b.get('m'), 8)
      } finally {
        await a.close()
        await b.close()
      }
    })
  }
})
