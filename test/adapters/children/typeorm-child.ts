/**
 * A process with its own database (sql.js, in memory) holding only `zed`, whose TypeORM query
 * cache is the larder directory given: `read DIR` prints what cached queries return, which
 * is the other process's rows when the cache is shared.
 */
import { openDataSource, UserSchema } from '../typeorm-fixtures.ts'
import { report } from '../processes.ts'

const [, dir] = process.argv.slice(2) as [string, string]
const { ds } = await openDataSource({ dir }, ['zed'])
const users = ds.getRepository(UserSchema)
report({
  byId: (await users.find({ order: { id: 'ASC' }, cache: { id: 'all-users', milliseconds: 60_000 } })).map((u) => u.name),
  byQuery: (await users.find({ where: { name: 'ann' }, cache: 60_000 })).map((u) => u.name),
  uncached: (await users.find()).map((u) => u.name),
})
await ds.destroy()
