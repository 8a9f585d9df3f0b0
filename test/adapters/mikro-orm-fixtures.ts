/** The MikroORM entity and ORM (libsql driver) of the mikro-orm tests. */
import { EntitySchema, MikroORM } from '@mikro-orm/libsql'
import type { CacheAdapter } from '@mikro-orm/core'

export interface User {
  id: number
  name: string
}

export const UserSchema = new EntitySchema<User>({
  name: 'User',
  tableName: 'users',
  properties: {
    id: { type: 'number', primary: true },
    name: { type: 'string' },
  },
})

/** An ORM over a fresh in-memory database holding `names`, whose result cache is `adapter`. */
export async function openOrm(
  adapter: new (options: never) => CacheAdapter,
  options: Record<string, unknown>,
  names: string[],
  expiration = 60_000,
): Promise<MikroORM> {
  const orm = await MikroORM.init({
    dbName: ':memory:',
    entities: [UserSchema],
    resultCache: { adapter: adapter as never, expiration, options },
    allowGlobalContext: true,
    debug: false,
  })
  await orm.schema.createSchema()
  const em = orm.em.fork()
  for (const name of names) em.create(UserSchema, { name } as User)
  await em.flush()
  return orm
}
