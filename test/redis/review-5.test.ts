/**
 * Findings of an adversarial review of the tier stack's semantics with Redis (2026-12-06),
 * each reproduced there first and failing on the code before its fix:
 * - an increment of a key read from Redis left the value it read in its entry file (the
 *   promotion of that read, queued behind the increment, wrote it over the increment's own
 *   write): the instance then served the older value, and its next increment lost an update;
 * - calls on one key of one instance made without awaiting (`set`, `delete`, `set`) lost the
 *   last one everywhere: a delete (or an increment) was stamped when its turn came, a set when
 *   called, so Redis refused the later set as older than the tombstone, and its writer dropped
 *   its own copies;
 * - of two instances in one process on one Redis, a write by one made after the other's write
 *   (or delete) of the key completed was refused 14–48 % of the time: each instance had a clock
 *   of its own, and the second stamped the same millisecond as the first (or a fraction below
 *   it) before the first's bus message reached it; Redis keeps the first of two alike.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Redis } from 'ioredis'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { setTimeout as delay } from 'node:timers/promises'
import { withCaches } from './instances.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

let prefixes = 0
type RedisOption = Exclude<LarderOptions['redis'], string | undefined>

const nextPrefix = (): string => `rv5-${process.pid}-${++prefixes}:`

describe('increment of a key read from Redis', { skip }, () => {
  for (const writeStrategy of ['write-through', 'cache-aside'] as const) {
    test(`${writeStrategy}: sequential increments lose no update, and the instance reads its own result`, async () => {
      const redis = { url: server.url, prefix: nextPrefix() }
      await withCaches(
        [
          { dir: tempDir(), redis, writeStrategy, maintenance: false },
          { dir: tempDir(), redis, maintenance: false },
        ],
        async ([a, b]) => {
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
        },
      )
    })
  }
})

describe('calls on one key of one instance, not awaited', { skip }, () => {
  for (const writeStrategy of ['write-through', 'write-back', 'cache-aside'] as const) {
    test(`${writeStrategy}: take effect in call order in every tier and instance (the last call wins)`, async () => {
      const redis = { url: server.url, prefix: nextPrefix() }
      await withCaches(
        [
          { dir: tempDir(), memory: true, redis, writeStrategy, maintenance: false },
          { dir: tempDir(), redis, maintenance: false },
        ],
        async ([a, b]) => {
          const runs: Record<string, (k: string) => Promise<unknown>[]> = {
            'set, delete, set': (k) => [a.set(k, 1), a.delete(k), a.set(k, 2)],
            'set, deleteMany, set': (k) => [a.set(k, 1), a.deleteMany([k]), a.set(k, 2)],
            'set, delete, setMany': (k) => [a.set(k, 1), a.delete(k), a.setMany([{ key: k, value: 2 }])],
            'set, increment, set': (k) => [a.set(k, 1), a.increment(k), a.set(k, 2)],
            'set, increment, setMany': (k) => [a.set(k, 1), a.increment(k), a.setMany([{ key: k, value: 2 }])],
          }
          const seen: Record<string, unknown[]> = {}
          const expected: Record<string, unknown[]> = {}
          let i = 0
          for (const [label, calls] of Object.entries(runs)) {
            const k = `k${i++}`
            await a.set(k, 0)
            await Promise.all(calls(k))
            await a.flush()
            seen[label] = [await a.get(k), await b.get(k)]
            expected[label] = [2, 2]
          }
          assert.deepEqual(seen, expected)
        },
      )
    })
  }
})

describe('two instances in one process', { skip }, () => {
  // However each was told where Redis is: the same URL, another spelling of it, a client of
  // the caller's (each its own, as is usual) or a mix.
  const pairings: [string, () => [RedisOption, RedisOption, Redis[]]][] = [
    ['the same URL', () => [{ url: server.url }, { url: server.url }, []]],
    ['localhost and 127.0.0.1', () => [{ url: server.url }, { url: server.url.replace('127.0.0.1', 'localhost') }, []]],
    [
      'a client of their own each',
      () => {
        const clients = [new Redis(server.url), new Redis(server.url)]
        return [{ client: clients[0] }, { client: clients[1] }, clients]
      },
    ],
    [
      'a client and a URL',
      () => {
        const client = new Redis(server.url)
        return [{ client }, { url: server.url }, [client]]
      },
    ],
  ]
  for (const [label, pairing] of pairings) {
    test(`${label}: a write made after the other instance’s write or delete completed is the one kept everywhere`, async () => {
      const prefix = nextPrefix()
      const [first, second, clients] = pairing()
      try {
        await withCaches(
          [
            { dir: false, redis: { ...first, prefix }, maintenance: false },
            { dir: false, redis: { ...second, prefix }, maintenance: false },
          ],
          async ([a, b]) => {
            const tally: Record<string, number> = {}
            for (let i = 0; i < 100; i++) {
              await a.set(`s${i}`, 'a')
              await b.set(`s${i}`, 'b')
              await a.set(`d${i}`, 'a')
              await a.delete(`d${i}`)
              await b.set(`d${i}`, 'b')
            }
            await delay(50) // the bus messages heard
            for (let i = 0; i < 100; i++)
              for (const k of [`s${i}`, `d${i}`]) {
                const seen = `${String(await a.get(k))}/${String(await b.get(k))}`
                tally[seen] = (tally[seen] ?? 0) + 1
              }
            assert.deepEqual(tally, { 'b/b': 200 })
          },
        )
      } finally {
        for (const client of clients) client.disconnect()
      }
    })
  }
})

describe('a read-only instance with Redis', { skip }, () => {
  test('reads Redis from its first call, honours the invalidations kept there and heard, and writes no stamp', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const dir = tempDir()
    const writer = await Larder.open({ dir, redis, maintenance: false })
    await writer.set('tagged', 'old', { tags: ['t'] })
    await writer.set('later', 'old', { tags: ['u'] })
    await writer.close()
    const other = await Larder.open({ dir: tempDir(), redis, maintenance: false })
    const stamps = (): string[] =>
      (fs.readdirSync(dir, { recursive: true }) as string[])
        .filter((file) => file.includes('tags'))
        .map((file) => `${file} ${fs.statSync(`${dir}/${file}`).mtimeMs}`)
        .sort()
    let reader: Larder | undefined
    try {
      await other.set('shared', 'v')
      await other.invalidateTags(['t'])
      const before = stamps()
      reader = await Larder.open({ dir, readOnly: true, redis, maintenance: false })
      const errors: string[] = []
      reader.on('error', (error) => errors.push(error.message))
      assert.equal(await reader.get('shared'), 'v', 'only Redis holds it: read from the first call')
      assert.equal(await reader.get('tagged'), undefined, 'invalidated before it opened (a stamp in Redis)')
      assert.equal(await reader.get('later'), 'old')
      await other.invalidateTags(['u'])
      await eventually(async () => (await reader!.get('later')) === undefined)
      assert.deepEqual(errors, [])
      assert.deepEqual(stamps(), before, 'no tag stamp written in its directory')
    } finally {
      await reader?.close()
      await other.close()
    }
  })
})

describe('a read-only instance and what Redis holds', { skip }, () => {
  test('an invalidated entry and a foreign oversized value read as misses and are left in Redis for a writer', async () => {
    const prefix = nextPrefix()
    const redis = { url: server.url, prefix }
    const raw = new Redis(server.url)
    try {
      await withCaches(
        [
          { dir: false, redis, maintenance: false },
          { dir: tempDir(), readOnly: true, redis: { ...redis, maxValueSize: 1024 }, maintenance: false },
        ],
        async ([writer, reader]) => {
          await writer.set('k', 'v', { tags: ['t'] })
          await writer.invalidateTags(['t'])
          await raw.set(`${prefix}default:planted`, 'x'.repeat(4096))
          assert.ok(await eventually(async () => (await reader.get('k')) === undefined))
          assert.equal(await reader.get('planted'), undefined)
          assert.deepEqual(await raw.exists(`${prefix}default:k`, `${prefix}default:planted`), 2, 'both left in Redis')
          assert.equal((await reader.stats()).corrupt, 1, 'the foreign value counted')
        },
      )
    } finally {
      await raw.quit()
    }
  })
})

describe('a read-only instance with a directory and Redis', { skip }, () => {
  test('answers from Redis without writing what it read into its directory', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const dir = tempDir()
    const writer = await Larder.open({ dir, redis, maintenance: false })
    await writer.set('local', 1)
    await writer.close()
    const other = await Larder.open({ dir: tempDir(), redis, maintenance: false })
    const listing = (): string[] => (fs.readdirSync(dir, { recursive: true }) as string[]).sort()
    let reader: Larder | undefined
    try {
      await other.set('shared', 'v')
      const before = listing()
      reader = await Larder.open({ dir, readOnly: true, redis, maintenance: false, memory: true })
      assert.equal(await reader.get('shared'), 'v')
      assert.equal(await reader.get('shared'), 'v')
      assert.equal(await reader.get('local'), 1)
      await reader.close()
      reader = undefined
      assert.deepEqual(listing(), before)
    } finally {
      await reader?.close()
      await other.close()
    }
  })
})
