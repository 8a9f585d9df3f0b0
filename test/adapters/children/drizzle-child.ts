/**
 * Another process on the same libsql file and larder directory: `read URL DIR` prints what a
 * tagged cached query returns (the first process's cached rows, if shared); `insert URL DIR`
 * adds a user through Drizzle, which invalidates the queries that read `users` everywhere.
 */
import { eq } from 'drizzle-orm'
import { openDb, users } from '../drizzle-fixtures.ts'
import { report } from '../processes.ts'

const [action, url, dir] = process.argv.slice(2) as [string, string, string]
const { db, cache } = await openDb(url, { dir })
if (action === 'read') {
  const tagged = await db.select({ name: users.name }).from(users).$withCache({ tag: 'all-names', autoInvalidate: false })
  const uncached = await db.select({ name: users.name }).from(users)
  report({ tagged: tagged.map((u) => u.name), uncached: uncached.map((u) => u.name) })
} else {
  await db.insert(users).values({ name: 'from-child' })
  report({ inserted: (await db.select().from(users).where(eq(users.name, 'from-child'))).length })
}
db.$client.close()
await cache.close()
