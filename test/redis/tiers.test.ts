/**
 * stats().tiers figures, dir: false (memory + Redis only), and every operation synced over the
 * bus (cacheable never syncs clear).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)
let n = 0
const fresh = (): string => `t${process.pid}-${n++}:`

describe('stats().tiers, dir: false and the bus', { skip }, () => {
  test('stats().tiers counts each tier: sets, hits where the read was answered, deletes; resetStats() zeroes them', async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix: fresh() } })
    await cache.set('k', 'v')
    let t = (await cache.stats()).tiers
    assert.deepEqual([t.memory!.sets, t.file!.sets, t.redis!.sets], [1, 1, 1])
    assert.equal(await cache.get('k'), 'v')
    t = (await cache.stats()).tiers
    assert.equal(t.memory!.hits, 1)
    await cache.clear({ tier: 'memory' })
    assert.equal(await cache.get('k'), 'v')
    t = (await cache.stats()).tiers
    assert.equal(t.file!.hits, 1, 'answered by the file tier')
    await cache.clear({ tier: 'memory' })
    await cache.clear({ tier: 'file' })
    assert.equal(await cache.get('k'), 'v')
    t = (await cache.stats()).tiers
    assert.equal(t.redis!.hits, 1, 'answered by Redis')
    assert.equal(t.file!.misses, 1)
    assert.equal(await cache.delete('k'), true)
    t = (await cache.stats()).tiers
    assert.equal(t.redis!.deletes, 1)
    assert.equal(t.memory!.breaker, undefined, 'the memory tier has no breaker')
    assert.equal(t.file!.breaker!.state, 'closed')
    assert.equal(t.redis!.breaker!.state, 'closed')
    cache.resetStats()
    t = (await cache.stats()).tiers
    for (const tier of [t.memory!, t.file!, t.redis!]) assert.deepEqual([tier.hits, tier.misses, tier.sets, tier.deletes], [0, 0, 0, 0])
    await cache.close()
  })

  test('dir: false: memory + Redis only, no file tier, shared with another instance; file-only methods say why they cannot run', async () => {
    const prefix = fresh()
    const a = await Larder.open({ dir: false, maintenance: false, redis: { url: server.url, prefix } })
    const b = await Larder.open({ dir: false, maintenance: false, redis: { url: server.url, prefix } })
    assert.equal(a.dir, false)
    await a.set('k', 'v', { tags: ['t'] })
    assert.equal(await b.get('k'), 'v')
    assert.deepEqual(Object.keys((await b.stats()).tiers).sort(), ['memory', 'redis'])
    await a.invalidateTags(['t'])
    assert.ok(await eventually(async () => (await b.get('k')) === undefined), 'a tag invalidation reaches the other instance')
    await assert.rejects(a.verify(), { code: 'ERR_INVALID_OPTION', field: 'dir' })
    await a.close()
    await b.close()
  })

  test('delete() on an instance that never read the key reports the entry Redis held', async () => {
    const prefix = fresh()
    const a = await Larder.open({ dir: tempDir(), maintenance: false, redis: { url: server.url, prefix } })
    const b = await Larder.open({ dir: tempDir(), maintenance: false, redis: { url: server.url, prefix } })
    await a.set('k', 'v')
    assert.equal(await b.delete('k'), true, 'a live entry was there (in Redis)')
    assert.equal(await b.delete('k'), false)
    await a.close()
    await b.close()
  })

  describe('every operation reaches the other instance (cacheable never syncs clear)', () => {
    const prefix = fresh()
    let a: Larder
    let b: Larder
    before(async () => {
      a = await Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix } })
      b = await Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix } })
    })
    after(async () => {
      await a?.close()
      await b?.close()
    })
    /** B holds each key locally (read twice). */
    async function heldByB(keys: string[]): Promise<void> {
      await a.setMany(keys.map((key) => ({ key, value: 'v1' })))
      for (const key of keys) {
        assert.equal(await b.get(key), 'v1')
        assert.equal(await b.get(key), 'v1')
      }
    }
    const seen = async (keys: string[], expected: unknown): Promise<boolean> =>
      eventually(async () => (await b.getMany(keys)).every((v) => v === expected))

    test('setMany', async () => {
      await heldByB(['s1', 's2'])
      await a.setMany([
        { key: 's1', value: 'v2' },
        { key: 's2', value: 'v2' },
      ])
      assert.ok(await seen(['s1', 's2'], 'v2'))
    })
    test('deleteMany', async () => {
      await heldByB(['d1', 'd2'])
      await a.deleteMany(['d1', 'd2'])
      assert.ok(await seen(['d1', 'd2'], undefined))
    })
    test("clear({ tier: 'redis' }) then clear({ tier: 'file' }) and clear({ tier: 'memory' }): B drops its copies of the tiers named", async () => {
      await heldByB(['c1'])
      await a.clear({ tier: 'redis' })
      await a.clear({ tier: 'file' })
      await a.clear({ tier: 'memory' })
      assert.ok(await seen(['c1'], undefined), 'nothing left anywhere')
    })
    test('clear()', async () => {
      await heldByB(['c2', 'c3'])
      await a.clear()
      assert.ok(await seen(['c2', 'c3'], undefined))
    })
  })
})
