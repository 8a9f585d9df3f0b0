/**
 * A `readOnly: true` instance beside a shared Redis (a cache directory baked into an image, or a
 * snapshot restored, opened read-only): what other instances change, heard on the bus or read
 * from Redis, must be honoured by its reads without anything being created, written or removed
 * in its directory (README: readOnly). Each failed on the code before its fix:
 * - another instance's `clear()` heard on the bus moved every partition of the read-only
 *   directory to trash and started a new totals epoch; a heard delete wrote `meta/changes`,
 *   and its entry file was still served;
 * - tag invalidations it held (heard on the bus, or read from Redis at open) were capped at
 *   10,000, the oldest let go: after 10,000 later ones it served an entry invalidated long ago;
 * - another instance's removal by pattern heard on the bus was not applied to its files at all:
 *   it went on serving the matching entries removed everywhere else;
 * - its `entries()` and `usage()` (walks in the workers) counted neither the removals it heard
 *   nor the tag invalidations it held in memory: they listed entries its own `get` missed.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { entryBatches } from '../../src/facade/adapter-hooks.ts'
import { tempDir } from '../helpers.ts'
import { HeardRemovals, MAX_HEARD, MAX_HEARD_PATTERNS } from '../../src/tiers/heard-removals.ts'
import { withCaches } from './instances.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

let prefixes = 0
const nextPrefix = (): string => `ro-${process.pid}-${++prefixes}:`

/** Every path under `dir` with what would show a change to it (inode, size, mtime). */
function tree(dir: string): Map<string, string> {
  const seen = new Map<string, string>()
  const walk = (at: string): void => {
    for (const name of fs.readdirSync(at)) {
      const full = path.join(at, name)
      const st = fs.lstatSync(full)
      seen.set(path.relative(dir, full), `${st.ino}:${st.size}:${st.mtimeMs}`)
      if (st.isDirectory()) walk(full)
    }
  }
  walk(dir)
  return seen
}

/** The paths of `before` and `after` that differ (made, changed or gone). */
function changedPaths(before: Map<string, string>, after: Map<string, string>): string[] {
  const changed = new Set<string>()
  for (const [p, v] of before) if (after.get(p) !== v) changed.add(p)
  for (const p of after.keys()) if (!before.has(p)) changed.add(p)
  return [...changed].sort()
}

describe('a read-only instance hearing removals on the bus', { skip }, () => {
  test('a heard delete and a heard clear read as misses, and nothing in its directory changes', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const dir = tempDir()
    const filler = await Larder.open({ dir, redis, maintenance: false })
    for (let i = 0; i < 20; i++) await filler.set(`k${i}`, `value ${i}`)
    await filler.close()
    await withCaches(
      [
        { dir, readOnly: true, redis },
        { dir: tempDir(), redis, maintenance: false },
      ],
      async ([reader, other]) => {
        assert.equal(await reader.get('k0'), 'value 0')
        const before = tree(dir)
        await other.delete('k0')
        assert.ok(await eventually(async () => (await reader.get('k0')) === undefined), 'the heard delete is a miss')
        assert.equal(await reader.get('k1'), 'value 1')
        assert.deepEqual(changedPaths(before, tree(dir)), [], 'a heard delete changes nothing in the directory')
        await other.clear()
        assert.ok(await eventually(async () => (await reader.get('k1')) === undefined), 'the heard clear is a miss')
        for (let i = 0; i < 20; i++) assert.equal(await reader.get(`k${i}`), undefined)
        assert.equal(await reader.has('k2'), false)
        assert.equal(await reader.info('k3'), undefined)
        assert.equal(await reader.getStream('k4'), undefined)
        assert.deepEqual(changedPaths(before, tree(dir)), [], 'a heard clear changes nothing in the directory')
        // A writer sharing the directory (without Redis) writes after the clear: read as ever.
        const writer = await Larder.open({ dir, maintenance: false })
        try {
          await writer.set('k5', 'written since')
        } finally {
          await writer.close()
        }
        assert.equal(await reader.get('k5'), 'written since')
      },
    )
  })
})

describe('a read-only instance hearing a removal by pattern', { skip }, () => {
  test("another instance's prune by pattern reads as misses for the matching keys only, and nothing in its directory changes", async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const dir = tempDir()
    await withCaches(
      [
        { dir, readOnly: true, redis },
        { dir: tempDir(), redis, maintenance: false },
      ],
      async ([reader, other]) => {
        // Entries Redis never held (a writer sharing the directory without it), written after
        // the reader opened (older ones it asks Redis about): only the pattern message reaches them.
        const filler = await Larder.open({ dir, maintenance: false })
        try {
          for (let i = 0; i < 5; i++) await filler.set(`user:${i}`, `user ${i}`)
          await filler.set('order:1', 'order 1')
        } finally {
          await filler.close()
        }
        assert.equal(await reader.get('user:0'), 'user 0') // held by its memory tier too
        const before = tree(dir)
        await other.prune({ pattern: 'user:*' })
        assert.ok(await eventually(async () => (await reader.get('user:0')) === undefined), 'the heard removal is a miss')
        for (let i = 0; i < 5; i++) assert.equal(await reader.get(`user:${i}`), undefined)
        assert.equal(await reader.has('user:1'), false)
        assert.equal(await reader.info('user:2'), undefined)
        assert.equal(await reader.getStream('user:3'), undefined)
        assert.equal(await reader.get('order:1'), 'order 1', 'a key the pattern does not match is read as ever')
        assert.deepEqual(changedPaths(before, tree(dir)), [], 'a heard removal by pattern changes nothing in the directory')
        // A writer sharing the directory (without Redis) writes after the removal: read as ever.
        const writer = await Larder.open({ dir, maintenance: false })
        try {
          await writer.set('user:4', 'written since')
        } finally {
          await writer.close()
        }
        assert.equal(await reader.get('user:4'), 'written since')
      },
    )
  })
})

describe("a read-only instance's listing and usage", { skip }, () => {
  test('agree with its get after it hears a delete, a tag invalidation and a removal by pattern', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const dir = tempDir()
    const filler = await Larder.open({ dir, redis, maintenance: false })
    await filler.set('k', 'deleted elsewhere')
    await filler.set('tagged', 'invalidated elsewhere', { tags: ['t'] })
    await filler.set('keep', 'kept')
    await filler.close()
    await withCaches(
      [
        { dir, readOnly: true, redis },
        { dir: tempDir(), redis, maintenance: false },
      ],
      async ([reader, other]) => {
        // Entries Redis never held, written after the reader opened: only the pattern reaches them.
        const writer = await Larder.open({ dir, maintenance: false })
        try {
          await writer.set('p:1', 'pattern 1')
          await writer.set('p:2', 'pattern 2')
        } finally {
          await writer.close()
        }
        const all = ['k', 'keep', 'p:1', 'p:2', 'tagged']
        for (const key of all) assert.notEqual(await reader.get(key), undefined, key)
        const listed = async (): Promise<string[]> => (await reader.entries()).map((e) => e.key).sort()
        assert.deepEqual(await listed(), all)
        assert.equal((await reader.usage()).entries, 5)
        await other.delete('k')
        await other.invalidateTags(['t'])
        await other.prune({ pattern: 'p:*' })
        const missed = async (): Promise<boolean> => {
          for (const key of ['k', 'tagged', 'p:1', 'p:2']) if ((await reader.get(key)) !== undefined) return false
          return true
        }
        assert.ok(await eventually(missed, 10_000), 'each change heard is a miss')
        assert.equal(await reader.get('keep'), 'kept')
        assert.deepEqual(await listed(), ['keep'], 'entries() lists only what get finds')
        // the listing a partition at a time (Keyv's iterator, ls --limit) too
        const batched: string[] = []
        for await (const batch of reader[entryBatches]()) batched.push(...batch.map((e) => e.key))
        assert.deepEqual(batched, ['keep'], 'the bounded listing lists only what get finds')
        assert.deepEqual(
          (await reader.entries({ pattern: 'p:*' })).map((e) => e.key),
          [],
        )
        const usage = await reader.usage()
        assert.equal(usage.entries, 1, 'usage() counts only what get finds')
        assert.equal(usage.expired, 4, 'and the rest as not live')
      },
    )
  })
})

describe('a read-only instance holding tag invalidations', { skip }, () => {
  test('one heard on the bus still holds after 10,001 later ones', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const dir = tempDir()
    const filler = await Larder.open({ dir, redis, maintenance: false })
    await filler.set('page', 'price 10 EUR', { tags: ['product:1'] })
    await filler.set('last', 'tagged last', { tags: ['product:x10000'] })
    await filler.close()
    await withCaches(
      [
        { dir, readOnly: true, redis },
        { dir: false, redis },
      ],
      async ([reader, other]) => {
        assert.equal(await reader.get('page'), 'price 10 EUR')
        await other.invalidateTags(['product:1'])
        assert.ok(await eventually(async () => (await reader.get('page')) === undefined, 10_000))
        for (let i = 0; i < 10_001; i += 1000)
          await other.invalidateTags(Array.from({ length: Math.min(1000, 10_001 - i) }, (_, j) => `product:x${i + j}`))
        // The last invalidation heard: every one before it was (the bus keeps their order).
        assert.ok(await eventually(async () => (await reader.get('last')) === undefined, 20_000))
        assert.equal(await reader.get('page'), undefined, 'an entry invalidated before is still a miss')
        // An entry written since (a writer sharing the directory) is read as ever.
        const writer = await Larder.open({ dir, maintenance: false })
        try {
          await writer.set('page', 'price 12 EUR', { tags: ['product:1'] })
        } finally {
          await writer.close()
        }
        assert.equal(await reader.get('page'), 'price 12 EUR')
      },
    )
  })

  test('those Redis holds at open, past 10,000, all hold', async () => {
    const prefix = nextPrefix()
    const dir = tempDir()
    const filler = await Larder.open({ dir, redis: { url: server.url, prefix }, maintenance: false })
    const pages = 50
    for (let i = 0; i < pages; i++) await filler.set(`page${i}`, `page ${i}`, { tags: [`product:${i}`] })
    await filler.close()
    // The invalidations of every page, then 20,000 later ones (each at its own time), as Redis
    // holds them for an instance that opens now.
    const base = Date.now() + 1
    const stamps: string[] = []
    for (let i = 0; i < pages + 20_000; i++) stamps.push(i < pages ? `product:${i}` : `other:${i}`, (base + i / 1000).toFixed(3))
    const client = new Redis(server.url)
    try {
      for (let i = 0; i < stamps.length; i += 2000) await client.hset(`${prefix}default:\0tags`, ...stamps.slice(i, i + 2000))
    } finally {
      client.disconnect()
    }
    await withCaches([{ dir, readOnly: true, redis: { url: server.url, prefix } }], async ([reader]) => {
      const served: string[] = []
      for (let i = 0; i < pages; i++) if ((await reader.get(`page${i}`)) !== undefined) served.push(`page${i}`)
      assert.deepEqual(served, [], 'every page invalidated in Redis is a miss')
    })
  })
})

describe('the removals a read-only file tier heard', () => {
  test('past the bound, the oldest let go raises the floor: what it hid stays hidden, what came since is read', () => {
    const heard = new HeardRemovals()
    assert.equal(heard.any, false)
    heard.removed('first', 100)
    for (let i = 0; i < MAX_HEARD; i++) heard.removed(`k${i}`, 200 + i)
    assert.equal(heard.hides('first', 99), true, 'an entry the first removal hid')
    assert.equal(heard.hides('other', 99), true, 'as old as that: a miss (the floor)')
    assert.equal(heard.hides('first', 100), false, 'created at the removal: kept, as dropIfOlder keeps it')
    assert.equal(heard.hides('k5', 204), true)
    assert.equal(heard.hides('k5', 205), false)
    heard.cleared(1000)
    assert.equal(heard.hides('other', 999), true)
    assert.equal(heard.hides('k9999', 10_198), true, 'a removal after the clear still counts')
    assert.equal(heard.hides('other', 1000), false)
  })

  test('removals by pattern: past the bound, the oldest let go raises the floor', () => {
    const heard = new HeardRemovals()
    heard.removedMatching('user:*', 100)
    assert.equal(heard.any, true)
    assert.equal(heard.hides('user:1', 99), true, 'a matching key older than the removal')
    assert.equal(heard.hides('user:1', 100), false, 'created at the removal: kept')
    assert.equal(heard.hides('order:1', 99), false, 'a key the pattern does not match')
    for (let i = 0; i < MAX_HEARD_PATTERNS; i++) heard.removedMatching(`p${i}:*`, 200 + i)
    assert.equal(heard.hides('user:1', 99), true, 'what the first hid stays hidden')
    assert.equal(heard.hides('order:1', 99), true, 'as old as that: a miss (the floor)')
    assert.equal(heard.hides('order:1', 100), false)
    assert.equal(heard.hides('p3:x', 202), true)
    assert.equal(heard.hides('p3:x', 203), false)
    heard.cleared(1000)
    assert.equal(heard.hides('p255:x', 999), true)
    assert.equal(heard.hides('p255:x', 1000), false)
  })
})
