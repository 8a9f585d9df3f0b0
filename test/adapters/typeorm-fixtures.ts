/** The TypeORM entity and DataSource the typeorm tests (and their child process) use. */
import { DataSource, EntitySchema, type DataSourceOptions, type Logger } from 'typeorm'
import { LarderQueryResultCache } from 'larder/typeorm'
import type { CacheOrOptions } from 'larder/typeorm'

export interface User {
  id: number
  name: string
}

export const UserSchema = new EntitySchema<User>({
  name: 'User',
  tableName: 'users',
  columns: {
    id: { type: Number, primary: true, generated: true },
    name: { type: String },
  },
})

/** Collects the DataSource's warnings (where the adapter reports what went wrong). */
export class WarningLog implements Logger {
  readonly warnings: string[] = []
  logQuery(): void {}
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    if (level === 'warn') this.warnings.push(String(message))
  }
}

/** A DataSource (sql.js in memory unless `connection` says otherwise) whose query result cache
 *  is larder, its users table holding `names` (`null`: the rows already there, for a second
 *  process on a shared database). */
export async function openDataSource(
  cache: CacheOrOptions,
  names: string[] | null,
  connection?: Partial<DataSourceOptions>,
): Promise<{ ds: DataSource; log: WarningLog }> {
  const log = new WarningLog()
  const ds = new DataSource({
    type: 'sqljs',
    ...connection,
    entities: [UserSchema],
    synchronize: true,
    logger: log,
    cache: { provider: (dataSource) => new LarderQueryResultCache(dataSource, cache), duration: 60_000 },
  } as DataSourceOptions)
  await ds.initialize()
  if (names === null) return { ds, log }
  const users = ds.getRepository(UserSchema)
  await users.clear()
  for (const name of names) await users.insert({ name })
  return { ds, log }
}
