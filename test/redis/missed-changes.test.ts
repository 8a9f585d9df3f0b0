/**
 * Changes Redis could not take when they were made, and changes that other instances' queued
 * writes could undo (found by an adversarial review, each reproduced against a real
 * redis-server before it was fixed):
 * - a delete or an overwrite made while the Redis breaker is open reaches Redis when it is back
 *   (a tombstone or the write, queued), so neither the old value nor a divergence comes back;
 * - a tag invalidation made then raises its stamp in Redis when it is back, so an instance that
 *   starts later honours it;
 * - a clear, or a prune by pattern, is not undone by another instance's write-back queue, and a
 *   prune by pattern reaches entries only local to another instance;
 * - getOrSet's lock with write-back calls the loader once: the value is in Redis before the
 *   lock is released;
 * - flush() does not wait for as long as Redis is away;
 * - after its bus reconnects, a write-back instance still serves its own queued write.
 * Several instances in one process, each with its own directory and connections: everything
 * between them goes through Redis. No wall-clock margins: each assertion waits for a state.
 */
import { after, afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Redis } from 'ioredis'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { startChild } from '../children/harness.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))

let n = 0
const fresh = (): string => `m${process.pid}-${n++}:`
/** Fast to give up and to try again. */
const FAST = { commandTimeout: '100ms', breaker: { resetTimeout: '200ms', volumeThreshold: 2 } }
const opened: Larder[] = []
async function open(prefix: string, more: Partial<LarderOptions> = {}): Promise<Larder> {
  const cache = await Larder.open({
    dir: tempDir(),
    memory: true,
    maintenance: false,
    redis: { url: server.url, prefix, ...FAST },
    ...more,
  })
  opened.push(cache)
  return cache
}

const admin = skip === false ? new Redis(server.url) : (undefined as unknown as Redis)
after(() => admin?.disconnect())

type Figures = { tiers: { redis: { queued: number; breaker: { state: string } } } }
const redisOf = async (cache: Larder): Promise<Figures['tiers']['redis']> => ((await cache.stats()) as unknown as Figures).tiers.redis

/**
 * Redis stops answering: its process is stopped (SIGSTOP), so every command of every client,
 * and every new connection, waits, until `redisBack()` lets it go on (SIGCONT). The outage lasts
 * as long as a test needs it: a CLIENT PAUSE lasts a time fixed in advance (a pause of ALL holds
 * CLIENT UNPAUSE too), which every test then waits out, and which a slow machine can outlast.
 */
function redisAway(): void {
  process.kill(server.proc!.pid!, 'SIGSTOP')
}
function redisBack(): void {
  process.kill(server.proc!.pid!, 'SIGCONT')
}

/** Stops Redis, and waits until each cache's breaker is open. */
async function breakerOpenOn(...caches: Larder[]): Promise<void> {
  redisAway()
  for (const cache of caches) {
    assert.ok(
      await eventually(async () => {
        await cache.get('probe').catch(() => {}) // failOpen: false rejects
        return (await redisOf(cache)).breaker.state === 'open'
      }, 20_000),
      'the breaker opened',
    )
  }
}

/** Lets Redis go on, and waits until `cache`'s breaker has closed again. */
async function recovered(cache: Larder): Promise<void> {
  redisBack()
  assert.ok(
    await eventually(async () => {
      await cache.get('probe')
      return (await redisOf(cache)).breaker.state === 'closed'
    }, 20_000),
    'the breaker closed again',
  )
}

/** An instance on `dir` that deleted `gone` while Redis was away: the delete is owed to Redis. */
async function owingADelete(prefix: string, dir: string): Promise<Larder> {
  const a = await open(prefix, { dir })
  await a.set('gone', 'v1')
  await breakerOpenOn(a)
  await a.delete('gone')
  return a
}

/** The records of what Redis misses in `owedDir` (a record's temp file, renamed once written,
 *  left out). */
function owedRecords(owedDir: string): { tombstones: unknown[]; stamps: unknown[] }[] {
  if (!fs.existsSync(owedDir)) return []
  return fs.readdirSync(owedDir).flatMap((name) => {
    if (!name.endsWith('.json')) return []
    try {
      return [JSON.parse(fs.readFileSync(path.join(owedDir, name), 'utf8')) as { tombstones: unknown[]; stamps: unknown[] }]
    } catch {
      return [] // replaced by a newer record meanwhile
    }
  })
}

/** Another process with a cache on `dir` (to be killed: SIGKILL). */
async function peerOn(dir: string, prefix: string): Promise<Awaited<ReturnType<typeof startChild>>> {
  const child = await startChild('redis-peer.ts')
  await child.call('open', { options: { dir, memory: true, maintenance: false, redis: { url: server.url, prefix, ...FAST } } })
  return child
}

/** `b` reads `value` for `key` (its bus and connections may still be coming up). */
async function reads(b: Larder, key: string, value: unknown): Promise<boolean> {
  return eventually(async () => (await b.get(key)) === value, 10_000)
}

describe('changes Redis missed, and queued writes that would undo a change', { skip }, () => {
  afterEach(async () => {
    redisBack() // a test that failed half-way, or did not need Redis back, leaves it stopped
    await Promise.all(opened.splice(0).map((cache) => cache.close().catch(() => {})))
    await admin.ping()
    assert.deepEqual(unhandled, [], 'no unhandled rejection')
  })

  test('a delete and an overwrite made while the breaker was open reach Redis when it is back: no instance serves the old values', async () => {
    const prefix = fresh()
    const a = await open(prefix)
    const b = await open(prefix)
    await a.set('gone', 'v1')
    await a.set('over', 'v1')
    assert.ok(await reads(b, 'gone', 'v1'))
    assert.ok(await reads(b, 'over', 'v1'))
    await breakerOpenOn(a)
    assert.equal(await a.delete('gone'), true, 'the local copy was there')
    await a.set('over', 'v2')
    assert.equal((await redisOf(a)).queued, 2, 'both wait for Redis')
    await recovered(a)
    assert.ok(await eventually(async () => (await redisOf(a)).queued === 0), 'sent once Redis is back')
    assert.equal(await admin.exists(`${prefix}default:gone`), 1, 'a tombstone, not the old value')
    assert.ok(await reads(b, 'gone', undefined), 'B no longer serves the deleted value')
    assert.ok(await reads(b, 'over', 'v2'), 'B serves the overwrite')
    const c = await open(prefix)
    assert.equal(await c.get('gone'), undefined, 'nor does an instance opened after')
    assert.equal(await c.get('over'), 'v2')
    assert.equal(await a.get('gone'), undefined)
  })

  test('deletes past writeBack.maxQueue made while the breaker was open: no deleted value comes back (a clear of Redis up to the tombstone let go is owed)', async () => {
    const prefix = fresh()
    const a = await open(prefix, { writeBack: { maxQueue: 3 } })
    const b = await open(prefix)
    const keys = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6']
    for (const key of keys) await a.set(key, 'old')
    await b.set('elsewhere', 'kept?') // written before the deletes: the owed clear may take it (a miss, never a wrong value)
    for (const key of keys) assert.ok(await reads(b, key, 'old'))
    await breakerOpenOn(a)
    for (const key of keys) await a.delete(key)
    assert.equal((await redisOf(a)).queued, 3, 'the queue holds its bound')
    await recovered(a)
    assert.ok(await eventually(async () => (await redisOf(a)).queued === 0), 'sent once Redis is back')
    for (const key of keys) assert.ok(await reads(b, key, undefined), `B no longer serves ${key}`)
    const c = await open(prefix)
    for (const key of keys) assert.equal(await c.get(key), undefined, `nor does an instance opened after (${key})`)
    await a.set('k1', 'new')
    assert.ok(await reads(c, 'k1', 'new'), 'a write made after is served')
  })

  test('deletes and tag invalidations Redis missed are not lost when their instance closes before Redis is back: the next instance on its directory sends them', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const a = await open(prefix, { dir })
    const b = await open(prefix)
    await a.set('gone', 'v1')
    await a.set('tagged', 'v1', { tags: ['T'] })
    assert.ok(await reads(b, 'gone', 'v1'))
    assert.ok(await reads(b, 'tagged', 'v1'))
    await breakerOpenOn(a)
    await a.delete('gone')
    await a.invalidateTags(['T'])
    await a.close()
    opened.splice(opened.indexOf(a), 1)
    const owedDir = path.join(dir, 'v1', 'default', 'meta', 'redis-owed')
    assert.equal(fs.readdirSync(owedDir).length, 1, 'what Redis missed is left in the directory')
    // The next instance opens while Redis is still away: the file stays until what it owes is
    // sent (a kill before then leaves it for the one after).
    const again = await open(prefix, { dir })
    assert.equal(fs.readdirSync(owedDir).length, 1, 'kept while Redis is away')
    redisBack()
    assert.ok(await reads(b, 'gone', undefined), 'sent by the next instance on the directory: B no longer serves the deleted value')
    assert.ok(await reads(b, 'tagged', undefined), 'nor the invalidated one')
    const c = await open(prefix)
    assert.equal(await c.get('gone'), undefined, 'nor does an instance opened after')
    assert.equal(await c.get('tagged'), undefined)
    assert.equal(await again.get('gone'), undefined)
    assert.ok(await eventually(() => fs.readdirSync(owedDir).length === 0), 'removed once sent')
  })

  for (const writeStrategy of ['write-through', 'cache-aside'] as const) {
    test(`${writeStrategy}: sets still waiting for Redis when their instance closes are counted as dropped (their values are lost: the next open's outage rule removes their files), and the values they replaced do not come back`, async () => {
      const prefix = fresh()
      const dir = tempDir()
      const a = await open(prefix, { dir, writeStrategy })
      await a.set('k', 'v1')
      await breakerOpenOn(a)
      await a.set('k', 'v2')
      await a.set('j', 'v2')
      await a.delete('gone') // a delete is left for the next instance, not dropped
      assert.equal((await redisOf(a)).queued, 3)
      await a.close()
      opened.splice(opened.indexOf(a), 1)
      redisBack()
      const again = await open(prefix, { dir })
      // Before: 'v1' for k, the value its overwrite replaced, on every host.
      assert.deepEqual([await again.get('k'), await again.get('j')], [undefined, undefined], 'neither set reached Redis, nor came v1 back')
      assert.equal((await again.activity()).dropped, 2, 'the two sets the closed instance let go were counted')
    })
  }

  test('a delete and a tag invalidation Redis missed are not lost when their process is killed (SIGKILL) before Redis is back: the next instance on its directory sends them', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const child = await peerOn(dir, prefix)
    try {
      await child.call('set', { key: 'gone', value: 'v1' })
      await child.call('set', { key: 'tagged', value: 'v1', options: { tags: ['T'] } })
      const b = await open(prefix)
      assert.ok(await reads(b, 'gone', 'v1'))
      assert.ok(await reads(b, 'tagged', 'v1'))
      redisAway()
      const owedDir = path.join(dir, 'v1', 'default', 'meta', 'redis-owed')
      // Before: recorded only by close(), so a crash lost them, and the deleted value came back.
      await child.call('invalidateTags', { tags: ['T'] }) // times out: its stamp waits for Redis
      assert.ok(
        await eventually(() => owedRecords(owedDir).some((owed) => owed.stamps.length === 1), 5_000),
        'the stamp Redis missed is recorded in the directory while the process runs',
      )
      await child.call('delete', { key: 'gone' }) // likewise its tombstone
      assert.ok(
        await eventually(() => owedRecords(owedDir).some((owed) => owed.tombstones.length === 1 && owed.stamps.length === 1), 5_000),
        'and the delete',
      )
      await child.kill()
      redisBack()
      const again = await open(prefix, { dir })
      assert.ok(await reads(b, 'gone', undefined), 'sent by the next instance on the directory: B no longer serves the deleted value')
      assert.ok(await reads(b, 'tagged', undefined), 'nor the invalidated one')
      assert.equal(await again.get('gone'), undefined)
      assert.ok(await eventually(() => owedRecords(owedDir).length === 0), 'removed once sent')
    } finally {
      await child.kill()
    }
  })

  test('an overwrite Redis missed is not undone when its process is killed (SIGKILL) before Redis is back: the value it replaced is served by no instance', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const [child, b] = [await peerOn(dir, prefix), await open(prefix)]
    try {
      await child.call('set', { key: 'k', value: 'v1' })
      assert.ok(await reads(b, 'k', 'v1'))
      redisAway()
      await child.call('set', { key: 'k', value: 'v2' }) // times out: waits for Redis
      const owedDir = path.join(dir, 'v1', 'default', 'meta', 'redis-owed')
      // Before: a set Redis missed was recorded nowhere (its value, v2, only in the directory,
      // which the next open's outage rule removes, Redis holding v1): killed, the overwrite was
      // lost, and every host served v1 again, the restarted one too.
      assert.ok(
        await eventually(() => owedRecords(owedDir).some((owed) => owed.tombstones.length === 1), 5_000),
        'the overwrite is recorded in the directory while the process runs, as a removal of what it replaced',
      )
      await child.kill()
      redisBack()
      const again = await open(prefix, { dir })
      assert.ok(await reads(b, 'k', undefined), 'B no longer serves the value the overwrite replaced')
      assert.equal(await again.get('k'), undefined, 'nor does the restarted instance')
      assert.equal(await (await open(prefix)).get('k'), undefined, 'nor one opened after')
      assert.ok(await eventually(() => owedRecords(owedDir).length === 0), 'removed once sent')
      await b.set('k', 'v3')
      assert.ok(await reads(again, 'k', 'v3'), 'a write made after is served')
    } finally {
      await child.kill()
    }
  })

  test('owed changes left by a cache on one client keyPrefix are sent into that keyspace only, not by a cache of another keyPrefix on the same directory', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const clients: Redis[] = []
    const onKeyPrefix = async (keyPrefix: string, more: Partial<LarderOptions> = {}): Promise<Larder> => {
      const client = new Redis(server.port, '127.0.0.1', { keyPrefix, enableOfflineQueue: false })
      clients.push(client)
      return open(prefix, { redis: { client, prefix, ...FAST }, ...more })
    }
    try {
      const a = await onKeyPrefix('pa:', { dir })
      const b = await onKeyPrefix('pb:')
      await a.set('gone', 'A')
      await b.set('gone', 'B')
      await breakerOpenOn(a)
      await a.delete('gone') // owed to A's keyspace, left in the directory at close
      await a.close()
      opened.splice(opened.indexOf(a), 1)
      // Both open while Redis is away, so each takes what it will take before either sends it.
      const other = await onKeyPrefix('pb:', { dir })
      await onKeyPrefix('pa:', { dir }) // takes it, and sends it into A's keyspace
      redisBack()
      const owedDir = path.join(dir, 'v1', 'default', 'meta', 'redis-owed')
      // Removed once sent (by each that took it); `queued` leaves out a batch on its way.
      assert.ok(
        await eventually(async () => owedRecords(owedDir).length === 0 && (await redisOf(other)).queued === 0, 20_000),
        'what was taken was sent',
      )
      const later = await onKeyPrefix('pa:')
      assert.ok(await reads(later, 'gone', undefined), "the delete reached A's keyspace")
      // Before: the other keyPrefix's cache took the record (it named the prefix alone) and
      // sent the tombstone into its own keyspace, deleting B's value there.
      assert.equal(await b.get('gone'), 'B', "and nothing of B's keyspace")
      assert.equal(await admin.exists(`pb:${prefix}default:gone`), 1)
    } finally {
      await Promise.all(opened.splice(0).map((cache) => cache.close().catch(() => {})))
      for (const client of clients) client.disconnect()
    }
  })

  test('owed changes taken at open are not removed through a link put in place of their directory while Redis was away', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const a = await owingADelete(prefix, dir)
    await a.close()
    opened.splice(opened.indexOf(a), 1)
    const owedDir = path.join(dir, 'v1', 'default', 'meta', 'redis-owed')
    const [name] = fs.readdirSync(owedDir)
    const again = await open(prefix, { dir }) // takes the file; sends it once Redis is back
    // Meanwhile the directory becomes a link to one outside the cache holding a file of that name.
    const outside = tempDir('larder-outside')
    fs.writeFileSync(path.join(outside, name!), 'not ours')
    fs.renameSync(owedDir, path.join(dir, 'v1', 'default', 'meta', 'moved'))
    fs.symlinkSync(outside, owedDir)
    redisBack()
    const b = await open(prefix)
    assert.ok(await reads(b, 'gone', undefined), 'sent once Redis is back')
    await again.close()
    opened.splice(opened.indexOf(again), 1)
    assert.ok(fs.existsSync(path.join(outside, name!)), 'the file outside the cache was removed')
    assert.equal(fs.readFileSync(path.join(outside, name!), 'utf8'), 'not ours')
  })

  test('what Redis misses at close is not left in a cache directory removed meanwhile (the write would make it again)', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const a = await owingADelete(prefix, dir)
    fs.rmSync(dir, { recursive: true, force: true })
    await a.close()
    opened.splice(opened.indexOf(a), 1)
    assert.equal(fs.existsSync(dir), false, 'the removed directory stays removed')
  })

  test('tags invalidated while the breaker was open are stamped in Redis when it is back: an instance opened later honours them', async () => {
    const prefix = fresh()
    const a = await open(prefix)
    await a.set('tagged', 'old', { tags: ['users'] })
    await breakerOpenOn(a)
    await a.invalidateTags(['users'])
    assert.equal(await a.get('tagged'), undefined)
    await recovered(a)
    assert.ok(await eventually(async () => (await admin.hget(`${prefix}default:\0tags`, 'users')) !== null), 'the stamp reached Redis')
    const c = await open(prefix)
    assert.equal(await c.get('tagged'), undefined, 'the entry Redis still holds is invalidated for a later instance')
  })

  test('a clear made while the breaker was open runs in Redis when it is back, keeping what was written since', async () => {
    const prefix = fresh()
    const a = await open(prefix)
    const b = await open(prefix)
    await a.set('old', 'v1')
    assert.ok(await reads(b, 'old', 'v1'))
    await breakerOpenOn(a)
    await a.clear()
    assert.equal(await a.get('old'), undefined)
    // B's connection waits too: its write times out, is queued, and lands once B's
    // connection is back (a connection whose command timed out is opened again: connection.ts).
    await b.set('newer', 'kept')
    await recovered(a)
    assert.ok(await eventually(async () => (await admin.exists(`${prefix}default:old`)) === 0), 'the clear reached Redis')
    assert.ok(await reads(b, 'old', undefined), 'B no longer serves what was cleared')
    assert.equal(await (await open(prefix)).get('old'), undefined, 'nor does an instance opened after')
    // A's clear, heard, removed B's local files (a clear of the files removes them all); B's
    // write, still queued, reaches Redis once B's breaker closes.
    assert.ok(await reads(b, 'newer', 'kept'), 'a write made after the clear stays')
  })

  test("a clear is not undone by another instance's write-back queue", async () => {
    const prefix = fresh()
    const a = await open(prefix)
    const b = await open(prefix, { dir: false, writeStrategy: 'write-back', writeBack: { maxDelay: '10s' } })
    assert.ok(
      await eventually(async () => {
        await a.set('probe-bus', 'x')
        return (await b.get('probe-bus')) === 'x'
      }),
      'the bus works',
    )
    await b.set('k', 'old')
    assert.equal((await redisOf(b)).queued, 1)
    await a.clear()
    assert.ok(await eventually(async () => (await redisOf(b)).queued === 0), "B forgets its queued write on hearing A's clear")
    await b.flush()
    assert.equal(await admin.exists(`${prefix}default:k`), 0, 'nothing reached Redis after the clear')
    assert.equal(await a.get('k'), undefined)
    assert.equal(await (await open(prefix)).get('k'), undefined)
  })

  test('a prune by pattern reaches what another instance holds only locally (queued for Redis, or too large for it), and what it writes after stays', async () => {
    const prefix = fresh()
    const a = await open(prefix)
    const b = await open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '10s' } })
    const redisB = await open(prefix, { redis: { url: server.url, prefix, maxValueSize: 1000, ...FAST }, compression: 'none' })
    assert.ok(
      await eventually(async () => {
        await a.set('probe-bus', 'y')
        return (await b.get('probe-bus')) === 'y' && (await redisB.get('probe-bus')) === 'y'
      }),
      'the bus works',
    )
    await b.set('user:queued', 'old')
    await redisB.set('user:big', 'x'.repeat(8000)) // over its maxValueSize: local only
    await redisB.set('other:big', 'x'.repeat(8000))
    assert.equal(await a.get('user:big'), undefined, 'Redis holds no value of it (a tombstone at most)')
    await a.prune({ pattern: 'user:*' })
    assert.ok(await reads(b, 'user:queued', undefined), "B's queued write and local copy are gone")
    assert.ok(await reads(redisB, 'user:big', undefined), 'the entry only the other instance held is gone')
    assert.equal(await redisB.get('other:big'), 'x'.repeat(8000), 'what the pattern does not match stays')
    await b.flush()
    assert.equal(await admin.exists(`${prefix}default:user:queued`), 0, 'the queued write never reached Redis')
    await b.set('user:after', 'new')
    await b.flush()
    assert.equal(await a.get('user:after'), 'new', 'a write after the prune is kept')
  })

  test('getOrSet with lock under write-back calls the loader once across instances', async () => {
    const prefix = fresh()
    const caches = await Promise.all([1, 2, 3, 4].map(() => open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '10s' } })))
    let calls = 0
    const loader = async (): Promise<string> => {
      calls++
      await new Promise((resolve) => setTimeout(resolve, 200))
      return `v${calls}`
    }
    const values = await Promise.all(caches.map((cache) => cache.getOrSet('slow', loader, { lock: true })))
    assert.equal(calls, 1, 'one loader call')
    assert.deepEqual(values, ['v1', 'v1', 'v1', 'v1'])
  })

  test('getOrSet with lock takes no lock when Redis has just failed its read (its commands would wait as long again)', async () => {
    const prefix = fresh()
    // A breaker that stays closed, so each command that gets no answer is one failure.
    // The store, queued, is not sent again within the test (maxDelay).
    const cache = await open(prefix, {
      redis: { url: server.url, prefix, commandTimeout: '100ms', breaker: { volumeThreshold: 1000 } },
      writeBack: { maxDelay: '1h' },
    })
    redisAway()
    let calls = 0
    const value = await cache.getOrSet('k', () => `v${++calls}`, { lock: true })
    assert.equal(value, 'v1')
    const { breaker } = (await cache.stats()).tiers.redis as unknown as { breaker: { state: string; failures: number } }
    assert.equal(breaker.state, 'closed')
    // The read alone: not the store (queued for Redis's return), nor, with the lock, its SET NX
    // and a second read.
    assert.equal(breaker.failures, 1, 'one command waited for Redis, not four')
    assert.equal(((await cache.stats()).tiers.redis as unknown as { queued: number }).queued, 1, 'the store waits in the queue')
  })

  test('flush() does not wait for Redis to come back; with failOpen: false it rejects with ERR_UNAVAILABLE', async () => {
    const prefix = fresh()
    const open1 = await open(prefix, { writeStrategy: 'write-back' })
    const strict = await open(prefix, { writeStrategy: 'write-back', failOpen: false })
    await breakerOpenOn(open1, strict)
    await open1.set('k', 'v')
    await open1.flush()
    assert.equal((await redisOf(open1)).queued, 1, 'resolved with the write still queued')
    await strict.set('k2', 'v') // queued: write-back's set does not wait for Redis
    await assert.rejects(strict.flush(), (error: Error & { code?: string }) => error.code === 'ERR_UNAVAILABLE')
    assert.equal((await redisOf(strict)).queued, 1, 'still queued')
    await recovered(open1)
    await open1.flush()
    assert.equal((await redisOf(open1)).queued, 0)
    assert.equal(await (await open(prefix)).get('k'), 'v', 'sent once Redis was back')
  })

  test('after its bus reconnects, a write-back instance serves its own queued write, not what Redis held', async () => {
    const prefix = fresh()
    const b = await open(prefix, { writeStrategy: 'write-back', writeBack: { maxDelay: '10s' } })
    await b.set('k', 'v1')
    await b.flush()
    await b.set('k', 'v2')
    assert.ok(await eventually(async () => ((await admin.pubsub('NUMSUB', `${prefix}bus:default`)) as [string, number])[1] > 0))
    await admin.client('KILL', 'TYPE', 'pubsub')
    assert.ok(
      await eventually(async () => ((await admin.pubsub('NUMSUB', `${prefix}bus:default`)) as [string, number])[1] > 0),
      'resubscribed',
    )
    assert.equal(await b.get('k'), 'v2')
    await b.flush()
    assert.equal(await b.get('k'), 'v2')
  })
})
