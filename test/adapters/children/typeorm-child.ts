/**
 * A second process whose TypeORM query cache is the larder directory given.
 *   `read DIR`: its own database (sql.js, in memory) holds only `zed`; prints what cached
 *     queries return, which is the other process's rows when the cache is shared.
 *   `invalidate DIR CONNECTION`: on the database CONNECTION (JSON DataSource options; rows left
 *     as they are) prints what the query cached as `all-users` returns, then calls
 *     `remove(['all-users'])` and `clear()`, as an application would after a write.
 */
import type { DataSourceOptions } from 'typeorm'
import { openDataSource, UserSchema } from '../typeorm-fixtures.ts'
import { report } from '../processes.ts'

const [action, dir, connection] = process.argv.slice(2) as [string, string, string | undefined]
const { ds } =
  action === 'read'
    ? await openDataSource({ dir }, ['zed'])
    : await openDataSource({ dir }, null, JSON.parse(connection ?? '{}') as Partial<DataSourceOptions>)
const users = ds.getRepository(UserSchema)
const byId = async (): Promise<string[]> =>
  (await users.find({ order: { id: 'ASC' }, cache: { id: 'all-users', milliseconds: 60_000 } })).map((u) => u.name)
if (action === 'read') {
  report({
    byId: await byId(),
    byQuery: (await users.find({ where: { name: 'ann' }, cache: 60_000 })).map((u) => u.name),
    uncached: (await users.find()).map((u) => u.name),
  })
} else {
  const cached = await byId()
  await ds.queryResultCache!.remove(['all-users'])
  await ds.queryResultCache!.clear()
  report({ cached })
}
await ds.destroy()
