/**
 * The tag stamps Redis holds are bounded as the directory's are: an instance whose read of the
 * hash finds more than the bound folds the oldest into a floor (facade/tag-invalidation.ts,
 * `redisStampLimits`, lowered here so that a dozen invalidations cross it). Every instance that
 * reads the stamps afterwards takes the floor: a tagged entry created at or before it is stale
 * (more misses, never an invalidated value); an instance that made a folded stamp does not
 * raise it again after a reconnect.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { redisStampLimits } from '../../src/facade/tag-invalidation.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)
const bound = { ...redisStampLimits }
after(() => Object.assign(redisStampLimits, bound))

let prefixes = 0
const nextPrefix = (): string => `fold-${process.pid}-${++prefixes}:`

describe('tag stamps in Redis past their bound fold into a floor', { skip }, () => {
  test('an instance that reads too many folds the oldest; later instances take the floor; the maker does not raise them again', async () => {
    Object.assign(redisStampLimits, { max: 10, keep: 4 })
    const prefix = nextPrefix()
    const admin = new Redis(server.url)
    const hash = `${prefix}default:\0tags`
    const open = (dir: string | false = false) => Larder.open({ dir, redis: { url: server.url, prefix }, maintenance: false })
    const maker = await open()
    try {
      // A reader that finds one dead removes it from Redis: one for each reader below.
      for (const key of ['old', 'old for the next', 'old for the one with a directory'])
        await maker.set(key, 'made before the invalidations', { tags: ['never invalidated'] })
      for (let i = 0; i < 12; i++) await maker.invalidateTags([`t${i}`])
      await maker.set('new', 'made after them', { tags: ['never invalidated'] })
      const eighth = Number(await admin.hget(hash, 't7'))
      assert.equal(await admin.hlen(hash), 12)

      const folder = await open() // its read at open finds 12 > 10
      assert.equal(await folder.get('old'), undefined, 'its clock holds the floor at once')
      assert.ok(await eventually(async () => (await admin.hlen(hash)) === 4), 'the oldest 8 folded out of Redis: 4 kept')
      assert.equal(Number(await admin.get(`${prefix}default:\0tagfloor`)), eighth, 'the floor is the newest stamp folded')
      assert.equal(await folder.get('new'), 'made after them')

      for (const [later, key] of [
        [await open(), 'old for the next'],
        [await open(tempDir()), 'old for the one with a directory'],
      ] as const) {
        assert.equal(await admin.exists(`${prefix}default:${key}`), 1, 'still in Redis')
        assert.equal(await later.get(key), undefined, 'an instance opened later takes the floor from Redis')
        assert.equal(await later.get('new'), 'made after them')
        await later.set('after the fold', 'v', { tags: ['t0'] })
        assert.equal(await later.get('after the fold'), 'v', 'a write after the fold is above the floor')
        await later.close()
      }
      await folder.close()

      // The maker knows the 12 stamps it made; after a reconnect it reads the stamps again and
      // raises those Redis lacks (a Redis that restarted empty), but not the folded ones.
      assert.ok(await eventually(async () => ((await admin.pubsub('NUMSUB', `${prefix}bus:default`)) as [string, number])[1] > 0))
      await admin.client('KILL', 'TYPE', 'pubsub')
      assert.ok(
        await eventually(async () => ((await admin.pubsub('NUMSUB', `${prefix}bus:default`)) as [string, number])[1] > 0),
        'resubscribed',
      )
      await maker.invalidateTags(['t11']) // a round trip after its resync has begun
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.equal(await admin.hlen(hash), 4, 'the 4 kept: none of the folded raised again')
      assert.equal(await maker.get('old'), undefined)
    } finally {
      await maker.close()
      admin.disconnect()
    }
  })

  test('clear() keeps the floor, as it keeps the stamps: an invalidation outlives a clear, folded or not', async () => {
    Object.assign(redisStampLimits, { max: 10, keep: 4 })
    const prefix = nextPrefix()
    const admin = new Redis(server.url)
    const open = (): Promise<Larder> => Larder.open({ dir: false, redis: { url: server.url, prefix }, maintenance: false })
    const maker = await open()
    try {
      for (let i = 0; i < 12; i++) await maker.invalidateTags([`t${i}`])
      const folder = await open() // its read at open finds 12 > 10, and folds
      const floor = `${prefix}default:\0tagfloor`
      assert.ok(await eventually(async () => (await admin.exists(floor)) === 1), 'folded into a floor')
      const before = await admin.get(floor)
      await folder.set('k', 'v')
      await folder.clear()
      assert.equal(await admin.exists(`${prefix}default:k`), 0, 'the entries went')
      assert.equal(await admin.get(floor), before, 'the floor stayed')
      assert.equal(await admin.hlen(`${prefix}default:\0tags`), 4, 'and the stamps kept')
      await folder.close()
    } finally {
      await maker.close()
      admin.disconnect()
    }
  })

  test('within the bound nothing is folded, and no floor is set', async () => {
    Object.assign(redisStampLimits, { max: 10, keep: 4 })
    const prefix = nextPrefix()
    const admin = new Redis(server.url)
    const cache = await Larder.open({ dir: false, redis: { url: server.url, prefix }, maintenance: false })
    try {
      for (let i = 0; i < 10; i++) await cache.invalidateTags([`t${i}`])
      const other = await Larder.open({ dir: false, redis: { url: server.url, prefix }, maintenance: false })
      await other.close()
      assert.equal(await admin.hlen(`${prefix}default:\0tags`), 10)
      assert.equal(await admin.exists(`${prefix}default:\0tagfloor`), 0)
    } finally {
      await cache.close()
      admin.disconnect()
    }
  })
})
