/**
 * Two processes with separate directories sharing one real Redis: what one does, the other
 * sees (through Redis and the bus), in order and without a wrong value.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { startChild, type Child } from '../children/harness.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe('two processes, separate directories, one Redis', { skip }, () => {
  let b: Child
  let a: Larder
  const prefix = `t${process.pid}:`
  before(async () => {
    b = await startChild('redis-peer.ts')
    await b.call('open', { options: { dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix } } })
    a = await Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix } })
  })
  after(async () => {
    await a?.close()
    await b?.shutdown()
  })
  const onB = async (key: string): Promise<unknown> => (await b.call<{ value: unknown }>('get', { key })).value

  test("a set on A is read on B (from Redis, then from B's own tiers)", async () => {
    await a.set('user:1', { name: 'Ada' })
    assert.deepEqual(await onB('user:1'), { name: 'Ada' })
    const stats = await b.call<{ tiers: { redis: { hits: number } } }>('stats')
    assert.equal(stats.tiers.redis.hits, 1)
    assert.deepEqual(await onB('user:1'), { name: 'Ada' })
    type Figures = { memoryHits: number; tiers: { redis: { hits: number }; file: { sets: number }; memory: { sets: number } } }
    const after = await b.call<Figures>('stats')
    assert.equal(after.tiers.redis.hits, 1, 'the second read was local')
    assert.equal(after.memoryHits, 1, "from B's memory tier")
    assert.equal(after.tiers.memory.sets, 1, 'promoted into memory')
    assert.ok(await eventually(async () => (await b.call<Figures>('stats')).tiers.file.sets === 1), "and into B's own directory")
  })

  for (const [name, change, expected] of [
    ['an overwrite', (k: string) => a.set(k, 'v2'), 'v2'],
    ['a delete', async (k: string) => void (await a.delete(k)), undefined],
    ['a tag invalidation', async () => a.invalidateTags(['t']), undefined],
    ['a clear', async () => a.clear(), undefined],
  ] as const) {
    test(`${name} on A is seen by B, whose local copy was fresh`, async () => {
      const key = `k:${name}`
      await a.set(key, 'v1', { tags: ['t'] })
      assert.equal(await onB(key), 'v1')
      assert.equal(await onB(key), 'v1') // B holds it in memory and on disk now
      await change(key)
      assert.ok(await eventually(async () => (await onB(key)) === expected, 2000), `B sees ${String(expected)}`)
    })
  }

  for (const strategy of ['write-through', 'write-back'] as const) {
    test(`${strategy}: an overwrite too large for Redis (kept local) leaves no instance serving the older value Redis held`, async () => {
      const writer = await Larder.open({ dir: tempDir(), maintenance: false, writeStrategy: strategy, redis: { url: server.url, prefix } })
      try {
        const key = `big:${strategy}`
        await writer.set(key, 'small')
        await writer.flush()
        assert.equal(await onB(key), 'small')
        assert.equal(await onB(key), 'small') // B holds it locally too
        const big = randomBytes(1_200_000).toString('base64') // over the 1 MB maxValueSize, compressed or not
        await writer.set(key, big)
        await writer.flush()
        assert.equal(await writer.get(key), big, 'the writer serves it from its own tiers')
        // Before: B dropped its copy on the message, then read the older value back from Redis.
        assert.ok(await eventually(async () => (await onB(key)) === undefined, 3000), 'B misses')
        assert.equal(await onB(key), undefined, 'and goes on missing')
        const late = await Larder.open({ dir: tempDir(), maintenance: false, redis: { url: server.url, prefix } })
        assert.equal(await late.get(key), undefined, 'an instance opened after it misses too')
        await late.close()
      } finally {
        await writer.close()
      }
    })
  }

  test('an oversize write older than what Redis holds (a readAt from before another write) is not served by its writer', async () => {
    const small: LarderOptions = {
      dir: tempDir(),
      maintenance: false,
      compression: 'none',
      redis: { url: server.url, prefix, maxValueSize: 1000 },
    }
    const writer = await Larder.open(small)
    const other = await Larder.open({ ...small, dir: tempDir() })
    try {
      const readAt = writer.now() // the writer starts reading its source
      while (Date.now() <= readAt + 1) await new Promise((resolve) => setTimeout(resolve, 1)) // a later millisecond
      await other.set('older-big', 'NEW') // another instance writes meanwhile
      await writer.set('older-big', 'O'.repeat(4000), { readAt }) // over maxValueSize: local only
      // A value that fits loses to Redis's newer one (kept); before, the oversize one did not.
      assert.equal(await writer.get('older-big'), 'NEW')
      assert.equal(await other.get('older-big'), 'NEW')
    } finally {
      await Promise.all([writer.close(), other.close()])
    }
  })

  test("B's own messages do not drop B's copies, and an older message never undoes a newer write", async () => {
    await b.call('set', { key: 'own', value: 'mine' })
    const before = (await b.call<{ memoryHits: number }>('stats')).memoryHits
    assert.equal(await onB('own'), 'mine')
    assert.equal((await b.call<{ memoryHits: number }>('stats')).memoryHits, before + 1, 'still in memory after its own message')
    // A message stamped before B's write arrives after it: B keeps its newer value.
    const publisher = new Redis(server.url)
    const channel = `${prefix}bus:default`
    await publisher.publish(channel, JSON.stringify({ from: 'someone-else', op: 'keys', keys: [['own', 1]] }))
    await publisher.quit()
    assert.equal(await onB('own'), 'mine')
    assert.equal((await b.call<{ memoryHits: number }>('stats')).memoryHits, before + 2, 'the older message left the newer copy in memory')
  })

  test('a clear heard late (its message stamped before a newer write) keeps that write in memory', async () => {
    type Hits = { memoryHits: number }
    await b.call('set', { key: 'after-clear', value: 'newer' })
    await b.call('set', { key: 'marker', value: 'm' })
    const publisher = new Redis(server.url)
    const channel = `${prefix}bus:default`
    await publisher.publish(channel, JSON.stringify({ from: 'someone-else', op: 'clear', tier: 'memory', at: 1 }))
    // Messages arrive in order: once B has dropped the marker (a newer change of it), B has
    // handled the clear too.
    await publisher.publish(channel, JSON.stringify({ from: 'someone-else', op: 'keys', keys: [['marker', Date.now() + 60_000]] }))
    await publisher.quit()
    const fromMemory = async (key: string): Promise<boolean> => {
      const before = (await b.call<Hits>('stats')).memoryHits
      await onB(key)
      return (await b.call<Hits>('stats')).memoryHits === before + 1
    }
    assert.ok(await eventually(async () => !(await fromMemory('marker'))), 'B heard the messages')
    assert.ok(await fromMemory('after-clear'), 'the clear made before the write did not drop it from memory')
    assert.equal(await onB('after-clear'), 'newer')
  })

  test('a late starter sees tag invalidations made before it opened', async () => {
    await a.set('tagged', 'old', { tags: ['late'] })
    const dir = tempDir()
    const early = await Larder.open({ dir, maintenance: false, redis: { url: server.url, prefix } })
    assert.equal(await early.get('tagged'), 'old') // now in early's directory
    await early.close()
    await a.invalidateTags(['late'])
    const late = await Larder.open({ dir, maintenance: false, redis: { url: server.url, prefix } })
    assert.equal(await late.get('tagged'), undefined)
    await late.close()
  })
})
