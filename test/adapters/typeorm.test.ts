/**
 * larder/typeorm with the real TypeORM 1.x, on SQLite (sql.js) and on a real PostgreSQL
 * server (Debian's, a cluster of our own on a free loopback port): cached queries served from
 * larder, removal by id (derived ids included), clear, expiry, sharing between processes and
 * across a restart (and removal and clear from another process, on both databases), and errors as warnings on the DataSource's logger, never failed queries.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test, test as nodeTest } from 'node:test'
import type { DataSourceOptions } from 'typeorm'
import type { QueryResultCache } from 'typeorm/cache/QueryResultCache.js'
import { Larder } from 'larder'
import { tempDir } from '../helpers.ts'
import { startPostgres, type Postgres } from './postgres.ts'
import { runChild } from './processes.ts'
import { openDataSource, UserSchema } from './typeorm-fixtures.ts'

/** The behaviour every database must show; `connection` picks the database, or says why
 *  there is none here (then each test skips with that reason). */
function contract(connection: () => Partial<DataSourceOptions> | string): void {
  const test = (name: string, body: (db: Partial<DataSourceOptions>) => Promise<void>): void => {
    nodeTest(name, async (t) => {
      const db = connection()
      if (typeof db === 'string') return t.skip(db)
      await body(db)
    })
  }
  test("a query cached by id is served by larder (stale after a write) until remove([id]); remove covers getManyAndCount's count", async (db) => {
    const dir = tempDir('larder-typeorm-id')
    const { ds } = await openDataSource({ dir }, ['ann', 'bob'], db)
    const users = ds.getRepository(UserSchema)
    const names = async (): Promise<string[]> =>
      (await users.find({ order: { id: 'ASC' }, cache: { id: 'all', milliseconds: 60_000 } })).map((u) => u.name)
    assert.deepEqual(await names(), ['ann', 'bob'])
    await users.insert({ name: 'cid' })
    assert.deepEqual(await names(), ['ann', 'bob'], 'served from the cache')
    const page = () => users.createQueryBuilder('u').orderBy('u.id').take(1).cache('page', 60_000).getManyAndCount()
    assert.equal((await page())[1], 3)
    await users.insert({ name: 'dee' })
    assert.equal((await page())[1], 3, 'the count is cached too, under page-count')

    await ds.queryResultCache!.remove(['all', 'page'])
    assert.deepEqual(await names(), ['ann', 'bob', 'cid', 'dee'])
    assert.equal((await page())[1], 4)
    await ds.destroy()
  })

  test("remove() of many ids at once (three tags each, past an entry's 64) removes every one", async (db) => {
    const { ds } = await openDataSource({ dir: tempDir('larder-typeorm-many') }, ['ann'], db)
    const users = ds.getRepository(UserSchema)
    const names = async (): Promise<string[]> =>
      (await users.find({ order: { id: 'ASC' }, cache: { id: 'all', milliseconds: 60_000 } })).map((u) => u.name)
    assert.deepEqual(await names(), ['ann'])
    await users.insert({ name: 'bob' })
    assert.deepEqual(await names(), ['ann'], 'served from the cache')
    const ids = Array.from({ length: 40 }, (_, i) => `other-${i}`)
    await ds.queryResultCache!.remove([...ids, 'all'])
    assert.deepEqual(await names(), ['ann', 'bob'])
    await ds.destroy()
  })

  test("a query cached by its SQL is served by larder until clear(), which leaves the cache's other entries", async (db) => {
    const cache = await Larder.open({ dir: tempDir('larder-typeorm-query') })
    const { ds } = await openDataSource(cache, ['ann'], db)
    const users = ds.getRepository(UserSchema)
    const anns = async (): Promise<number> => (await users.find({ where: { name: 'ann' }, cache: true })).length
    assert.equal(await anns(), 1)
    await users.insert({ name: 'ann' })
    assert.equal(await anns(), 1)
    await cache.set('not-typeorm', 'kept')
    await ds.queryResultCache!.clear()
    assert.equal(await anns(), 2)
    assert.equal(await cache.get('not-typeorm'), 'kept')
    const keys = (await cache.entries()).map((e) => e.key)
    assert.ok(
      keys.some((k) => k.startsWith('typeorm:query:SELECT')),
      keys.join(', '),
    )
    await ds.destroy()
    await cache.close()
  })

  test('remove([id]) and clear() called in another process reach this one', async (db) => {
    const dir = tempDir('larder-typeorm-invalidate')
    const { ds } = await openDataSource({ dir }, ['ann', 'bob'], db)
    const users = ds.getRepository(UserSchema)
    const byId = async (): Promise<string[]> =>
      (await users.find({ order: { id: 'ASC' }, cache: { id: 'all-users', milliseconds: 60_000 } })).map((u) => u.name)
    const anns = async (): Promise<number> => (await users.find({ where: { name: 'ann' }, cache: 60_000 })).length
    assert.deepEqual(await byId(), ['ann', 'bob'])
    assert.equal(await anns(), 1)
    await users.insert([{ name: 'cid' }, { name: 'ann' }])
    assert.deepEqual(await byId(), ['ann', 'bob'], 'served from the cache')
    assert.equal(await anns(), 1, 'served from the cache')
    const child = await runChild('typeorm-child.ts', 'invalidate', dir, JSON.stringify(db))
    assert.deepEqual(child, { cached: ['ann', 'bob'] }, 'the other process was answered from the shared cache')
    assert.deepEqual(await byId(), ['ann', 'bob', 'cid', 'ann'], 'its remove([id]) reached this process')
    assert.equal(await anns(), 2, 'its clear() reached this process')
    await ds.destroy()
  })

  test("an entry expires with the query's duration: TypeORM asks the database again, and larder reclaims it", async (db) => {
    const cache = await Larder.open({ dir: tempDir('larder-typeorm-ttl') })
    const { ds } = await openDataSource(cache, ['ann'], db)
    const users = ds.getRepository(UserSchema)
    const count = async (): Promise<number> => users.count({ cache: { id: 'short', milliseconds: 40 } })
    assert.equal(await count(), 1)
    const info = await cache.info('typeorm:id:short')
    // Created as of the miss, expiring 40 ms after the store: 40 ms and the query's time apart.
    assert.ok(
      info?.expiresAt != null && info.expiresAt - info.createdAt > 39 && info.expiresAt - info.createdAt < 1_000,
      JSON.stringify(info),
    )
    await users.insert({ name: 'bob' })
    await sleep(80)
    assert.equal(await count(), 2)
    await ds.destroy()
    await cache.close()
  })
}

describe('larder/typeorm on SQLite (sql.js)', () => {
  contract(() => ({ type: 'sqljs' }))

  test('cached results survive a restart and are shared with another process (which has other rows)', { timeout: 60_000 }, async () => {
    const dir = tempDir('larder-typeorm-procs')
    const { ds } = await openDataSource({ dir }, ['ann', 'bob'])
    const users = ds.getRepository(UserSchema)
    await users.find({ order: { id: 'ASC' }, cache: { id: 'all-users', milliseconds: 60_000 } })
    await users.find({ where: { name: 'ann' }, cache: 60_000 })
    await ds.destroy()
    assert.deepEqual(await runChild('typeorm-child.ts', 'read', dir), { byId: ['ann', 'bob'], byQuery: ['ann'], uncached: ['zed'] })
  })

  test('a failing disk: queries are answered by the database, the logger warns, nothing throws', async () => {
    const dir = path.join(tempDir('larder-typeorm-disk'), 'cache')
    const { ds, log } = await openDataSource({ dir }, ['ann'])
    const users = ds.getRepository(UserSchema)
    assert.equal((await users.find({ cache: { id: 'all', milliseconds: 60_000 } })).length, 1)
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    await users.insert({ name: 'bob' })
    assert.equal((await users.find({ cache: { id: 'all', milliseconds: 60_000 } })).length, 2, 'a miss: the database answered')
    assert.equal((await users.find({ where: { name: 'bob' }, cache: true })).length, 1)
    await ds.queryResultCache!.remove(['all'])
    await ds.queryResultCache!.clear()
    assert.ok(log.warnings.length >= 1 && log.warnings.every((w) => /Cache disk unavailable/.test(w)), log.warnings.join('\n'))
    await ds.destroy()
  })

  test("a result larder cannot store is a warning and the query's rows; one too large to read is a miss and a warning", async () => {
    const dir = tempDir('larder-typeorm-bad-values')
    const long = 'x'.repeat(2000)
    const { ds, log } = await openDataSource({ dir, maxValueSize: '1KiB' }, [long])
    const users = ds.getRepository(UserSchema)
    const all = async (): Promise<number> => (await users.find({ cache: { id: 'all', milliseconds: 60_000 } })).length
    assert.equal(await all(), 1)
    assert.equal(log.warnings.length, 1)
    assert.match(log.warnings[0]!, /maxValueSize/)
    await users.insert({ name: 'bob' })
    assert.equal(await all(), 2, 'nothing was cached')

    const roomy = await openDataSource({ dir }, [long])
    await roomy.ds.getRepository(UserSchema).find({ cache: { id: 'all', milliseconds: 60_000 } })
    await roomy.ds.destroy()
    assert.equal(await all(), 2, 'the entry another process stored is too large here: a miss')
    assert.ok(log.warnings.length >= 3 && log.warnings.slice(1).every((w) => /getStream|maxValueSize/.test(w)), log.warnings.join('\n'))
    await ds.destroy()
  })

  test('a duration of 0 (expired as it is stored, as TypeORM judges it) keeps nothing, and removes the result it replaces', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-typeorm-zero') })
    const { ds } = await openDataSource(cache, ['ann'])
    const users = ds.getRepository(UserSchema)
    await users.find({ cache: { id: 'zero', milliseconds: 60_000 } })
    assert.notEqual(await cache.info('typeorm:id:zero'), undefined)
    const store = (duration: number) =>
      ds.queryResultCache!.storeInCache({ identifier: 'zero', query: 'q', time: Date.now(), duration, result: '[]' }, undefined)
    await store(0)
    await store(-5)
    for (let i = 0; i < 5; i++)
      await ds.queryResultCache!.storeInCache({ query: `q${i}`, time: Date.now(), duration: 0, result: '[]' }, undefined)
    assert.deepEqual(await cache.entries(), [], 'no entry that TypeORM would never serve, nor one that never expires')
    await ds.destroy()
    await cache.close()
  })

  test("a duration that is not a number (a string '5000') is not stored: a warning names the field", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-typeorm-string-ttl') })
    const { ds, log } = await openDataSource(cache, ['ann'])
    const users = ds.getRepository(UserSchema)
    assert.equal(await users.count({ cache: { id: 'text', milliseconds: '5000' as never } }), 1)
    assert.equal(await cache.info('typeorm:id:text'), undefined, "kept 570,000 years, as '5000' was")
    assert.ok(
      log.warnings.length === 1 && /Invalid duration: expected a number, got "5000"/.test(log.warnings[0]!),
      log.warnings.join('\n'),
    )
    await ds.destroy()
    await cache.close()
  })

  test('a duration of Infinity keeps the result for good (TypeORM never judges it expired), with no warning', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-typeorm-forever') })
    const { ds, log } = await openDataSource(cache, ['ann'])
    const users = ds.getRepository(UserSchema)
    const count = async (): Promise<number> => users.count({ cache: { id: 'forever', milliseconds: Infinity } })
    assert.equal(await count(), 1)
    const info = await cache.info('typeorm:id:forever')
    assert.ok(info !== undefined && info.expiresAt === null, JSON.stringify(info))
    await users.insert({ name: 'bob' })
    assert.equal(await count(), 1, 'served by larder')
    assert.deepEqual(log.warnings, [])
    await ds.destroy()
    await cache.close()
  })

  test('a query slower than its duration is cached for its duration from the store (as TypeORM counts it), not from its miss', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-typeorm-slow') })
    const { ds } = await openDataSource(cache, ['ann'])
    // A query that takes 500 ms (one row: the function runs once per execution).
    let runs = 0
    const sqljs = (ds.driver as unknown as { databaseConnection: { create_function(name: string, fn: () => number): void } })
      .databaseConnection
    sqljs.create_function('slow', () => {
      runs++
      const end = Date.now() + 500
      while (Date.now() < end);
      return 1
    })
    const slow = () => ds.getRepository(UserSchema).createQueryBuilder('u').where('slow() = 1').cache('slow', 400).getMany()
    const started = Date.now()
    assert.equal((await slow()).length, 1)
    const info = await cache.info('typeorm:id:slow')
    // Counted from the miss, the entry expired 100 ms before it was stored.
    assert.ok(info?.expiresAt != null && info.expiresAt >= started + 900, JSON.stringify(info))
    assert.equal((await slow()).length, 1)
    assert.equal(runs, 1, 'the second query was served from the cache')
    await ds.destroy()
    await cache.close()
  })

  test('a query that failed (a miss, no store) dates one later result of its flow at most: after a clear(), the second is cached', async () => {
    const { ds } = await openDataSource({ dir: tempDir('larder-typeorm-failed') }, ['ann'])
    // Fails once (a transient error), then counts the runs.
    let runs = 0
    let fail = true
    const sqljs = (ds.driver as unknown as { databaseConnection: { create_function(name: string, fn: () => number): void } })
      .databaseConnection
    sqljs.create_function('flaky', () => {
      runs++
      if (fail) {
        fail = false
        throw new Error('a hiccup')
      }
      return 1
    })
    const flaky = () => ds.getRepository(UserSchema).createQueryBuilder('u').where('flaky() = 1').cache('flaky', 60_000).getMany()
    await assert.rejects(flaky(), /a hiccup/)
    await ds.queryResultCache!.clear()
    runs = 0
    for (let i = 0; i < 5; i++) assert.equal((await flaky()).length, 1)
    // TypeORM reads in this function's context, where the failed read stays: the first store
    // after it cannot tell its own read from that one, so it is dated by the older miss (before
    // the clear(): stale at once). Before, so was every later store: the database ran all five.
    assert.equal(runs, 2, 'the second result was cached and served three times')
    await ds.destroy()
  })

  test('DataSource.destroy() then initialize(): the cache the adapter opened is opened again and serves as before', async () => {
    const { ds, log } = await openDataSource({ dir: tempDir('larder-typeorm-reinit') }, ['ann'])
    const names = async (): Promise<string[]> =>
      (await ds.getRepository(UserSchema).find({ cache: { id: 'all', milliseconds: 60_000 } })).map((u) => u.name)
    assert.deepEqual(await names(), ['ann'])
    await ds.destroy()
    await ds.initialize() // sql.js in memory: a database of its own, with no rows
    assert.deepEqual(await names(), ['ann'], 'served from the cache, open again')
    await ds.queryResultCache!.remove(['all'])
    assert.deepEqual(await names(), [], 'the database answered')
    await ds.getRepository(UserSchema).insert({ name: 'bob' })
    assert.deepEqual(await names(), [], 'cached again')
    assert.deepEqual(log.warnings, [])
    await ds.destroy()
  })

  // Between TypeORM's query and its store: a write, then a removal (another process's).
  const removals = {
    'a clear()': (qrc: QueryResultCache) => qrc.clear(),
    'a remove([id])': (qrc: QueryResultCache) => qrc.remove(['all']),
  }
  for (const [name, remove] of Object.entries(removals)) {
    test(`${name} while a query runs is not undone by the store of its result, which TypeORM makes after it`, async () => {
      const { ds } = await openDataSource({ dir: tempDir('larder-typeorm-race') }, ['ann'])
      const users = ds.getRepository(UserSchema)
      const qrc = ds.queryResultCache!
      const store = qrc.storeInCache.bind(qrc)
      let race = true
      qrc.storeInCache = async (...args) => {
        if (race) {
          race = false
          await users.insert({ name: 'bob' })
          await remove(qrc)
        }
        return store(...args)
      }
      const names = async (): Promise<string[]> =>
        (await users.find({ order: { id: 'ASC' }, cache: { id: 'all', milliseconds: 60_000 } })).map((u) => u.name)
      assert.deepEqual(await names(), ['ann'], 'read before the write')
      assert.deepEqual(await names(), ['ann', 'bob'], 'the result stored after the removal is stale: the database answers')
      assert.deepEqual(await names(), ['ann', 'bob'])
      await ds.destroy()
    })
  }
})

describe('larder/typeorm on PostgreSQL', () => {
  let pg: Postgres | string = 'not started'
  before(async () => {
    pg = await startPostgres()
  })
  after(async () => {
    if (typeof pg !== 'string') await pg.stop()
  })

  contract(() =>
    typeof pg === 'string' ? pg : { type: 'postgres', host: '127.0.0.1', port: pg.port, username: 'postgres', database: 'postgres' },
  )
})
