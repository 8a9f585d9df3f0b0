/**
 * What Redis holds is judged before a byte of it is used: a corrupt, truncated or foreign
 * value under one of our keys is a counted miss, reported ('corrupt') and removed; a value
 * written since is not removed.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder, type CorruptReport } from '../../src/index.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe('corrupt, truncated and foreign Redis values', { skip }, () => {
  const prefix = `v${process.pid}:`
  const name = (key: string): string => `${prefix}default:${key}`
  let raw: Redis
  let cache: Larder
  const reports: CorruptReport[] = []
  before(async () => {
    raw = new Redis(server.url)
    // No local tiers: every read is Redis's.
    cache = await Larder.open({ dir: false, memory: false, maintenance: false, redis: { url: server.url, prefix } })
    cache.on('corrupt', (report) => void reports.push(report))
  })
  after(async () => {
    await cache?.close()
    await raw?.quit()
  })

  /** A good entry's bytes for `key`. */
  async function goodBytes(key: string, value: unknown): Promise<Buffer> {
    await cache.set(key, value)
    const bytes = await raw.getBuffer(name(key))
    assert.ok(bytes !== null)
    return bytes
  }

  const damages: [string, (good: Buffer) => Buffer | string][] = [
    [
      'one flipped payload byte',
      (good) => {
        const bad = Buffer.from(good)
        bad[bad.length - 12]! ^= 0x40
        return bad
      },
    ],
    [
      'a flipped checksum byte',
      (good) => {
        const bad = Buffer.from(good)
        bad[bad.length - 1]! ^= 0x01
        return bad
      },
    ],
    ['a truncated value', (good) => good.subarray(0, good.length - 5)],
    ['only the header', (good) => good.subarray(0, 16)],
    ['one byte', () => Buffer.from([0x4c])],
    ['a string another program wrote', () => 'hello from another program'],
    ['JSON', () => JSON.stringify({ value: 'not ours' })],
  ]
  for (const [what, damage] of damages) {
    test(`${what}: a counted miss, reported and removed`, async () => {
      const key = `k:${what}`
      const good = await goodBytes(key, { payload: 'x'.repeat(200), n: 42 })
      await raw.set(name(key), damage(good))
      const before = await cache.stats()
      const seen = reports.length
      assert.equal(await cache.get(key), undefined, 'never a wrong value')
      const figures = await cache.stats()
      assert.equal(figures.corrupt, before.corrupt + 1, 'counted')
      assert.equal(figures.misses, before.misses + 1, 'a miss')
      assert.equal(reports.length, seen + 1, 'reported')
      assert.equal(reports.at(-1)!.key, key)
      assert.equal(await raw.exists(name(key)), 0, 'removed from Redis')
    })
  }

  test('an empty string: a miss, left in place (a read takes at most maxValueSize + 1 bytes by GETRANGE, which answers a missing key and an empty value alike; it costs nothing to keep)', async () => {
    const key = 'k:empty'
    await raw.set(name(key), '')
    const before = await cache.stats()
    assert.equal(await cache.get(key), undefined, 'never a wrong value')
    const figures = await cache.stats()
    assert.equal(figures.misses, before.misses + 1, 'a miss')
    assert.equal(figures.corrupt, before.corrupt)
    await cache.set(key, 'v')
    assert.equal(await cache.get(key), 'v', 'a write replaces it')
  })

  test("another key's entry under this key's name (foreign): a counted miss, removed", async () => {
    const theirs = await goodBytes('theirs', 'their value')
    await raw.set(name('mine'), theirs)
    const before = (await cache.stats()).corrupt
    assert.equal(await cache.get('mine'), undefined, "never another key's value")
    assert.equal((await cache.stats()).corrupt, before + 1)
    assert.equal(await raw.exists(name('mine')), 0)
    assert.equal(await cache.get('theirs'), 'their value', 'the key it belongs to is untouched')
  })

  test('getMany judges each value: the damaged ones are misses, the good ones are served', async () => {
    await cache.setMany([
      { key: 'm1', value: 1 },
      { key: 'm2', value: 2 },
      { key: 'm3', value: 3 },
    ])
    const good = (await raw.getBuffer(name('m2')))!
    await raw.set(name('m2'), good.subarray(0, good.length - 1))
    const before = (await cache.stats()).corrupt
    assert.deepEqual(await cache.getMany(['m1', 'm2', 'm3']), [1, undefined, 3])
    assert.equal((await cache.stats()).corrupt, before + 1)
    assert.equal(await raw.exists(name('m2')), 0)
  })

  test('a value of another Redis type under our key (a hash): a counted miss, removed, not a Redis failure; a set replaces it', async () => {
    await raw.hset(name('typed'), 'field', 'value')
    const before = await cache.stats()
    assert.equal(await cache.get('typed'), undefined)
    const figures = await cache.stats()
    assert.equal(figures.corrupt, before.corrupt + 1, 'counted as a damaged value')
    assert.equal(figures.tiers.redis!.errors, before.tiers.redis!.errors, 'not as a Redis failure (those open the breaker)')
    assert.equal(await raw.exists(name('typed')), 0, 'removed')
    await raw.hset(name('typed'), 'field', 'value')
    await cache.set('typed', 'ours')
    assert.equal(await cache.get('typed'), 'ours', 'a set replaces whatever type was there')
    assert.equal((await cache.stats()).tiers.redis!.errors, before.tiers.redis!.errors)
  })
})
