/**
 * larder/mikro-orm with the real MikroORM 6 (libsql driver): results cached by the ORM's own
 * keys and by names, clearCache and clear, expiry, a cache opened by you and shared
 * (`LarderCacheAdapter.using`), sharing between processes and across a restart (clearCache and
 * clear from another process included), errors reported through `onError` while the
 * database answers, and a blob column (an ArrayBuffer from libsql), which JSON would have
 * stored as `{}`.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import type { CacheAdapter } from '@mikro-orm/core'
import { EntitySchema, MikroORM as Orm, type MikroORM } from '@mikro-orm/libsql'
import { Larder, isLarderError } from 'larder'
import { LarderCacheAdapter } from 'larder/mikro-orm'
import { tempDir } from '../helpers.ts'
import { runChild } from './processes.ts'
import { namedResultCase, openOrm, UserSchema, type User } from './mikro-orm-fixtures.ts'

describe('larder/mikro-orm on libsql', () => {
  test('a named result is served by larder (stale after a flush) until clearCache; a count of 0 is cached too', () => namedResultCase())

  test("a result under MikroORM's own key (a JSON description, hashed when long) is found again; clear() removes only this adapter's entries", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-mikro-keys') })
    const orm = await openOrm(LarderCacheAdapter.using(cache), {}, ['ann'])
    const long = 'a'.repeat(5000)
    const find = async () => (await orm.em.fork().find(UserSchema, { name: { $ne: long } }, { cache: true })).length
    assert.equal(await find(), 1)
    const em = orm.em.fork()
    em.create(UserSchema, { name: 'bob' } as User)
    await em.flush()
    assert.equal(await find(), 1)
    const keys = (await cache.entries()).map((e) => e.key)
    assert.ok(keys.length === 1 && keys[0]!.startsWith('mikro-orm:sha256:'), keys.join(', '))
    await cache.set('not-mikro-orm', 'kept')
    await orm.config.getResultCacheAdapter().clear()
    assert.equal(await find(), 2)
    assert.equal(await cache.get('not-mikro-orm'), 'kept')
    await orm.close()
    assert.equal(await cache.get('not-mikro-orm'), 'kept', 'orm.close() left the cache passed in open')
    await cache.close()
  })

  test("the expiration (the query's, else resultCache.expiration) is the entry's ttl", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-mikro-ttl') })
    const orm = await openOrm(LarderCacheAdapter.using(cache), {}, ['ann'], 30_000)
    await orm.em.fork().find(UserSchema, {}, { cache: ['default-expiry', undefined as never] })
    await orm.em.fork().find(UserSchema, {}, { cache: ['explicit', 5_000] })
    // Created as of the miss, expiring `expiration` after the store: that and the query's time apart.
    const ttl = async (key: string) => {
      const info = await cache.info(`mikro-orm:${key}`)
      return info?.expiresAt == null ? undefined : Math.round((info.expiresAt - info.createdAt) / 1000) * 1000
    }
    assert.deepEqual([await ttl('default-expiry'), await ttl('explicit')], [30_000, 5_000])
    // An expiry that passes: a 40 ms entry read back by info() could be gone by then on a
    // loaded machine, so this one is judged by what the next query returns.
    await orm.em.fork().find(UserSchema, {}, { cache: ['short', 40] })
    const em = orm.em.fork()
    em.create(UserSchema, { name: 'bob' } as User)
    await em.flush()
    await sleep(80)
    assert.equal((await orm.em.fork().find(UserSchema, {}, { cache: ['short', 40] })).length, 2)
    await orm.close()
    await cache.close()
  })

  test("a query's expiration that is not a number (a string '5000') is not stored: onError hears ERR_INVALID_TTL naming the field", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-mikro-string-ttl') })
    const errors: Error[] = []
    const orm = await openOrm(LarderCacheAdapter.using(cache, { onError: (e) => errors.push(e) }), {}, ['ann'])
    assert.equal((await orm.em.fork().find(UserSchema, {}, { cache: ['text', '5000' as never] })).length, 1)
    assert.equal(await cache.info('mikro-orm:text'), undefined, "kept 570,000 years, as '5000' was")
    assert.deepEqual(
      errors.map((e) => isLarderError(e, 'ERR_INVALID_TTL') && e.field),
      ['expiration'],
    )
    await orm.close()
    await cache.close()
  })

  test("an expiration of Infinity keeps the result for good (as MikroORM's MemoryCacheAdapter), with nothing reported", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-mikro-forever') })
    const errors: Error[] = []
    const orm = await openOrm(LarderCacheAdapter.using(cache, { onError: (error) => errors.push(error) }), {}, ['ann'])
    await orm.em.fork().find(UserSchema, {}, { cache: ['forever', Infinity] })
    const info = await cache.info('mikro-orm:forever')
    assert.ok(info !== undefined && info.expiresAt === null, JSON.stringify(info))
    const em = orm.em.fork()
    em.create(UserSchema, { name: 'bob' } as User)
    await em.flush()
    assert.equal((await orm.em.fork().find(UserSchema, {}, { cache: ['forever', Infinity] })).length, 1, 'served by larder')
    assert.deepEqual(errors, [])
    await orm.close()
    await cache.close()
  })

  test("resultCache.expiration: Infinity is taken (as MikroORM's MemoryCacheAdapter takes it): a result without its own expiration is kept for good", async () => {
    const dir = tempDir('larder-mikro-forever-default')
    const orm = await openOrm(LarderCacheAdapter, { dir }, ['ann'], Infinity)
    await orm.em.fork().find(UserSchema, {}, { cache: ['default-forever', undefined as never] })
    await orm.close()
    const cache = await Larder.open({ dir, serializer: 'v8' })
    const info = await cache.info('mikro-orm:default-forever')
    assert.ok(info !== undefined && info.expiresAt === null, JSON.stringify(info))
    await cache.close()
  })

  test('a query slower than its expiration is cached for its expiration from the store (as MikroORM counts it), not from its miss', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-mikro-slow') })
    const orm = await openOrm(LarderCacheAdapter.using(cache), {}, ['ann'])
    // Every select takes 500 ms.
    const connection = orm.em.getConnection() as unknown as { execute: (...args: unknown[]) => Promise<unknown> }
    const execute = connection.execute.bind(connection)
    let selects = 0
    connection.execute = async (...args) => {
      if (/^select/i.test(String(args[0]))) {
        selects++
        await sleep(500)
      }
      return execute(...args)
    }
    const find = async () => (await orm.em.fork().find(UserSchema, {}, { cache: ['slow', 400] })).length
    const started = Date.now()
    assert.equal(await find(), 1)
    const info = await cache.info('mikro-orm:slow')
    // Counted from the miss, the entry expired 100 ms before it was stored.
    assert.ok(info?.expiresAt != null && info.expiresAt >= started + 900, JSON.stringify(info))
    assert.equal(await find(), 1)
    assert.equal(selects, 1, 'the second find was served from the cache')
    await orm.close()
    await cache.close()
  })

  test('orm.close() then orm.connect(): the cache the adapter opened is opened again and serves as before', async () => {
    const errors: Error[] = []
    const orm = await openOrm(LarderCacheAdapter, { dir: tempDir('larder-mikro-reconnect'), onError: (e: Error) => errors.push(e) }, [
      'ann',
    ])
    const names = async () => (await orm.em.fork().find(UserSchema, {}, { cache: ['users', 60_000] })).map((u) => u.name)
    assert.deepEqual(await names(), ['ann'])
    await orm.close()
    await orm.connect() // libsql in memory: a database of its own, without the table
    assert.deepEqual(await names(), ['ann'], 'served from the cache, open again')
    await orm.config.getResultCacheAdapter().set('more', [1], '', 60_000)
    assert.deepEqual(await orm.config.getResultCacheAdapter().get('more'), [1], 'stored again')
    assert.deepEqual(errors, [])
    await orm.close()
  })

  test("an expiration of 0 (the query's, else resultCache.expiration) keeps nothing, as MikroORM's MemoryCacheAdapter, where it expires at once", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-mikro-zero') })
    for (const [expiration, option] of [
      [60_000, ['zero', 0]],
      [0, true],
    ] as const) {
      const orm = await openOrm(LarderCacheAdapter.using(cache), {}, ['ann'], expiration)
      const count = async () => (await orm.em.fork().find(UserSchema, {}, { cache: option as never })).length
      assert.equal(await count(), 1)
      const em = orm.em.fork()
      em.create(UserSchema, { name: 'bob' } as User)
      await em.flush()
      assert.equal(await count(), 2, `cache: ${JSON.stringify(option)} with expiration ${expiration}: the database answered`)
      await orm.close()
    }
    assert.deepEqual(await cache.entries(), [], 'nothing stored')
    await cache.close()
  })

  test('cached results survive a restart and are shared with another process (which has other rows)', { timeout: 60_000 }, async () => {
    const dir = tempDir('larder-mikro-procs')
    const orm = await openOrm(LarderCacheAdapter, { dir }, ['ann', 'bob'])
    const em = orm.em.fork()
    await em.find(UserSchema, {}, { orderBy: { id: 'asc' }, cache: ['all-users', 60_000] })
    await em.find(UserSchema, { name: 'ann' }, { cache: 60_000 })
    await em.count(UserSchema, {}, { cache: ['count', 60_000] })
    await orm.close()
    assert.deepEqual(await runChild('mikro-orm-child.ts', 'read', dir), {
      named: ['ann', 'bob'],
      byQuery: ['ann'],
      count: 2,
      uncached: ['zed'],
    })
  })

  test('clearCache(key) and clear() called in another process reach this one', { timeout: 60_000 }, async () => {
    const dir = tempDir('larder-mikro-invalidate')
    const orm = await openOrm(LarderCacheAdapter, { dir }, ['ann', 'bob'])
    const named = async () =>
      (await orm.em.fork().find(UserSchema, {}, { orderBy: { id: 'asc' }, cache: ['all-users', 60_000] })).map((u) => u.name)
    const anns = async () => (await orm.em.fork().find(UserSchema, { name: 'ann' }, { cache: 60_000 })).length
    assert.deepEqual(await named(), ['ann', 'bob'])
    assert.equal(await anns(), 1)
    const em = orm.em.fork()
    em.create(UserSchema, { name: 'cid' } as User)
    em.create(UserSchema, { name: 'ann' } as User)
    await em.flush()
    assert.deepEqual(await named(), ['ann', 'bob'], 'served from the cache')
    assert.equal(await anns(), 1, 'served from the cache')
    assert.deepEqual(
      await runChild('mikro-orm-child.ts', 'invalidate', dir),
      { cached: ['ann', 'bob'] },
      'the other process was answered from the shared cache',
    )
    assert.deepEqual(await named(), ['ann', 'bob', 'cid', 'ann'], 'its clearCache reached this process')
    assert.equal(await anns(), 2, 'its clear() reached this process')
    await orm.close()
  })

  test('a failing disk: the database answers, onError hears of it, nothing throws', async () => {
    const dir = path.join(tempDir('larder-mikro-disk'), 'cache')
    const errors: Error[] = []
    const orm = await openOrm(
      LarderCacheAdapter,
      { dir, breaker: { volumeThreshold: 2, resetTimeout: 60_000 }, onError: (e: Error) => errors.push(e) },
      ['ann'],
    )
    assert.equal((await orm.em.fork().find(UserSchema, {}, { cache: ['all', 60_000] })).length, 1)
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    const em = orm.em.fork()
    em.create(UserSchema, { name: 'bob' } as User)
    await em.flush()
    assert.equal((await orm.em.fork().find(UserSchema, {}, { cache: ['all', 60_000] })).length, 2)
    await orm.em.fork().clearCache('all')
    await orm.config.getResultCacheAdapter().clear()
    assert.ok(errors.length >= 1 && errors.every((e) => isLarderError(e, 'ERR_UNAVAILABLE')), errors.map(String).join('; '))
    await orm.close()
  })

  test('a result larder cannot store, or one too large to read, reaches onError; the query is answered by the database', async () => {
    const dir = tempDir('larder-mikro-bad-values')
    const errors: Error[] = []
    const long = 'x'.repeat(4096)
    const orm = await openOrm(LarderCacheAdapter, { dir, maxValueSize: '1KiB', onError: (e: Error) => errors.push(e) }, [long])
    const all = async () => (await orm.em.fork().find(UserSchema, {}, { cache: ['all', 60_000] })).length
    assert.equal(await all(), 1)
    assert.ok(isLarderError(errors[0], 'ERR_TOO_LARGE'), String(errors[0]))
    const roomy = await openOrm(LarderCacheAdapter, { dir }, [long, long])
    await roomy.em.fork().find(UserSchema, {}, { cache: ['all', 60_000] })
    await roomy.close()
    assert.equal(await all(), 1, 'the entry the other ORM stored (2 rows) is too large here: a miss')
    assert.ok(isLarderError(errors.at(-1), 'ERR_TOO_LARGE'), String(errors.at(-1)))
    await orm.close()
  })

  // Between MikroORM's query and its store: a write, then a removal (another process's).
  const removals = {
    'a clear()': (orm: MikroORM, adapter: CacheAdapter) => adapter.clear(),
    'a clearCache(key)': (orm: MikroORM) => orm.em.fork().clearCache('users'),
  }
  for (const [name, remove] of Object.entries(removals)) {
    test(`${name} while a query runs is not undone by the store of its result, which MikroORM makes after it`, async () => {
      const orm = await openOrm(LarderCacheAdapter, { dir: tempDir('larder-mikro-race') }, ['ann'])
      const adapter = orm.config.getResultCacheAdapter()
      const store = adapter.set.bind(adapter)
      let race = true
      adapter.set = async (...args) => {
        if (race) {
          race = false
          const em = orm.em.fork()
          em.create(UserSchema, { name: 'bob' } as User)
          await em.flush()
          await remove(orm, adapter)
        }
        return store(...args)
      }
      const names = async () =>
        (await orm.em.fork().find(UserSchema, {}, { orderBy: { id: 'asc' }, cache: ['users', 60_000] })).map((u) => u.name)
      assert.deepEqual(await names(), ['ann'], 'read before the write')
      assert.deepEqual(await names(), ['ann', 'bob'], 'the result stored after the removal is stale: the database answers')
      assert.deepEqual(await names(), ['ann', 'bob'])
      await orm.close()
    })
  }

  test('a blob column comes back as its bytes from a cache the adapter opened (v8); a JSON cache passed in does not cache it, and onError hears why', async () => {
    interface Doc {
      id: number
      bin: Buffer
    }
    const DocSchema = new EntitySchema<Doc>({
      name: 'Doc',
      tableName: 'docs',
      properties: { id: { type: 'number', primary: true }, bin: { type: 'blob' } },
    })
    const json = await Larder.open({ dir: tempDir('larder-mikro-json') })
    for (const name of ['opened by the adapter', 'a json cache passed in']) {
      const errors: Error[] = []
      const adapter =
        name === 'opened by the adapter' ? LarderCacheAdapter : LarderCacheAdapter.using(json, { onError: (e) => errors.push(e) })
      const orm = await Orm.init({
        dbName: ':memory:',
        entities: [DocSchema],
        resultCache: {
          adapter: adapter,
          expiration: 60_000,
          options: { dir: tempDir('larder-mikro-blob'), onError: (e: Error) => errors.push(e) },
        },
        allowGlobalContext: true,
        debug: false,
      })
      await orm.schema.createSchema()
      const em = orm.em.fork()
      em.create(DocSchema, { id: 1, bin: Buffer.from('hi') } as Doc)
      await em.flush()
      const bytes = async () => {
        const [doc] = await orm.em.fork().find(DocSchema, {}, { cache: ['docs', 60_000] })
        return Buffer.from(doc!.bin).toString()
      }
      assert.equal(await bytes(), 'hi', `${name}: the database's answer`)
      assert.equal(await bytes(), 'hi', `${name}: the second read (before: {} from the cache)`)
      if (adapter === LarderCacheAdapter) assert.deepEqual(errors, [], name)
      else
        assert.ok(
          errors.some((e) => isLarderError(e, 'ERR_SERIALIZE') && /ArrayBuffer/.test(e.message)),
          errors.map(String).join('; '),
        )
      await orm.close()
    }
    await json.close()
  })
})

test('an expiration that is not milliseconds is ERR_INVALID_OPTION naming the field, thrown by the constructor', () => {
  for (const bad of [-5, Number.NaN, '1m']) {
    assert.throws(
      () => new LarderCacheAdapter({ dir: tempDir('larder-mikro-options'), expiration: bad as number }),
      (error: unknown) => isLarderError(error, 'ERR_INVALID_OPTION') && error.field === 'expiration',
    )
  }
})
