/** The MikroORM entity and ORM (libsql driver) of the mikro-orm tests, for MikroORM 6 (the
 *  root's) and, given its driver module, MikroORM 7 (test/adapters/mikro-orm-7.test.ts). */
import assert from 'node:assert/strict'
import * as libsql6 from '@mikro-orm/libsql'
import type { EntitySchema, MikroORM } from '@mikro-orm/libsql'
import type { CacheAdapter } from '@mikro-orm/core'
import { LarderCacheAdapter } from 'larder/mikro-orm'
import { tempDir } from '../helpers.ts'

export interface User {
  id: number
  name: string
}

/** A driver module as these tests use it: typed by MikroORM 6's declarations, which describe
 *  MikroORM 7's as far as these tests go (its schema's `createSchema` is `create` in 7). */
export type LibsqlModule = Pick<typeof libsql6, 'MikroORM' | 'EntitySchema'>

/** One MikroORM version: its driver and the tests' entity made with it. */
export interface OrmKit {
  MikroORM: LibsqlModule['MikroORM']
  UserSchema: EntitySchema<User>
}

export function kitOf(driver: LibsqlModule): OrmKit {
  const UserSchema = new driver.EntitySchema<User>({
    name: 'User',
    tableName: 'users',
    properties: {
      id: { type: 'number', primary: true },
      name: { type: 'string' },
    },
  })
  return { MikroORM: driver.MikroORM, UserSchema }
}

export const v6 = kitOf(libsql6)
export const UserSchema = v6.UserSchema

/** An ORM over a fresh in-memory database holding `names`, whose result cache is `adapter`. */
export async function openOrm(
  adapter: new (options: never) => CacheAdapter,
  options: Record<string, unknown>,
  names: string[],
  expiration = 60_000,
  kit: OrmKit = v6,
): Promise<MikroORM> {
  const orm = await kit.MikroORM.init({
    dbName: ':memory:',
    entities: [kit.UserSchema],
    resultCache: { adapter: adapter as never, expiration, options },
    allowGlobalContext: true,
    debug: false,
  })
  const schema = orm.schema as unknown as { create?: () => Promise<void>; createSchema: () => Promise<void> }
  await (schema.create ?? schema.createSchema).call(schema)
  const em = orm.em.fork()
  for (const name of names) em.create(kit.UserSchema, { name } as User)
  await em.flush()
  return orm
}

/** Both versions' first case: a named result is served by larder (stale after a flush) until
 *  clearCache; a count of 0 is cached too. */
export async function namedResultCase(kit: OrmKit = v6): Promise<void> {
  const { UserSchema } = kit
  const orm = await openOrm(LarderCacheAdapter, { dir: tempDir('larder-mikro-named') }, ['ann'], 60_000, kit)
  const names = async () =>
    (await orm.em.fork().find(UserSchema, {}, { orderBy: { id: 'asc' }, cache: ['users', 60_000] })).map((u) => u.name)
  const zeds = () => orm.em.fork().count(UserSchema, { name: 'zed' }, { cache: ['zeds', 60_000] })
  assert.deepEqual(await names(), ['ann'])
  assert.equal(await zeds(), 0)
  const em = orm.em.fork()
  em.create(UserSchema, { name: 'zed' } as User)
  await em.flush()
  assert.deepEqual(await names(), ['ann'], 'served from the cache')
  assert.equal(await zeds(), 0, 'a cached 0 is a hit, not a miss')
  await orm.em.fork().clearCache('users')
  await orm.em.fork().clearCache('zeds')
  assert.deepEqual(await names(), ['ann', 'zed'])
  assert.equal(await zeds(), 1)
  await orm.close()
}
