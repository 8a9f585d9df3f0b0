/**
 * larder/drizzle on a real PostgreSQL server through Drizzle's node-postgres driver: its
 * results (pg's `Result`, a class holding row parsers) are cached, and tables in a `pgSchema`
 * or named by a table creator are invalidated by the table objects an app passes, as by the
 * names Drizzle tags their selects with (`app.items`, the name before the creator's prefix).
 * Each test writes its table and reads it at once, so the caches here stamp once only
 * (`invalidateAgainAfter: 0`): with a second stamp due, this process stores no result of a
 * table it just wrote (a select inside a transaction that rolls back must not be cached).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { eq, sql } from 'drizzle-orm'
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import { integer, jsonb, pgSchema, pgTableCreator, text } from 'drizzle-orm/pg-core'
import { Larder } from 'larder'
import { LarderDrizzleCache } from 'larder/drizzle'
import { tempDir } from '../helpers.ts'
import { startPostgres, type Postgres } from './postgres.ts'

const app = pgSchema('app')
const items = app.table('items', { id: integer('id').primaryKey(), name: text('name').notNull() })
const prefixed = pgTableCreator((name) => `shop_${name}`)
const orders = prefixed('orders', { id: integer('id').primaryKey(), name: text('name').notNull() })
const documents = app.table('documents', { id: integer('id').primaryKey(), data: jsonb('data') })

describe('larder/drizzle on PostgreSQL (node-postgres)', () => {
  let server: Postgres | string = 'not started'
  before(async () => {
    server = await startPostgres()
  })
  after(async () => {
    if (typeof server !== 'string') await server.stop()
  })

  /** A Drizzle database over a pool that counts the queries reaching PostgreSQL. */
  function open(t: { skip(reason: string): void }, cache: LarderDrizzleCache) {
    if (typeof server === 'string') {
      t.skip(server)
      return undefined
    }
    const db = drizzle({ connection: { host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres', max: 2 }, cache })
    const pool = db.$client as unknown as { query: (...args: unknown[]) => unknown; end(): Promise<void> }
    const counted = { queries: 0 }
    const query = pool.query.bind(pool)
    pool.query = (...args: unknown[]) => {
      counted.queries++
      return query(...args)
    }
    return { db: db as NodePgDatabase, pool, counted }
  }

  test("a cached select is answered from larder (pg's Result is stored as its data), also with rows as arrays", async (t) => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-pg-result') })
    const errors: Error[] = []
    const opened = open(t, new LarderDrizzleCache(larder, { invalidateAgainAfter: 0, onError: (e) => errors.push(e) }))
    if (opened === undefined) return
    const { db, pool, counted } = opened
    await db.execute(
      sql`create schema if not exists app; drop table if exists app.items; create table app.items (id int primary key, name text not null)`,
    )
    await db.insert(items).values([
      { id: 1, name: 'one' },
      { id: 2, name: 'two' },
    ])
    const before = counted.queries
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await db.select().from(items).orderBy(items.id).$withCache(), [
        { id: 1, name: 'one' },
        { id: 2, name: 'two' },
      ])
      // a partial select: node-postgres asks for rows as arrays
      assert.deepEqual(await db.select({ name: items.name }).from(items).where(eq(items.id, 2)).$withCache(), [{ name: 'two' }])
    }
    assert.equal(counted.queries - before, 2, 'one query per distinct select, the rest from larder')
    assert.deepEqual(errors, [])
    await pool.end()
    await larder.close()
  })

  test('a jsonb cell with a "length" key comes back from larder as it was stored (it was read as an array; a huge length ran the process out of memory)', async (t) => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-pg-jsonb') })
    const errors: Error[] = []
    const opened = open(t, new LarderDrizzleCache(larder, { strategy: 'all', invalidateAgainAfter: 0, onError: (e) => errors.push(e) }))
    if (opened === undefined) return
    const { db, pool, counted } = opened
    await db.execute(
      sql`create schema if not exists app; drop table if exists app.documents; create table app.documents (id int primary key, data jsonb)`,
    )
    const rows = [
      { id: 1, data: { length: 2, unit: 'm' } },
      { id: 2, data: { length: 300_000_000 } },
      { id: 3, data: [1, 2] },
    ]
    await db.insert(documents).values(rows)
    const before = counted.queries
    for (let i = 0; i < 3; i++) assert.deepEqual(await db.select().from(documents).orderBy(documents.id), rows, `read ${i}`)
    assert.equal(counted.queries - before, 1, 'the later reads came from larder')
    assert.deepEqual(errors, [])
    await pool.end()
    await larder.close()
  })

  test('$cache.invalidate({ tables }) with a pgSchema table object or a table creator\u2019s table reaches the queries that read it', async (t) => {
    const larder = await Larder.open({ dir: tempDir('larder-drizzle-pg-names') })
    const opened = open(t, new LarderDrizzleCache(larder, { invalidateAgainAfter: 0 }))
    if (opened === undefined) return
    const { db, pool } = opened
    await db.execute(
      sql`create schema if not exists app; drop table if exists app.items; create table app.items (id int primary key, name text not null);
          drop table if exists shop_orders; create table shop_orders (id int primary key, name text not null)`,
    )
    await db.insert(items).values({ id: 1, name: 'old' })
    await db.insert(orders).values({ id: 1, name: 'old' })
    const read = async () => ({
      item: (await db.select().from(items).$withCache())[0]?.name,
      order: (await db.select().from(orders).$withCache())[0]?.name,
    })
    assert.deepEqual(await read(), { item: 'old', order: 'old' })
    // raw SQL bypasses Drizzle's cache: the app tells it which tables changed
    await db.execute(sql`update app.items set name = 'new'; update shop_orders set name = 'new'`)
    assert.deepEqual(await read(), { item: 'old', order: 'old' }, 'cached until invalidated')
    await db.$cache.invalidate({ tables: [items, orders] })
    assert.deepEqual(await read(), { item: 'new', order: 'new' })
    // and Drizzle's own write to each
    await db.update(items).set({ name: 'newer' })
    await db.update(orders).set({ name: 'newer' })
    assert.deepEqual(await read(), { item: 'newer', order: 'newer' })
    await pool.end()
    await larder.close()
  })
})
