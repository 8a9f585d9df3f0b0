/**
 * The tag stamps Redis holds (one per tag ever invalidated in the fleet, never removed) as a
 * cache with a directory opens against them. Before: every stamp the directory lacked was
 * written into tags/ as three inodes, whatever its age, so a new host joining a fleet with
 * 200,000 stamps wrote 600,000 files (1.6 GB) and took a minute to open. Now a stamp older than
 * every entry of the directory (store/entries-since.ts) is held in memory, not written; one
 * that can matter to an entry there is written, so a process using the directory alone
 * honours it. And a cache without a directory holds a bounded number of stamps.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { loadHasher } from '../../src/format/checksum.ts'
import { Layout } from '../../src/store/layout.ts'
import { MAX_MEMORY_STAMPS, MemoryTagClock } from '../../src/store/memory-tag-clock.ts'
import { TagClock } from '../../src/store/tag-clock.ts'
import { tempDir } from '../helpers.ts'
import { Child, startChild } from '../children/harness.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

const children: Child[] = []
after(() => Promise.all(children.map((child) => child.shutdown())))

let prefixes = 0
const nextPrefix = (): string => `sao-${process.pid}-${++prefixes}:`
const HOUR = 3_600_000

/** Runs `work` with the process's clock `by` ms behind: the entries it makes are that old. */
async function backdated<T>(by: number, work: () => Promise<T>): Promise<T> {
  const now = Date.now
  Date.now = () => now() - by
  try {
    return await work()
  } finally {
    Date.now = now
  }
}

/** Raises the stamps of `stamps` (tag → time) in the namespace's hash, as instances did. */
async function stampInRedis(prefix: string, stamps: [string, number][]): Promise<void> {
  const client = new Redis(server.url)
  try {
    const flat = stamps.flatMap(([tag, at]) => [tag, String(at)])
    for (let i = 0; i < flat.length; i += 2000) await client.hset(`${prefix}default:\0tags`, ...flat.slice(i, i + 2000))
  } finally {
    client.disconnect()
  }
}

/** The tags of the namespace that have a stamp file in the directory. */
function stampFiles(dir: string): string[] {
  const tags = path.join(dir, 'v1', 'default', 'tags')
  if (!fs.existsSync(tags)) return []
  return fs.readdirSync(tags).filter((name) => /^[0-9a-f]{16}$/.test(name))
}

describe('tag stamps from Redis at open', { skip }, () => {
  test('a new directory writes none older than itself, and its reads still honour them', async () => {
    const prefix = nextPrefix()
    // Two entries made two hours ago by another host (in Redis only).
    await backdated(2 * HOUR, async () => {
      const other = await Larder.open({ dir: false, redis: { url: server.url, prefix } })
      try {
        await other.set('old-page', 'price 12 EUR', { tags: ['product:1'] })
        await other.set('old-note', 'kept', { tags: ['product:untouched'] })
      } finally {
        await other.close()
      }
    })
    // An hour ago product:1 was invalidated, among 3,000 others; ten seconds ago, recent:1.
    const hourAgo = Date.now() - HOUR
    const stamps: [string, number][] = [['product:1', hourAgo]]
    for (let i = 0; i < 3000; i++) stamps.push([`user:${i}`, hourAgo + i])
    stamps.push(['recent:1', Date.now() - 10_000])
    await stampInRedis(prefix, stamps)

    const dir = tempDir()
    const cache = await Larder.open({ dir, redis: { url: server.url, prefix }, maintenance: false })
    try {
      assert.equal(await cache.get('old-page'), undefined, 'invalidated an hour after it was made: a miss')
      assert.equal(await cache.get('old-note'), 'kept', 'its tag was never invalidated: a hit')
      assert.equal(await cache.get('old-page'), undefined, 'and still a miss (not promoted)')
    } finally {
      await cache.close()
    }
    // Only recent:1 (newer than the directory's record) went to disk; the 3,001 older stayed out.
    assert.ok(stampFiles(dir).length <= 1, `stamp files written: ${stampFiles(dir).length}`)
  })

  test('a directory older than a stamp writes it, and a process without Redis honours it', async () => {
    const prefix = nextPrefix()
    const dir = tempDir()
    // The directory and its entry are two hours old.
    await backdated(2 * HOUR, async () => {
      const first = await Larder.open({ dir, maintenance: false })
      try {
        await first.set('page', 'price 12 EUR', { tags: ['product:1'] })
      } finally {
        await first.close()
      }
    })
    await stampInRedis(prefix, [['product:1', Date.now() - HOUR]])
    const joined = await Larder.open({ dir, redis: { url: server.url, prefix }, maintenance: false })
    await joined.close()
    assert.equal(stampFiles(dir).length, 1, 'the stamp that matters to an entry here is on disk')
    const alone = await Larder.open({ dir, maintenance: false })
    try {
      assert.equal(await alone.get('page'), undefined, 'a process without Redis does not serve it')
    } finally {
      await alone.close()
    }
  })

  test('a directory with entries and no record (an older larder made it) writes every stamp, as before', async () => {
    const prefix = nextPrefix()
    const dir = tempDir()
    const first = await Larder.open({ dir, maintenance: false })
    await first.set('page', 'v')
    await first.close()
    fs.rmSync(path.join(dir, 'v1', 'default', 'meta', 'since'))
    await stampInRedis(prefix, [['product:1', Date.now() - 2 * HOUR]])
    const joined = await Larder.open({ dir, redis: { url: server.url, prefix }, maintenance: false })
    await joined.close()
    assert.equal(stampFiles(dir).length, 1)
  })
})

describe('merging the stamps read at open', { skip }, () => {
  /**
   * Each stamp newer than the directory's entries is written there (three inodes, synchronously).
   * Before: the merge gave the event loop a turn only every 2,000 stamps, so 10,000 stamps each at
   * its own time held it for 3–8 s (timers, sockets and every other request of the host waiting);
   * now it yields every ~10 ms of work. The bound is generous: a loaded 2-core machine.
   */
  test('10,000 stamps at distinct times, newer than the entries, never hold the event loop for a second', async () => {
    const prefix = nextPrefix()
    const dir = tempDir()
    const first = await Larder.open({ dir, redis: { url: server.url, prefix }, maintenance: false })
    try {
      await first.set('first', 'v', { tags: ['t0'] })
      await first.set('last', 'v', { tags: ['t9999'] })
      await first.set('kept', 'v', { tags: ['never'] })
    } finally {
      await first.close()
    }
    const base = Date.now() + 1
    await stampInRedis(
      prefix,
      Array.from({ length: 10_000 }, (_, i): [string, number] => [`t${i}`, base + i]),
    )
    let longest = 0
    let last = performance.now()
    const probe = setInterval(() => {
      const now = performance.now()
      longest = Math.max(longest, now - last)
      last = now
    }, 5)
    let cache: Larder
    try {
      cache = await Larder.open({ dir, redis: { url: server.url, prefix }, maintenance: false })
    } finally {
      clearInterval(probe)
    }
    try {
      assert.ok(longest < 1000, `the event loop was held ${Math.round(longest)} ms at once`)
      assert.equal(await cache.get('first'), undefined, 'invalidated by the oldest stamp')
      assert.equal(await cache.get('last'), undefined, 'invalidated by the newest stamp')
      assert.equal(await cache.get('kept'), 'v')
    } finally {
      await cache.close()
    }
    assert.equal(stampFiles(dir).length, 10_000, 'every stamp newer than the entries is on disk')
  })
})

describe('tag stamps and clocks that disagree', { skip }, () => {
  const since = (dir: string): number => Number(fs.readFileSync(path.join(dir, 'v1', 'default', 'meta', 'since'), 'utf8'))

  /** Another process on the directory whose clock is 10 minutes ahead of this one's. */
  async function aheadPeer(): Promise<Child> {
    const child = await startChild('redis-peer.ts', [], true, [
      '--import',
      `data:text/javascript,const real=Date.now;Date.now=()=>real()+${10 * 60_000}`,
    ])
    children.push(child)
    return child
  }

  test('an invalidation heard on the bus is written, whatever the record says', async () => {
    const prefix = nextPrefix()
    const dir = tempDir()
    const ahead = await aheadPeer()
    await ahead.call('open', { options: { dir, redis: { url: server.url, prefix }, maintenance: false } })
    assert.ok(since(dir) > Date.now(), 'its record is in the future here')
    const other = await Larder.open({ dir: false, redis: { url: server.url, prefix } })
    const alone = await Larder.open({ dir, maintenance: false }) // no Redis, a right clock
    try {
      await alone.set('k', 'before', { tags: ['t'] })
      await other.invalidateTags(['t'])
      assert.ok(await eventually(() => stampFiles(dir).length === 1, 10_000), 'the process with Redis wrote what it heard')
      assert.equal(await alone.get('k'), undefined, 'a process without Redis honours what the bus brought')
    } finally {
      await alone.close()
      await other.close()
      await ahead.call('close')
    }
  })

  test('a record made by a clock that was ahead is lowered by the next opener, so later reads of Redis write what matters', async () => {
    const prefix = nextPrefix()
    const dir = tempDir()
    // Opened and written while the host's clock was 10 minutes ahead; then its clock stepped back.
    const first = await aheadPeer()
    await first.call('open', { options: { dir, redis: { url: server.url, prefix }, maintenance: false } })
    await first.call('set', { key: 'x', value: 'from the first open' })
    await first.call('close')
    const alone = await Larder.open({ dir, maintenance: false }) // a right clock; no Redis
    assert.ok(since(dir) <= Date.now(), 'lowered to this clock')
    await alone.set('k', 'before', { tags: ['t'] })
    await alone.close()
    const other = await Larder.open({ dir: false, redis: { url: server.url, prefix } })
    await other.invalidateTags(['t']) // while nobody with Redis has the directory open
    await other.close()
    // Opened by a process whose clock is past the first record.
    const later = await aheadPeer()
    await later.call('open', { options: { dir, redis: { url: server.url, prefix }, maintenance: false } })
    await later.call('close')
    assert.equal(stampFiles(dir).length, 1, 'the stamp that matters to k is on disk')
    const reader = await Larder.open({ dir, maintenance: false })
    try {
      assert.equal(await reader.get('k'), undefined)
    } finally {
      await reader.close()
    }
  })

  test('a damaged, planted or future record is replaced or ignored, never trusted above this clock', async () => {
    for (const text of ['9007199254740991', 'not a time', '-5']) {
      const dir = tempDir()
      await (await Larder.open({ dir, maintenance: false })).close()
      fs.writeFileSync(path.join(dir, 'v1', 'default', 'meta', 'since'), text)
      await (await Larder.open({ dir, maintenance: false })).close()
      assert.ok(since(dir) <= Date.now(), `${text}: ${since(dir)}`)
    }
  })
})

describe('stamps held because they are older than every entry of the directory', () => {
  test('judge the reads, are never written, and are not handed to the walks in the workers', async () => {
    await loadHasher()
    const dir = tempDir()
    const clock = new TagClock(new Layout(dir, ''))
    clock.entriesSince = 1000
    clock.holdUnwritten(['old'], 500)
    assert.equal(clock.isStale(['old'], 500), true, 'an entry copied from Redis, older than the stamp: stale')
    assert.equal(clock.isStale(['old'], 501), false)
    clock.writeUnwritten()
    assert.deepEqual(stampFiles(dir), [], 'not written when the disk takes stamps again')
    assert.equal(clock.heldStamps(), undefined, 'no file of the directory is older than it')
    clock.holdUnwritten(['new'], 1500) // a stamp the disk refused
    assert.deepEqual(clock.heldStamps(), { stamps: [['new', 1500]], floor: 0 })
    clock.close()
  })
})

describe('a cache without a directory holds a bounded number of stamps', () => {
  test('past the bound the oldest go, and the floor they leave keeps what they hid stale', () => {
    const clock = new MemoryTagClock()
    clock.invalidate(['users'], 100)
    for (let i = 0; i < MAX_MEMORY_STAMPS; i++) clock.invalidate([`user:${i}`], 200 + i)
    assert.equal(clock.heldCount, MAX_MEMORY_STAMPS)
    assert.equal(clock.isStale(['users'], 100), true, 'what the first stamp made stale stays stale')
    assert.equal(clock.isStale(['orders'], 100), true, 'as old as the floor: stale')
    assert.equal(clock.isStale(['orders'], 101), false, 'newer than the floor, never invalidated: fresh')
    assert.equal(clock.isStale(['user:5'], 205), true)
    assert.equal(clock.isStale(['user:5'], 206), false)
    assert.equal(clock.isStale([], 0), false, 'an untagged entry is never stale')
    clock.invalidate(['user:0'], 50)
    assert.equal(clock.heldCount, MAX_MEMORY_STAMPS, 'a stamp below the floor adds nothing')
  })
})
