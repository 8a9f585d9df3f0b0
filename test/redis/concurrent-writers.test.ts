/**
 * Instances writing the same keys at the same time: afterwards every instance serves what
 * Redis holds, whatever the order their writes and bus messages crossed in. Two ways they
 * diverged for good: writes stamped in the same millisecond by two processes (Redis kept one,
 * each instance its own), and a message heard while the local file was still being written
 * (it found no file to drop; the rename came after). And a clear of the local files, here or
 * heard, must not forget writes still queued for Redis.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { startChild, type Child } from '../children/harness.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe('concurrent writers of one key', { skip }, () => {
  const children: Child[] = []
  let n = 0
  const fresh = (): string => `cw${process.pid}-${n++}:`
  const redisOf = (prefix: string): LarderOptions['redis'] => ({ url: server.url, prefix })

  before(async () => {
    children.push(...(await Promise.all([startChild('redis-peer.ts'), startChild('redis-peer.ts')])))
  })
  after(async () => {
    await Promise.all(children.map((c) => c.shutdown()))
    await server?.stop()
  })

  for (const strategy of ['write-through', 'write-back'] as const) {
    for (const mode of ['one key at a time', 'all keys at once'] as const) {
      test(`two processes set the same keys (${strategy}, ${mode}): both then serve what Redis holds`, { timeout: 60_000 }, async () => {
        const prefix = fresh()
        const [p1, p2] = children as [Child, Child]
        const options = (): LarderOptions => ({
          dir: tempDir(),
          memory: true,
          maintenance: false,
          redis: redisOf(prefix),
          writeStrategy: strategy,
        })
        await Promise.all([p1.call('open', { options: options() }), p2.call('open', { options: options() })])
        const keys = Array.from({ length: mode === 'all keys at once' ? 100 : 60 }, (_, i) => `k${i}`)
        if (mode === 'all keys at once') await Promise.all([p1.call('setAll', { keys, tag: 'p1' }), p2.call('setAll', { keys, tag: 'p2' })])
        else
          for (const key of keys)
            await Promise.all([p1.call('setAll', { keys: [key], tag: 'p1' }), p2.call('setAll', { keys: [key], tag: 'p2' })])
        await Promise.all([p1.call('flush'), p2.call('flush')])
        await delay(300) // the last messages arrive
        const redis = await Larder.open({ dir: false, memory: false, bus: false, redis: redisOf(prefix) })
        const apart: string[] = []
        for (const key of keys) {
          const held = await redis.get(key)
          const [one, two] = await Promise.all([p1.call<{ value: unknown }>('get', { key }), p2.call<{ value: unknown }>('get', { key })])
          assert.ok(held === `p1-${key}` || held === `p2-${key}`, `${key}: Redis holds ${String(held)}`)
          if (one.value !== held || two.value !== held)
            apart.push(`${key}: redis ${String(held)}, p1 ${String(one.value)}, p2 ${String(two.value)}`)
        }
        assert.deepEqual(apart, [], `${apart.length} of ${keys.length} keys served apart from Redis`)
        await redis.close()
        await Promise.all([p1.call('close'), p2.call('close')])
      })
    }
  }

  test('clear({ tier: "file" }), here or heard from another instance, keeps the writes queued for Redis', async () => {
    for (const by of ['this instance', 'another instance'] as const) {
      const prefix = fresh()
      const open = (more: Partial<LarderOptions> = {}): Promise<Larder> =>
        Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: redisOf(prefix), ...more })
      const writer = await open({ writeStrategy: 'write-back', writeBack: { maxDelay: '1h' } })
      const reader = await open()
      const clearer = by === 'this instance' ? writer : await open()
      await reader.set('k', 'old')
      await writer.set('k', 'new') // queued for Redis
      await clearer.clear({ tier: 'file' })
      if (clearer !== writer) await delay(200) // the clear's message reaches the writer
      await writer.flush()
      assert.ok(await eventually(async () => (await reader.get('k')) === 'new'), `${by}: the queued write reached Redis and the reader`)
      assert.equal(await writer.get('k'), 'new', by)
      assert.equal(((await writer.stats()) as unknown as { dropped: number }).dropped, 0)
      for (const cache of new Set([writer, reader, clearer])) await cache.close()
    }
  })
})
