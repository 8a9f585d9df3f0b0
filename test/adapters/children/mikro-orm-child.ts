/**
 * A process with its own database holding only `zed`, whose MikroORM result cache is the
 * larder directory given: `read DIR` prints what cached queries return (the other process's
 * results, when the cache is shared); `invalidate DIR` prints what the result named
 * `all-users` is, then calls `clearCache('all-users')` and the adapter's `clear()`.
 */
import { LarderCacheAdapter } from 'larder/mikro-orm'
import { openOrm, UserSchema } from '../mikro-orm-fixtures.ts'
import { report } from '../processes.ts'

const [action, dir] = process.argv.slice(2) as [string, string]
const orm = await openOrm(LarderCacheAdapter, { dir }, ['zed'])
const em = orm.em.fork()
if (action === 'invalidate') {
  const cached = (await em.find(UserSchema, {}, { orderBy: { id: 'asc' }, cache: ['all-users', 60_000] })).map((u) => u.name)
  await em.clearCache('all-users')
  await orm.config.getResultCacheAdapter().clear()
  report({ cached })
} else
  report({
    named: (await em.find(UserSchema, {}, { orderBy: { id: 'asc' }, cache: ['all-users', 60_000] })).map((u) => u.name),
    byQuery: (await em.find(UserSchema, { name: 'ann' }, { cache: 60_000 })).map((u) => u.name),
    count: await em.count(UserSchema, {}, { cache: ['count', 60_000] }),
    uncached: (await em.find(UserSchema, {})).map((u) => u.name),
  })
await orm.close()
