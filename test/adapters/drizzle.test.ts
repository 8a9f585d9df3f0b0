/**
 * larder/drizzle with the real drizzle-orm (≥ 0.44) on libsql: both strategies, tables as
 * larder tags invalidated by writes in any process, user tags, Drizzle's expiry options,
 * libsql rows surviving the round trip, sharing across processes and restarts, and errors
 * reported through `onError` while the database answers. (The better-sqlite3 driver would
 * test nothing: it ignores `cache` silently.)
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { eq } from 'drizzle-orm'
import { blob, integer, sqliteTable } from 'drizzle-orm/sqlite-core'
import { Larder, isLarderError } from 'larder'
import { eventually } from '../eventually.ts'
import { tempDir } from '../helpers.ts'
import { runChild } from './processes.ts'
import { openDb, posts, users } from './drizzle-fixtures.ts'
import { LarderDrizzleCache } from 'larder/drizzle'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Counts the reads larder answered (hits) and missed, on a cache passed in. */
function countReads(cache: Larder): { hits: number; misses: number } {
  const counts = { hits: 0, misses: 0 }
  cache.on('hit', () => counts.hits++)
  cache.on('miss', () => counts.misses++)
  return counts
}

describe('larder/drizzle on libsql', () => {
  test('explicit strategy: only $withCache selects are cached, and rows come back whole (libsql rows hold their values under hidden indices)', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-explicit') })
    const reads = countReads(larder)
    const { db } = await openDb(':memory:', larder)
    await db.insert(users).values([{ name: 'ann' }, { name: 'bob' }])
    await db.select().from(users)
    assert.deepEqual(reads, { hits: 0, misses: 0 }, 'a select without $withCache is not cached')
    const cached = () => db.select().from(users).orderBy(users.id).$withCache()
    assert.deepEqual(await cached(), [
      { id: 1, name: 'ann' },
      { id: 2, name: 'bob' },
    ])
    assert.deepEqual(await cached(), [
      { id: 1, name: 'ann' },
      { id: 2, name: 'bob' },
    ])
    assert.deepEqual(reads, { hits: 1, misses: 1 })
    db.$client.close()
    await larder.close()
  })

  test('all strategy: every select is cached unless $withCache(false)', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-all') })
    const reads = countReads(larder)
    const { db } = await openDb(':memory:', larder, { strategy: 'all' })
    await db.insert(users).values({ name: 'ann' })
    await db.select().from(users)
    await db.select().from(users)
    assert.deepEqual(reads, { hits: 1, misses: 1 })
    await db.select().from(users).$withCache(false)
    assert.deepEqual(reads, { hits: 1, misses: 1 })
    db.$client.close()
    await larder.close()
  })

  test('a write to a table invalidates every cached query that read it (joins included), and only those', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-tables') })
    const { db } = await openDb(':memory:', larder, { strategy: 'all' })
    await db.insert(users).values({ name: 'ann' })
    await db.insert(posts).values({ userId: 1, title: 'hello' })
    const userNames = async () => (await db.select().from(users)).map((u) => u.name)
    const titles = async () => (await db.select().from(posts)).map((p) => p.title)
    const joined = async () =>
      (await db.select({ name: users.name, title: posts.title }).from(posts).innerJoin(users, eq(users.id, posts.userId))).length
    assert.deepEqual([await userNames(), await titles(), await joined()], [['ann'], ['hello'], 1])
    const tagsOf = async (prefix: string) => (await larder.entries({ prefix })).map((e) => [...e.tags].sort())
    assert.deepEqual((await tagsOf('drizzle:query:')).sort(), [
      ['drizzle:table:posts'],
      ['drizzle:table:posts', 'drizzle:table:users'],
      ['drizzle:table:users'],
    ])

    await larder.set('not-drizzle', 'kept')
    await db.insert(posts).values({ userId: 1, title: 'again' })
    assert.deepEqual(await titles(), ['hello', 'again'])
    assert.equal(await joined(), 2)
    const hits = countReads(larder)
    assert.deepEqual(await userNames(), ['ann'])
    assert.equal(hits.hits, 1, 'the users query was still cached')
    await db.update(users).set({ name: 'ann b.' }).where(eq(users.id, 1))
    assert.deepEqual(await userNames(), ['ann b.'])
    await db.delete(users)
    assert.deepEqual(await userNames(), [])
    assert.equal(await larder.get('not-drizzle'), 'kept')
    db.$client.close()
    await larder.close()
  })

  test('a tagged query is removed by db.$cache.invalidate({ tags }); with autoInvalidate: false writes leave it', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-tags') })
    const { db } = await openDb(':memory:', larder)
    await db.insert(users).values({ name: 'ann' })
    const names = async () => (await db.select().from(users).$withCache({ tag: 'names', autoInvalidate: false })).map((u) => u.name)
    assert.deepEqual(await names(), ['ann'])
    await db.insert(users).values({ name: 'bob' })
    assert.deepEqual(await names(), ['ann'], 'not invalidated by the write')
    await db.$cache.invalidate({ tags: 'names' })
    assert.deepEqual(await names(), ['ann', 'bob'])
    db.$client.close()
    await larder.close()
  })

  test("Drizzle's expiry options (ex, px, exat, pxat) become the entry's ttl; without one, the adapter's ttl", async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-ttl') })
    const { db } = await openDb(':memory:', larder, { ttl: '1h' })
    const now = Date.now()
    const cases = {
      ex: { ex: 60 },
      px: { px: 90_000 },
      exat: { exat: Math.floor(now / 1000) + 120 },
      pxat: { pxat: now + 150_000 },
      none: undefined,
    }
    const expected = { ex: 60_000, px: 90_000, exat: 120_000, pxat: 150_000, none: 3_600_000 }
    for (const [tag, config] of Object.entries(cases)) {
      await db.select().from(users).$withCache({ tag, config })
      const info = await larder.info(`drizzle:tag:${tag}`)
      const ttl = (info?.expiresAt ?? 0) - now
      const want = expected[tag as keyof typeof expected]
      assert.ok(ttl > want - 2_000 && ttl <= want + 1_000, `${tag}: ttl ${ttl}, want about ${want}`)
    }
    db.$client.close()
    await larder.close()
  })

  test('an expiry of Infinity (px, ex, pxat, exat) keeps the result for good, with nothing reported', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-forever') })
    const errors: Error[] = []
    const { db } = await openDb(':memory:', larder, { onError: (error) => errors.push(error) })
    for (const field of ['px', 'ex', 'pxat', 'exat']) {
      await db
        .select()
        .from(users)
        .$withCache({ tag: field, config: { [field]: Infinity } })
      const info = await larder.info(`drizzle:tag:${field}`)
      assert.ok(info !== undefined && info.expiresAt === null, `${field}: ${JSON.stringify(info)}`)
    }
    assert.deepEqual(errors, [])
    db.$client.close()
    await larder.close()
  })

  test('an expiry of 0 or less (px, ex) or already past (pxat, exat) keeps nothing, and the result it would replace goes too', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-zero') })
    const reads = countReads(larder)
    const errors: Error[] = []
    const { db } = await openDb(':memory:', larder, { ttl: '1h', onError: (error) => errors.push(error) })
    const past = Date.now() - 10_000
    const cases = { px: { px: 0 }, ex: { ex: 0 }, negative: { px: -5 }, pxat: { pxat: past }, exat: { exat: Math.floor(past / 1000) } }
    let rows = 0
    for (const [tag, config] of Object.entries(cases)) {
      const count = async (cacheConfig?: object) => (await db.select().from(users).$withCache({ tag, config: cacheConfig })).length
      await db.insert(users).values({ name: `user${++rows}` })
      assert.equal(await count(), rows, `${tag}: cached with the adapter's ttl first`)
      await db.insert(users).values({ name: `user${++rows}` }) // makes it stale; its file stays
      const before = reads.hits
      assert.equal(await count(config), rows, `${tag}: ${JSON.stringify(config)}`)
      assert.equal(await count(config), rows, `${tag}: ${JSON.stringify(config)}, again`)
      assert.equal(reads.hits, before, `${tag}: ${JSON.stringify(config)} kept nothing to hit`)
    }
    // Neither a result kept for good (0 was larder's "never") nor a dead file kept until a prune.
    const usage = await larder.usage()
    assert.deepEqual({ entries: usage.entries, expired: usage.expired }, { entries: 0, expired: 0 })
    assert.deepEqual(errors, [])
    db.$client.close()
    await larder.close()
  })

  test('an expiry that is not a number (a string from a config file, NaN) is not stored: onError hears ERR_INVALID_TTL naming the field', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-string-ttl') })
    const errors: Error[] = []
    const { db } = await openDb(':memory:', larder, { onError: (error) => errors.push(error) })
    const cases = { px: { px: '5000' }, ex: { ex: 'a minute' }, pxat: { pxat: Number.NaN }, exat: { exat: '1' } }
    for (const [tag, config] of Object.entries(cases)) {
      await db
        .select()
        .from(users)
        .$withCache({ tag, config: config as never })
      assert.equal(
        await larder.info(`drizzle:tag:${tag}`),
        undefined,
        `${tag}: ${JSON.stringify(config)} (a string '5000' was kept 570,000 years)`,
      )
    }
    assert.deepEqual(
      errors.map((e) => isLarderError(e, 'ERR_INVALID_TTL') && e.field),
      ['px', 'ex', 'pxat', 'exat'],
    )
    assert.match(errors[0]!.message, /Invalid px: expected a number, got "5000" \(string\)/)
    db.$client.close()
    await larder.close()
  })

  test("a query slower than its ttl is cached: ex, px and the adapter's ttl count from the put (not the miss), exat and pxat end when they say", async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-slow') })
    const { db, cache } = await openDb(':memory:', larder, { ttl: 400 })
    await db.insert(users).values([{ name: 'ann' }])
    // The query's time, between the miss and the put Drizzle makes after it: 500 ms.
    const put = cache.put.bind(cache)
    cache.put = async (...args) => {
      await sleep(500)
      return put(...args)
    }
    const pxat = Date.now() + 60_000
    const exat = Math.floor(Date.now() / 1000) + 120
    const cases = { px: { px: 400 }, ex: { ex: 1 }, none: undefined, pxat: { pxat }, exat: { exat } }
    const reads = countReads(larder)
    for (const [tag, config] of Object.entries(cases)) {
      const started = Date.now()
      await db.select().from(users).$withCache({ tag, config })
      const info = await larder.info(`drizzle:tag:${tag}`)
      const end = tag === 'pxat' ? pxat : tag === 'exat' ? exat * 1000 : undefined
      if (end !== undefined) assert.equal(info?.expiresAt, end, `${tag}: ${JSON.stringify(info)}`)
      // Counted from the miss, the 400 ms entries expired 100 ms before they were stored.
      else {
        const ttl = tag === 'ex' ? 1000 : 400
        // (5 ms of slack: a timer of 500 ms can end 1 ms short by Date.now, libuv's loop time
        // being read before the timer was set)
        assert.ok(info?.expiresAt != null && info.expiresAt >= started + 495 + ttl, `${tag}: ${JSON.stringify(info)}`)
      }
      const before = reads.hits
      assert.deepEqual(await db.select().from(users).$withCache({ tag, config }), [{ id: 1, name: 'ann' }])
      assert.equal(reads.hits, before + 1, `${tag}: served from the cache`)
    }
    db.$client.close()
    await larder.close()
  })

  test('a result read before a write to its table is not cached after that write (the put that comes after the invalidation)', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-race') })
    const { db, cache } = await openDb(':memory:', larder, { strategy: 'all' })
    await db.insert(users).values([{ name: 'old' }])
    // Drizzle's own order for a select that misses: get, the query, put. A write to the table
    // in between (another request, another process) invalidates it before the put.
    assert.equal(await cache.get('q1', ['users'], false), undefined)
    const rows = await db.select().from(users)
    await db.update(users).set({ name: 'new' }).where(eq(users.id, 1))
    await cache.put('q1', rows, ['users'], false)
    assert.equal(await cache.get('q1', ['users'], false), undefined, 'the old rows are not served')
    // With no write in between, the result is cached as before.
    assert.equal(await cache.get('q2', ['users'], false), undefined)
    await cache.put('q2', await db.select().from(users), ['users'], false)
    assert.deepEqual(await cache.get('q2', ['users'], false), [{ id: 1, name: 'new' }])
    await larder.close()
  })

  test("a tag that looks like a hashed one (sha256:<the hash of a long tag>) is not that long tag's result", async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-looks-hashed') })
    const { db } = await openDb(':memory:', larder)
    await db.insert(users).values({ id: 1, name: 'ann' })
    const long = 't'.repeat(5000)
    const lookalike = `sha256:${createHash('sha256').update(long).digest('hex')}`
    assert.equal((await db.select().from(users).$withCache({ tag: long, autoInvalidate: false })).length, 1)
    await db.insert(users).values({ id: 2, name: 'bob' })
    assert.deepEqual(
      (await db.select().from(users).where(eq(users.id, 2)).$withCache({ tag: lookalike })).map((row) => row.name),
      ['bob'],
      "the lookalike tag is not served the long tag's result",
    )
    assert.deepEqual(
      (await db.select().from(users).$withCache({ tag: long, autoInvalidate: false })).map((row) => row.name),
      ['ann'],
      'the long tag keeps its own result',
    )
    db.$client.close()
    await larder.close()
  })

  test('db.$cache.invalidate({ tags }) while a tagged query runs is not undone by its put (autoInvalidate: false)', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-tag-race') })
    const { db, cache } = await openDb(':memory:', larder)
    await db.insert(users).values([{ name: 'ann' }])
    // Drizzle's order for a tagged select that misses: get, the query, put; the app's write and
    // its invalidation of the tag land in between.
    assert.equal(await cache.get('names', [], true, false), undefined)
    const rows = await db.select().from(users)
    await db.update(users).set({ name: 'bob' }).where(eq(users.id, 1))
    await db.$cache.invalidate({ tags: 'names' })
    await cache.put('names', rows, [], true)
    assert.equal(await cache.get('names', [], true, false), undefined, 'the rows read before the invalidation are not served')
    // With nothing in between, a tagged result is cached as before.
    assert.equal(await cache.get('names', [], true, false), undefined)
    await cache.put('names', await db.select().from(users), [], true)
    assert.deepEqual(await cache.get('names', [], true, false), [{ id: 1, name: 'bob' }])
    db.$client.close()
    await larder.close()
  })

  test('two runs of one query around a write: whichever stores last, the rows read before the write are not served', async () => {
    for (const order of ['after first', 'before first']) {
      const larder = await Larder.open({ dir: tempDir('larder-drizzle-race2') })
      const { db, cache } = await openDb(':memory:', larder, { strategy: 'all' })
      await db.insert(users).values([{ name: 'old' }])
      assert.equal(await cache.get('q', ['users'], false), undefined) // run 1 misses
      const before = await db.select().from(users)
      await db.update(users).set({ name: 'new' }).where(eq(users.id, 1)) // onMutate
      assert.equal(await cache.get('q', ['users'], false), undefined) // run 2 misses
      const after = await db.select().from(users)
      const [first, second] = order === 'after first' ? [after, before] : [before, after]
      await cache.put('q', first, ['users'], false)
      if (first === before) assert.equal(await cache.get('q', ['users'], false), undefined, 'between the puts')
      await cache.put('q', second, ['users'], false)
      assert.notDeepEqual(await cache.get('q', ['users'], false), before, `${order}: the old rows are not served`)
      await larder.close()
    }
  })

  test('a select that failed (no store after its miss) does not date later results: after a write, the next result is cached again', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-failed-select') })
    const reads = countReads(larder)
    const { db } = await openDb(':memory:', larder, { strategy: 'all' })
    await db.run('drop table users')
    await assert.rejects(db.select().from(users), 'the table is missing: the select fails after its miss')
    await db.run('create table users (id integer primary key, name text not null)')
    await db.insert(users).values({ name: 'ann' })
    await sleep(5)
    const before = { ...reads }
    for (let i = 0; i < 5; i++) assert.deepEqual(await db.select().from(users), [{ id: 1, name: 'ann' }])
    // Before, each result was stored as of the failed select's miss, older than the insert:
    // stale at once, so all five went to the database for up to five minutes.
    assert.deepEqual({ hits: reads.hits - before.hits, misses: reads.misses - before.misses }, { hits: 4, misses: 1 })
    db.$client.close()
    await larder.close()
  })

  test('two reads of one query begun in one function and stored after: the stores are dated by the older miss (they cannot be told apart)', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-one-context') })
    const cache = new LarderDrizzleCache(larder)
    // As two runs of a query around a write would, called in one async function: A misses
    // before the write, B after; A's result (old rows) is stored last.
    assert.equal(await cache.get('q', ['users'], false), undefined)
    await cache.onMutate({ tables: ['users'] })
    await sleep(5)
    assert.equal(await cache.get('q', ['users'], false), undefined)
    await cache.put('q', [{ id: 1, name: 'new' }], ['users'], false)
    await cache.put('q', [{ id: 1, name: 'old' }], ['users'], false)
    assert.equal(await cache.get('q', ['users'], false), undefined, 'the old rows are not served')
    await cache.close() // its second stamp, due a second after the write, made now (not on a closed cache)
    await larder.close()
  })

  test('an unknown strategy is ERR_INVALID_OPTION naming the field, thrown by the constructor', async () => {
    const { LarderDrizzleCache } = await import('larder/drizzle')
    assert.throws(
      () => new LarderDrizzleCache({ dir: tempDir('larder-drizzle-options') }, { strategy: 'everything' as never }),
      (error: unknown) => isLarderError(error, 'ERR_INVALID_OPTION') && error.field === 'strategy' && /strategy/.test(error.message),
    )
  })

  test('invalidateAgainAfter that is not a duration is ERR_INVALID_OPTION naming the field', async () => {
    const { LarderDrizzleCache } = await import('larder/drizzle')
    for (const bad of [-1, 'soon', Number.NaN]) {
      assert.throws(
        () => new LarderDrizzleCache({ dir: tempDir('larder-drizzle-options') }, { invalidateAgainAfter: bad }),
        (error: unknown) => isLarderError(error, 'ERR_INVALID_OPTION') && error.field === 'invalidateAgainAfter',
      )
    }
  })

  test('a ttl that is not a duration is ERR_INVALID_OPTION naming the field, thrown by the constructor', () => {
    // '1M' is refused as the core refuses it (ambiguous: ms would read a minute).
    for (const bad of ['soon', -5, '1M']) {
      assert.throws(
        () => new LarderDrizzleCache({ dir: tempDir('larder-drizzle-options') }, { ttl: bad }),
        (error: unknown) => isLarderError(error, 'ERR_INVALID_OPTION') && error.field === 'ttl',
      )
    }
  })

  test('a select inside a transaction that wrote its table and then rolls back is not cached: no process is served rows that never existed', async () => {
    const dir = tempDir('larder-drizzle-rollback')
    const url = `file:${path.join(tempDir('larder-drizzle-rollback-db'), 'app.db')}`
    const writer = await openDb(url, { dir }, { invalidateAgainAfter: 60_000 })
    await writer.db.insert(users).values({ name: 'ann' })
    const names = async (db: typeof writer.db): Promise<string[]> =>
      (await db.select({ name: users.name }).from(users).orderBy(users.id).$withCache()).map((row) => row.name)
    await assert.rejects(
      writer.db.transaction(async (tx) => {
        await tx.insert(users).values({ name: 'phantom' })
        assert.deepEqual(await names(tx as unknown as typeof writer.db), ['ann', 'phantom'], 'read inside the transaction')
        throw new Error('rolled back')
      }),
      /rolled back/,
    )
    const reader = await openDb(url, { dir })
    assert.deepEqual(await names(reader.db), ['ann'], 'the database, not the rolled-back rows')
    for (const d of [writer.db, reader.db]) d.$client.close()
    await Promise.all([writer.cache.close(), reader.cache.close()])
  })

  test('a select another instance runs inside a write transaction (the old rows) is stale once the writer stamps its tables again after commit', async () => {
    /** Writer and reader: two instances on one directory (as two processes), one database.
     *  The reader selects while the writer's transaction has inserted bob and not committed:
     *  the transaction waits for that select (a sleep in it let the commit come first on a
     *  loaded machine). Returns after the commit, with whether the select ended within
     *  `invalidateAgainAfter` of bob's insert (else its miss may come after the second stamp,
     *  which then leaves it fresh: the run proves nothing). */
    const race = async (invalidateAgainAfter: number) => {
      const dir = tempDir('larder-drizzle-tx')
      const url = `file:${path.join(tempDir('larder-drizzle-tx-db'), 'app.db')}`
      const [writerCache, readerCache] = await Promise.all([Larder.open({ dir }), Larder.open({ dir })])
      const writer = await openDb(url, writerCache, { invalidateAgainAfter })
      const reader = await openDb(url, readerCache)
      const names = async (): Promise<string[]> =>
        (await reader.db.select({ name: users.name }).from(users).orderBy(users.id).$withCache()).map((row) => row.name)
      await reader.db.insert(users).values({ name: 'alice' }) // by the reader: the writer's one second stamp is bob's
      let bobInserted!: () => void
      let readDone!: () => void
      const inserted = new Promise<void>((resolve) => (bobInserted = resolve))
      const read = new Promise<void>((resolve) => (readDone = resolve))
      const began = Date.now() // before bob's insert asks for its second stamp
      const committed = writer.db.transaction(async (tx) => {
        await tx.insert(users).values({ name: 'bob' })
        bobInserted()
        await read // the transaction's other work: bob is not visible until COMMIT
      })
      let inTime: boolean
      try {
        await Promise.race([inserted, committed])
        assert.deepEqual(await names(), ['alice'], 'read inside the transaction: the old rows, cached')
        inTime = Date.now() - began < invalidateAgainAfter
      } finally {
        readDone()
      }
      await committed
      const close = async (): Promise<void> => {
        for (const d of [writer.db, reader.db]) d.$client.close()
        await Promise.all([writer.cache.close(), writerCache.close(), readerCache.close()])
      }
      return { names, inTime, close }
    }
    // Stamped again 500 ms after bob's insert, or later when the machine was too slow to
    // select within that: the stale result is seen however long its stamp takes to come.
    let after = 500
    for (; ; after *= 4) {
      const stamped = await race(after)
      if (stamped.inTime) {
        await eventually(
          async () => isDeepStrictEqual(await stamped.names(), ['alice', 'bob']),
          'the second stamp, after the commit, made the cached result stale',
          after + 30_000,
        )
      }
      await stamped.close()
      if (stamped.inTime) break
      assert.ok(after < 8_000, `the select inside the transaction never ended within ${after} ms of the insert`)
    }
    // Stamped once only (before the commit), waited for as long as that second stamp's delay.
    const once = await race(0)
    await sleep(after + 200)
    assert.deepEqual(await once.names(), ['alice'], 'stamped once only (before the commit): the old rows outlive the transaction')
    await once.close()
  })

  test(
    'cached results are shared with another process and survive a restart; a write in that process invalidates them here',
    { timeout: 60_000 },
    async () => {
      const work = tempDir('larder-drizzle-procs')
      const url = `file:${path.join(work, 'app.db')}`
      const dir = path.join(work, 'cache')
      const { db, cache } = await openDb(url, { dir })
      await db.insert(users).values({ name: 'ann' })
      const tagged = await db.select({ name: users.name }).from(users).$withCache({ tag: 'all-names', autoInvalidate: false })
      const byTable = async () => (await db.select({ name: users.name }).from(users).orderBy(users.id).$withCache()).map((u) => u.name)
      assert.deepEqual(await byTable(), ['ann'])
      await db.run("insert into users (name) values ('raw')") // behind Drizzle's back: no invalidation
      assert.deepEqual(await byTable(), ['ann'])
      db.$client.close()
      await cache.close()

      const seen = await runChild('drizzle-child.ts', 'read', url, dir)
      assert.deepEqual(seen, { tagged: tagged.map((u) => u.name), uncached: ['ann', 'raw'] })
      assert.deepEqual(await runChild('drizzle-child.ts', 'insert', url, dir), { inserted: 1 })

      const reopened = await openDb(url, { dir })
      const names = (await reopened.db.select({ name: users.name }).from(users).orderBy(users.id).$withCache()).map((u) => u.name)
      assert.deepEqual(names, ['ann', 'raw', 'from-child'], "the other process's insert invalidated the users queries")
      reopened.db.$client.close()
      await reopened.cache.close()
    },
  )

  test('a failing disk: the database answers every query, onError hears of it, nothing throws', async () => {
    const dir = path.join(tempDir('larder-drizzle-disk'), 'cache')
    const errors: Error[] = []
    const { db, cache } = await openDb(
      ':memory:',
      { dir, breaker: { volumeThreshold: 2, resetTimeout: 60_000 } },
      { strategy: 'all', onError: (e) => errors.push(e) },
    )
    await db.insert(users).values({ name: 'ann' })
    assert.equal((await db.select().from(users)).length, 1)
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    await db.insert(users).values({ name: 'bob' })
    assert.equal((await db.select().from(users)).length, 2)
    assert.equal((await db.select().from(users)).length, 2)
    await db.$cache.invalidate({ tags: ['x'], tables: ['users'] })
    assert.ok(errors.length >= 1 && errors.every((e) => isLarderError(e, 'ERR_UNAVAILABLE')), errors.map(String).join('; '))
    db.$client.close()
    await cache.close()
  })

  test('with failOpen: false, a second stamp the failing disk refuses (a timer, no caller to throw to) reaches onError and ends no process', async () => {
    const dir = path.join(tempDir('larder-drizzle-again-refused'), 'cache')
    const errors: Error[] = []
    const { db, cache } = await openDb(
      ':memory:',
      { dir, failOpen: false, breaker: { volumeThreshold: 2, resetTimeout: 60_000 } },
      { invalidateAgainAfter: 100, onError: (e) => errors.push(e) },
    )
    const rejections: unknown[] = []
    const onRejection = (reason: unknown): number => rejections.push(reason)
    process.on('unhandledRejection', onRejection)
    try {
      await db.select().from(users).$withCache() // the cache is open
      fs.renameSync(dir, `${dir}.away`)
      fs.writeFileSync(dir, 'not a directory')
      // Refused as asked (failOpen: false); its tables' second stamp is due 100 ms after.
      await assert.rejects(db.insert(users).values({ name: 'ann' }))
      const before = errors.length
      await eventually(() => errors.length > before || rejections.length > 0, 'the second stamp was made')
      await sleep(50) // an unhandled rejection is heard a turn after its promise rejects
      assert.deepEqual(rejections, [])
      assert.ok(
        errors.every((e) => isLarderError(e, 'ERR_UNAVAILABLE')),
        errors.map(String).join('; '),
      )
      await cache.close() // nothing due any more: resolves
    } finally {
      process.off('unhandledRejection', onRejection)
      db.$client.close()
    }
  })

  test('an onError that throws (a logger that failed) fails no query: what it throws is dropped', async () => {
    const dir = path.join(tempDir('larder-drizzle-throwing-onerror'), 'cache')
    let heard = 0
    const { db, cache } = await openDb(
      ':memory:',
      { dir, breaker: { volumeThreshold: 2, resetTimeout: 60_000 } },
      {
        strategy: 'all',
        onError: () => {
          heard++
          throw new Error('the logger is down')
        },
      },
    )
    await db.insert(users).values({ name: 'ann' })
    assert.equal((await db.select().from(users)).length, 1)
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    for (let rows = 2; rows <= 4; rows++) {
      await db.insert(users).values({ name: `user${rows}` })
      assert.equal((await db.select().from(users)).length, rows)
    }
    assert.ok(heard >= 1)
    db.$client.close()
    await cache.close()
  })

  test('a result larder cannot store (a BigInt under json) or return (over maxValueSize) reaches onError; the query is answered by the database', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-bad-values'), maxValueSize: '1KiB' })
    const errors: Error[] = []
    const { db } = await openDb(':memory:', larder, { strategy: 'all', intMode: 'bigint', onError: (e) => errors.push(e) })
    await db.run("insert into users (name) values ('ann')")
    assert.deepEqual(await db.select().from(users), [{ id: 1n, name: 'ann' }])
    assert.ok(isLarderError(errors[0], 'ERR_SERIALIZE'), String(errors[0]))
    assert.deepEqual(await larder.entries(), [])

    const roomy = await Larder.open({ dir: larder.dir, serializer: 'v8' })
    const big = await openDb(':memory:', roomy, { strategy: 'all' })
    await big.db.insert(users).values({ name: 'x'.repeat(4096) })
    await big.db.select({ name: users.name }).from(users).$withCache({ tag: 'big' })
    const small = await openDb(':memory:', larder, { onError: (e) => errors.push(e) })
    assert.deepEqual(
      await small.db.select({ name: users.name }).from(users).$withCache({ tag: 'big' }),
      [],
      'a miss: this database has no rows',
    )
    assert.ok(isLarderError(errors.at(-1), 'ERR_TOO_LARGE'), String(errors.at(-1)))
    for (const d of [db, big.db, small.db]) d.$client.close()
    await Promise.all([larder.close(), roomy.close()])
  })

  test('with the memory tier, a blob (a Buffer Drizzle makes over the cached bytes) changed in one result is not changed in the next', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-memory-bytes'), memory: true, serializer: 'v8' })
    const reads = countReads(larder)
    const { db } = await openDb(':memory:', larder, { strategy: 'all' })
    const files = sqliteTable('files', { id: integer('id').primaryKey(), data: blob('data', { mode: 'buffer' }).notNull() })
    await db.run('create table files (id integer primary key, data blob not null)')
    await db.insert(files).values({ id: 1, data: Buffer.from('hi') })
    await db.select().from(files) // a miss, stored
    for (let i = 0; i < 2; i++) {
      const [row] = await db.select().from(files)
      assert.equal(row!.data.toString(), 'hi', `hit ${i + 1}`)
      row!.data.write('HO') // the app's own copy, it thinks
    }
    assert.equal(reads.hits, 2)
    db.$client.close()
    await larder.close()
  })

  test('a blob column (an ArrayBuffer from libsql) under a json cache passed in is not cached, and onError hears why; the query still answers its bytes', async () => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-blob') })
    const errors: Error[] = []
    const { db } = await openDb(':memory:', larder, { strategy: 'all', onError: (e) => errors.push(e) })
    const files = sqliteTable('files', { id: integer('id').primaryKey(), data: blob('data', { mode: 'buffer' }).notNull() })
    await db.run('create table files (id integer primary key, data blob not null)')
    await db.insert(files).values({ id: 1, data: Buffer.from('hi') })
    for (const read of ['first', 'second (before: the {} JSON stored failed Drizzle on every hit)']) {
      const [row] = await db.select().from(files)
      assert.equal(Buffer.from(row!.data).toString(), 'hi', read)
    }
    assert.ok(
      errors.some((e) => isLarderError(e, 'ERR_SERIALIZE') && /ArrayBuffer/.test(e.message)),
      errors.map(String).join('; '),
    )
    db.$client.close()
    await larder.close()
  })
})
