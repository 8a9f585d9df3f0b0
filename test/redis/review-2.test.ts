/**
 * Findings of an adversarial review of the shared tier (2026-12-05), each reproduced there
 * first and failing on the code before its fix:
 * - a stall of this process longer than commandTimeout (replies waiting, unread) failed every
 *   command sent before it: a write-back batch failed whole, the breaker opened, and flush()
 *   and close() gave up on the queue;
 * - a foreign value at the tag-stamp key (another type, or a field that is not a finite
 *   number) switched tag invalidation off for instances opened later;
 * - a clear (or a prune by pattern) let a write-back batch already on its way to Redis put back
 *   values set before it.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import type { ResolvedRedisOptions } from '../../src/options.ts'
import { openClient, readyWithin } from '../../src/redis/connection.ts'
import { tempDir } from '../helpers.ts'
import { startRelay } from './proxy.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)
const direct = skip === false ? new Redis(server.url) : (undefined as unknown as Redis)
after(() => direct?.disconnect())

let prefixes = 0
const nextPrefix = (): string => `rv2-${process.pid}-${++prefixes}:`

/** Busy for `ms` on this thread: the process stalls, as under a long synchronous task. */
function stall(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // spin
  }
}

describe('a stall longer than commandTimeout', { skip }, () => {
  test('replies that arrived during it are read: a write-back batch is sent, the breaker stays closed', async () => {
    const redis = { url: server.url, prefix: nextPrefix(), commandTimeout: '200ms' }
    const writer = await Larder.open({ dir: false, redis, writeStrategy: 'write-back', maintenance: false })
    const breaker: string[] = []
    writer.on('breaker', (state: string, tier: string) => breaker.push(`${tier}:${state}`))
    try {
      for (let i = 0; i < 200; i++) await writer.set(`k${i}`, i)
      const flushed = writer.flush() // the batch goes out now (ioredis writes it in this tick)
      stall(500) // Redis answers meanwhile; nothing reads it until the stall ends
      assert.equal(await flushed, undefined)
      const redisStats = (await writer.stats()).tiers.redis!
      assert.equal(redisStats.queued, 0, 'every write sent')
      assert.equal(redisStats.errors, 0, 'no command judged timed out')
      assert.deepEqual(breaker, [], 'the breaker never opened')
      const reader = await Larder.open({ dir: false, redis, maintenance: false })
      try {
        assert.deepEqual(await reader.getMany(['k0', 'k199']), [0, 199])
      } finally {
        await reader.close()
      }
    } finally {
      await writer.close()
    }
  })
})

describe('a foreign value at the tag-stamp key', { skip }, () => {
  for (const plant of ['a string', 'a list', 'a field that is not a finite number'] as const) {
    test(`${plant}: invalidations go through, and an instance opened later honours them`, async () => {
      const redis = { url: server.url, prefix: nextPrefix() }
      const stamps = `${redis.prefix}default:\0tags`
      if (plant === 'a string') await direct.set(stamps, 'garbage')
      else if (plant === 'a list') await direct.rpush(stamps, 'x')
      else await direct.hset(stamps, 'T', '9e999')
      const a = await Larder.open({ dir: false, redis, maintenance: false })
      try {
        await a.set('tagged', 'old', { tags: ['T'] })
        await a.invalidateTags(['T'])
        assert.equal((await a.stats()).tiers.redis!.errors, 0, 'the stamp was raised')
        const later = await Larder.open({ dir: false, redis, maintenance: false })
        try {
          assert.equal(await later.get('tagged'), undefined, 'invalidated')
        } finally {
          await later.close()
        }
      } finally {
        await a.close()
      }
    })
  }
})

describe('a clear while another instance writes back', { skip }, () => {
  /** B writes back through a relay that holds its batch; A clears (through `viaA`, or on Redis).
   *  What a fresh instance then reads of B's keys, set before the clear. */
  async function race(
    order: 'batch lands, clear heard after' | 'clear heard while the batch is held',
    op: 'clear' | 'prune',
  ): Promise<unknown[]> {
    const prefix = nextPrefix()
    const relayB = await startRelay(server.port)
    const relayA = await startRelay(server.port)
    const b = await Larder.open({
      dir: false,
      memory: true,
      maintenance: false,
      writeStrategy: 'write-back',
      redis: { url: relayB.url, prefix, commandTimeout: '10s' },
    })
    const a = await Larder.open({ dir: tempDir(), maintenance: false, redis: { url: relayA.url, prefix, commandTimeout: '10s' } })
    try {
      const keys = ['user:1', 'user:2', 'user:3']
      relayB.hold('evalsha', 5_000)
      for (const key of keys) await b.set(key, `set before the ${op}`)
      const flushed = b.flush()
      assert.ok(await eventually(() => relayB.holding() > 0), "B's batch is on its way")
      if (order === 'batch lands, clear heard after') relayA.hold('publish', 5_000) // A's message, after its sweep
      if (op === 'clear') await a.clear()
      else await a.prune({ pattern: 'user:*' })
      if (order === 'batch lands, clear heard after') {
        relayB.release()
        await flushed // the batch is back: in Redis, after the sweep
        relayA.release()
      } else {
        await new Promise((resolve) => setTimeout(resolve, 300)) // B hears the clear
        relayB.release()
        await flushed
      }
      await new Promise((resolve) => setTimeout(resolve, 300))
      await b.flush() // the tombstones that follow
      const fresh = await Larder.open({ dir: false, maintenance: false, redis: { url: server.url, prefix } })
      try {
        return [...(await fresh.getMany(keys)), await b.get('user:1')]
      } finally {
        await fresh.close()
      }
    } finally {
      await b.close()
      await a.close()
      await relayA.close()
      await relayB.close()
    }
  }

  for (const op of ['clear', 'prune'] as const) {
    for (const order of ['clear heard while the batch is held', 'batch lands, clear heard after'] as const) {
      test(`${op === 'clear' ? 'clear()' : 'prune({ pattern })'}, ${order}: the values set before it do not stay in Redis`, async () => {
        assert.deepEqual(await race(order, op), [undefined, undefined, undefined, undefined])
      })
    }
  }
})

describe("a reader's directory filled from Redis", { skip }, () => {
  test('is held to its maxSize: the promotions of Redis hits start the automatic prune as sets do', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const writer = await Larder.open({ dir: false, maintenance: false, redis })
    const dir = tempDir()
    const reader = await Larder.open({ dir, maxSize: 100_000, redis })
    try {
      for (let i = 0; i < 60; i++) await writer.set(`row${i}`, randomBytes(5000)) // 5 KB each, incompressible: 300 KB in all
      for (let i = 0; i < 60; i++) assert.ok((await reader.get(`row${i}`)) !== undefined)
    } finally {
      await reader.close() // waits for the prune a promotion started
      await writer.close()
    }
    const files = await Larder.open({ dir, readOnly: true, maintenance: false })
    try {
      const { size } = await files.stats()
      assert.ok(size > 0 && size <= 100_000, `${size} bytes on disk against a budget of 100,000`)
    } finally {
      await files.close()
    }
  })
})

describe('a foreign value at a lock key', { skip }, () => {
  test('one without an expiry is not a lock: it is removed, and the locked getOrSet goes on', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const lock = `${redis.prefix}default:\0lock:report`
    await direct.set(lock, 'planted') // no expiry: no lock of larder's looks like this
    const cache = await Larder.open({ dir: false, maintenance: false, redis })
    try {
      let calls = 0
      assert.equal(await cache.getOrSet('report', () => Promise.resolve(++calls), { lock: true }), 1)
      assert.equal(calls, 1)
      // The planted value went (it made every locked getOrSet wait 10 s): the lock was ours,
      // and its release (not awaited by getOrSet) leaves nothing.
      assert.ok(await eventually(async () => (await direct.get(lock)) === null))
    } finally {
      await cache.close()
    }
  })
})

describe('a socket of a connection larder opened', { skip }, () => {
  test('an error after the ones ioredis listens for (a refused TLS handshake can emit one more) does not take the process down', async () => {
    const options = { url: server.url, commandTimeout: 500 } as unknown as ResolvedRedisOptions
    const { client } = openClient(options)
    client.on('error', () => {}) // the client's own event: ioredis reports the first one there
    try {
      assert.ok(await readyWithin(client, 5_000))
      assert.equal(await client.ping(), 'PONG')
      const stream = (client as unknown as { stream: NodeJS.EventEmitter }).stream
      // ioredis's two `once` listeners both take the first error; the second had none, and an
      // 'error' event no one listens for is thrown (in a socket's case: the process dies).
      assert.doesNotThrow(() => {
        stream.emit('error', new Error('the first: ioredis handles it'))
        stream.emit('error', new Error('a late one, as a TLS alert after a refused handshake'))
      })
    } finally {
      client.disconnect()
    }
  })
})
