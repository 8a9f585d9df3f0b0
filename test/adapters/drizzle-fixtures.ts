/** The Drizzle schema and database (libsql, a driver that honours `cache`) of the drizzle tests. */
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql'
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { LarderDrizzleCache, type CacheOrOptions, type LarderDrizzleCacheOptions } from 'larder/drizzle'

export const users = sqliteTable('users', { id: integer('id').primaryKey(), name: text('name').notNull() })
export const posts = sqliteTable('posts', {
  id: integer('id').primaryKey(),
  userId: integer('user_id').notNull(),
  title: text('title').notNull(),
})

export type Db = LibSQLDatabase & { $client: { close(): void } }

/** A libsql database at `url` (created with both tables if new) cached by larder. */
export async function openDb(
  url: string,
  cache: CacheOrOptions,
  options?: LarderDrizzleCacheOptions & { intMode?: 'number' | 'bigint' },
): Promise<{ db: Db; cache: LarderDrizzleCache }> {
  // No second stamp unless a test asks for one: at its default (1 s) it made the queries of
  // a table written a second earlier stale, and a test that took that long on a loaded machine
  // found its cached results gone.
  const larder = new LarderDrizzleCache(cache, { invalidateAgainAfter: 0, ...options })
  const db = drizzle({ connection: { url, intMode: options?.intMode ?? 'number' }, cache: larder }) as unknown as Db
  await db.run('create table if not exists users (id integer primary key, name text not null)')
  await db.run('create table if not exists posts (id integer primary key, user_id integer not null, title text not null)')
  return { db, cache: larder }
}
