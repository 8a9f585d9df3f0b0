/**
 * Each write strategy's contract against a real Redis: what set() has done when it resolves,
 * write-back's coalescing, bound, flush() and close(), and cache-aside's dropping of local
 * copies here and, over the bus, in another process.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { startChild, type Child } from '../children/harness.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

type TierFigures = { hits: number; misses: number; sets: number; deletes: number; dropped: number }
type Figures = {
  dropped: number
  memoryEntries: number
  tiers: { memory?: TierFigures; file?: TierFigures; redis?: TierFigures & { queued: number } }
}

describe('write strategies', { skip }, () => {
  let raw: Redis
  let n = 0
  /** A prefix of its own per cache, so no test sees another's keys. */
  const fresh = (): string => `s${process.pid}-${n++}:`
  const inRedis = async (prefix: string, key: string): Promise<Buffer | null> => raw.getBuffer(`${prefix}default:${key}`)
  const open = (prefix: string, more: Partial<LarderOptions> = {}): Promise<Larder> =>
    Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix }, ...more })
  const figures = async (cache: Larder): Promise<Figures> => (await cache.stats()) as unknown as Figures

  before(() => {
    raw = new Redis(server.url)
  })
  after(() => raw?.quit())

  test('write-through: set() resolves once memory, the file tier and Redis all have it', async () => {
    const prefix = fresh()
    const cache = await open(prefix)
    await cache.set('k', 'v')
    const stored = await inRedis(prefix, 'k')
    assert.ok(stored !== null && stored.subarray(0, 4).toString('latin1') === 'LRDR', 'Redis holds the entry when set() resolves')
    const f = await figures(cache)
    assert.equal(f.tiers.memory!.sets, 1)
    assert.equal(f.tiers.file!.sets, 1)
    assert.equal(f.tiers.redis!.sets, 1)
    await cache.close()
  })

  test('write-back: set() resolves with Redis not yet written; writes of a key coalesce (the last wins); flush() sends them', async () => {
    const prefix = fresh()
    const cache = await open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '1h', maxQueue: 100 } })
    await cache.set('k', 'one')
    await cache.set('k', 'two')
    await cache.set('k', 'three')
    assert.equal(await inRedis(prefix, 'k'), null, 'nothing in Redis before the batch is sent')
    assert.equal(await cache.get('k'), 'three', 'the local tiers have it')
    assert.equal((await figures(cache)).tiers.redis!.queued, 1, 'one queued write for the key')
    await cache.flush()
    assert.notEqual(await inRedis(prefix, 'k'), null)
    const f = await figures(cache)
    assert.equal(f.tiers.redis!.sets, 1, 'three sets of one key, one Redis write')
    assert.equal(f.tiers.redis!.queued, 0)
    const other = await open(prefix)
    assert.equal(await other.get('k'), 'three', 'the last write is what Redis holds')
    await other.close()
    await cache.close()
  })

  test('write-back: a full queue drops its oldest writes and counts them', async () => {
    const prefix = fresh()
    const cache = await open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '1h', maxQueue: 3 } })
    for (const key of ['a', 'b', 'c', 'd', 'e']) await cache.set(key, key)
    let f = await figures(cache)
    assert.equal(f.tiers.redis!.queued, 3)
    assert.equal(f.tiers.redis!.dropped, 2, 'two writes dropped')
    assert.equal(f.dropped, 2, "and counted in the cache's figures")
    await cache.flush()
    for (const key of ['a', 'b']) assert.equal(await inRedis(prefix, key), null, `the oldest, ${key}, never reached Redis`)
    for (const key of ['c', 'd', 'e']) assert.notEqual(await inRedis(prefix, key), null, `${key} did`)
    for (const key of ['a', 'b', 'c', 'd', 'e']) assert.equal(await cache.get(key), key, 'every key is still local here')
    f = await figures(cache)
    assert.equal(f.tiers.redis!.sets, 3)
    await cache.close()
  })

  test('write-back: the queue is bounded in bytes too (writeBack.maxBytes): 1 MB values past it drop their oldest', async () => {
    const prefix = fresh()
    const cache = await open(prefix, {
      writeStrategy: 'write-back',
      compression: 'none',
      writeBack: { maxDelay: '1h', maxBytes: '2.5MB' },
      redis: { url: server.url, prefix, maxValueSize: '2MB' },
    })
    const value = (i: number): string => String(i).repeat(1_000_000)
    for (let i = 0; i < 5; i++) await cache.set(`big${i}`, value(i))
    const f = await figures(cache)
    assert.equal(f.tiers.redis!.queued, 2, 'two 1 MB entries fit in 2.5 MB')
    assert.equal(f.tiers.redis!.dropped, 3)
    await cache.flush()
    for (const i of [0, 1, 2]) assert.equal(await inRedis(prefix, `big${i}`), null, `big${i} never reached Redis`)
    for (const i of [3, 4]) assert.notEqual(await inRedis(prefix, `big${i}`), null, `big${i} did`)
    await assert.rejects(open(fresh(), { writeStrategy: 'write-back', writeBack: { maxBytes: 0 } }), {
      code: 'ERR_INVALID_OPTION',
      field: 'writeBack.maxBytes',
    })
    await cache.close()
  })

  test('write-back: close() drains the queue', async () => {
    const prefix = fresh()
    const cache = await open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '1h' } })
    for (let i = 0; i < 50; i++) await cache.set(`k${i}`, i)
    assert.equal(await inRedis(prefix, 'k0'), null)
    await cache.close()
    for (let i = 0; i < 50; i++) assert.notEqual(await inRedis(prefix, `k${i}`), null, `k${i} reached Redis by close()`)
  })

  test('write-back: flush() sends the sets called before it that were not awaited (fire the sets, then await flush)', async () => {
    const prefix = fresh()
    const cache = await open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '1h' } })
    try {
      let release = (): void => {}
      const held = new Promise<void>((resolve) => (release = resolve))
      const stream = cache.setStream(
        'big',
        (async function* () {
          await held
          yield Buffer.from('later')
        })(),
      )
      const sets = Array.from({ length: 20 }, (_, i) => cache.set(`k${i}`, i))
      await cache.flush() // without waiting for the stream, whose source is held: streams never go to Redis
      for (let i = 0; i < 20; i++) assert.notEqual(await inRedis(prefix, `k${i}`), null, `k${i} reached Redis by flush()`)
      release()
      await Promise.all([...sets, stream])
    } finally {
      await cache.close()
    }
  })

  test('write-back: a delete overtakes the queued write of its key', async () => {
    const prefix = fresh()
    const cache = await open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '1h' } })
    await cache.set('k', 'v')
    await cache.delete('k')
    await cache.flush()
    const other = await open(prefix)
    assert.equal(await other.get('k'), undefined, 'the deleted value never reached Redis later')
    await other.close()
    await cache.close()
  })

  test('cache-aside: warm() makes what it loads local, as its report says (the next reads are memory hits)', async () => {
    const cache = await open(fresh(), { writeStrategy: 'cache-aside' })
    try {
      const report = await cache.warm(['a', 'b'], { loader: (keys) => keys.map((key) => `v-${key}`) })
      assert.deepEqual(report, { warmed: 2, fromShared: 0, loaded: 2, failed: 0, superseded: 0 })
      cache.resetStats()
      assert.deepEqual([await cache.get('a'), await cache.get('b')], ['v-a', 'v-b'])
      const { tiers } = await cache.stats()
      assert.deepEqual([tiers.memory!.hits, tiers.redis!.hits], [2, 0])
    } finally {
      await cache.close()
    }
  })

  test('cache-aside: set() resolves once Redis has it; no local copy is written, and a stale one is dropped', async () => {
    const prefix = fresh()
    const cache = await open(prefix, { writeStrategy: 'cache-aside' })
    await cache.set('k', 'v1')
    assert.notEqual(await inRedis(prefix, 'k'), null)
    let f = await figures(cache)
    assert.equal(f.tiers.memory!.sets, 0, 'not written to memory')
    assert.equal(f.tiers.file!.sets, 0, 'not written to the file tier')
    assert.equal(f.memoryEntries, 0)
    assert.equal(await cache.get('k'), 'v1') // from Redis, and now local
    assert.equal((await figures(cache)).tiers.redis!.hits, 1)
    assert.equal(await cache.get('k'), 'v1')
    assert.equal((await figures(cache)).tiers.redis!.hits, 1, 'the local tiers filled on the read')
    await cache.set('k', 'v2')
    f = await figures(cache)
    assert.equal(f.memoryEntries, 0, 'the local copy was dropped from memory')
    assert.equal(await cache.get('k'), 'v2', "the next read is Redis's value")
    assert.equal((await figures(cache)).tiers.redis!.hits, 2)
    await cache.close()
  })

  describe('cache-aside across processes', () => {
    let b: Child
    const prefix = fresh()
    before(async () => {
      b = await startChild('redis-peer.ts')
      await b.call('open', { options: { dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix } } })
    })
    after(() => b?.shutdown())

    test('a cache-aside set drops the copies another process holds (the bus)', async () => {
      const a = await open(prefix, { writeStrategy: 'cache-aside' })
      await a.set('k', 'v1')
      assert.equal((await b.call<{ value: unknown }>('get', { key: 'k' })).value, 'v1')
      assert.equal((await b.call<{ value: unknown }>('get', { key: 'k' })).value, 'v1') // in B's memory and directory
      const hits = (await b.call<Figures>('stats')).tiers.redis!.hits
      await a.set('k', 'v2')
      assert.ok(
        await eventually(async () => (await b.call<{ value: unknown }>('get', { key: 'k' })).value === 'v2', 5000),
        'B reads the new value',
      )
      assert.equal((await b.call<Figures>('stats')).tiers.redis!.hits, hits + 1, 'from Redis: its own copies were dropped')
      await a.close()
    })
  })

  test('cache-aside: a get between two changes of its key never leaves the older value in memory', async () => {
    // The get waits for the first set and reads Redis while the second change runs: called
    // before the get's ticket, it left no record the get could see, and writes no local copy
    // over the one the get promoted (cache-aside writes none). The older value stayed in memory
    // for good: served after the newer set, and after a delete.
    const cache = await open(`aside-between-${process.pid}:`, { dir: false, writeStrategy: 'cache-aside' })
    try {
      for (let round = 0; round < 30; round++) {
        const key = `k${round % 3}`
        void cache.set(key, `old ${round}`)
        const read = cache.get(key)
        const last = round % 2 === 0 ? cache.set(key, `new ${round}`) : cache.delete(key)
        await Promise.all([read, last])
        assert.equal(await cache.get(key), round % 2 === 0 ? `new ${round}` : undefined, `round ${round}`)
      }
    } finally {
      await cache.close()
    }
  })
})
