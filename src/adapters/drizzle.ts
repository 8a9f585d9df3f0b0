import { Cache } from 'drizzle-orm/cache/core'
import type { MutationOption } from 'drizzle-orm/cache/core'
import type { CacheConfig } from 'drizzle-orm/cache/core/types'
import { entityKind, getTableName, type Table } from 'drizzle-orm'
import { LarderError, type Duration } from 'larder'
import { boundedKey, KEY_BYTES, TAG_BYTES } from './bounded-key.js'
import { hostNumber, MissTimes, ttlFromStore, ttlUntil } from './miss-times.js'
import { CacheSource, withV8Default, type CacheOrOptions } from './cache-source.js'
import { InvalidateAgain } from './invalidate-again.js'
import { parseDuration } from '../options.js'

export type { CacheOrOptions }

export interface LarderDrizzleCacheOptions {
  /** `'explicit'` (default): only selects marked `.$withCache()` are cached. `'all'`: every
   *  select is, unless marked `.$withCache(false)`. */
  strategy?: 'explicit' | 'all'
  /** How long a result is kept when the query's `config` says nothing (`ex`, `px`, `exat`,
   *  `pxat`). Default: the cache's `defaultTtl` (never, unless set). */
  ttl?: Duration
  /** Hears what went wrong (a failing disk, a result larder cannot store or return): Drizzle
   *  has no error channel for caches, and a throw from one fails the query. Default: a
   *  process warning (`process.emitWarning`). The query itself is answered by the database. */
  onError?: (error: Error) => void
  /** How long after a write its tables are invalidated a second time (default `'1s'`; `0`:
   *  never). Drizzle reports a write beside its statement, and inside a transaction long before
   *  COMMIT: a select another process ran in between read the old rows and cached them as
   *  fresh. The second stamp makes that result stale everywhere. */
  invalidateAgainAfter?: Duration
}

/**
 * Drizzle's query cache (drizzle-orm ≥ 0.44) in larder:
 * `drizzle({ …, cache: new LarderDrizzleCache(options | cache, { strategy }) })`.
 *
 * A cached select is stored under its hash (`drizzle:query:<sha256>`, the key Drizzle computes)
 * or its `tag` (`drizzle:tag:<tag>`), tagged in larder with every table it read
 * (`drizzle:table:<name>`). Every insert, update and delete makes Drizzle call `onMutate` with
 * the tables it wrote: those tags are invalidated, so every cached query that read them is
 * stale in every process sharing the cache, at the cost of one small file per table.
 * `db.$cache.invalidate({ tags })` removes tagged queries and stamps their larder tag
 * (`drizzle:tag:<tag>`), so a tagged query that read before it is not cached over it.
 *
 * Drivers hand over raw rows: libsql's `Row`s hold their values under non-enumerable indices,
 * which serializers drop (JSON gives `{}`), so array-like rows are stored as arrays, which is
 * how Drizzle reads them. Opened from options, the cache defaults to the `v8` serializer,
 * which keeps `Date`, `BigInt` and binary values; a cache passed in keeps its own (with `json`,
 * a result holding a `BigInt` is not cached and `onError` hears why).
 */
export class LarderDrizzleCache extends Cache {
  readonly #source: CacheSource
  readonly #strategy: 'explicit' | 'all'
  readonly #ttl: number | undefined
  /** Each key's last miss, for its put: a write to one of its tables between the select's
   *  query and its put makes the result stale at once (without it, the old rows were cached). */
  readonly #missed = new MissTimes()
  /** Each write's tables, stamped again once the write has most likely landed. */
  readonly #again: InvalidateAgain

  constructor(cache?: CacheOrOptions, options: LarderDrizzleCacheOptions = {}) {
    super()
    const { strategy = 'explicit', ttl, onError = (error: Error) => process.emitWarning(error), invalidateAgainAfter = '1s' } = options
    if (strategy !== 'explicit' && strategy !== 'all') {
      throw new LarderError('ERR_INVALID_OPTION', `Invalid strategy: expected 'explicit' or 'all', got ${String(strategy)}`, {
        field: 'strategy',
      })
    }
    this.#strategy = strategy
    this.#ttl = ttl === undefined ? undefined : milliseconds(ttl, 'ttl') // a typo refused here, not at every put
    this.#source = new CacheSource(withV8Default(cache), onError)
    // A stamp made on a timer: refused (failOpen: false), it is reported, not thrown to no one.
    this.#again = new InvalidateAgain(milliseconds(invalidateAgainAfter, 'invalidateAgainAfter'), (tags) =>
      this.#source.guarded(undefined, (opened) => opened.invalidateTags(tags)).catch((error: unknown) => this.#source.report(error)),
    )
  }

  strategy(): 'explicit' | 'all' {
    return this.#strategy
  }

  /** The cached result for a query's hash or tag, or `undefined` (never throws: a miss). */
  override async get(key: string, _tables: string[], isTag: boolean, _isAutoInvalidate?: boolean): Promise<unknown[] | undefined> {
    const name = resultKey(key, isTag)
    const read = this.#missed.begin(name)
    let asked: number | undefined
    const found = await this.#source.guarded(undefined, async (cache) => {
      asked = cache.now()
      const result = (await cache.get(name)) as unknown[] | undefined
      // The memory tier answers every hit with the one result it holds (see ownBytes).
      return result === undefined || cache.options.memory === false ? result : (ownBytes(result, 0) as unknown[])
    })
    if (found === undefined && asked !== undefined) this.#missed.missed(name, asked, read)
    return found
  }

  /** Stores a result, tagged with the tables it read (none when the query opted out of
   *  invalidation). A result larder cannot store is reported, not thrown. */
  override async put(key: string, response: unknown, tables: string[], isTag: boolean, config?: CacheConfig): Promise<void> {
    const name = resultKey(key, isTag)
    const readAt = this.#missed.take(name)
    // A table this process wrote whose write may not have landed: a select inside the writing
    // transaction reads rows a rollback may take back (rows that never existed, cached for
    // every process), so its result is not stored until the write's second stamp.
    if (this.#again.due(tables.map(tableTag))) return
    if (keepsNothing(config)) {
      // `px: 0`, `ex: 0`, a negative one, or an end already past: the result expires as it is
      // put (Redis's HEXPIRE removes such a field). Passed on, 0 was larder's "never" (kept
      // for good) and the rest a dead file kept until a prune. Nothing is kept, and the result
      // it would replace goes too, as the TypeORM and MikroORM adapters do with 0.
      await this.#source.guarded(undefined, async (cache) => {
        await cache.delete(name)
      })
      return
    }
    await this.#source.guarded(undefined, (cache) =>
      cache.set(name, storable(response), {
        // Counted from the put (exat and pxat: ending then), not from the miss: a query slower
        // than its ttl is still cached. The creation time stays the miss.
        ttl: ttlOf(config, readAt) ?? ttlFromStore(this.#ttl ?? cache.options.defaultTtl, readAt),
        // A tagged result carries its tag too: `invalidate({ tags })` stamps it, so the put of
        // a query that read before it is stale at once (a delete alone leaves nothing for the
        // put's readAt to be older than).
        tags: isTag ? [...tables.map(tableTag), queryTag(key)] : tables.map(tableTag),
        readAt,
      }),
    )
  }

  /** A write to `tables` (or `db.$cache.invalidate`): the queries that read them, and those
   *  cached under `tags`, are gone for every process. */
  override async onMutate(params: MutationOption): Promise<void> {
    const tags = params.tags === undefined ? [] : Array.isArray(params.tags) ? params.tags : [params.tags]
    const tables = params.tables === undefined ? [] : Array.isArray(params.tables) ? params.tables : [params.tables]
    const tableTags = [...new Set(tables.map((table) => (typeof table === 'string' ? table : usedTableName(table))))].map(tableTag)
    this.#again.ask(tableTags)
    await this.#source.guarded(undefined, async (cache) => {
      await Promise.all([
        tableTags.length > 0 ? cache.invalidateTags(tableTags) : undefined,
        tags.length > 0 ? cache.invalidateTags(tags.map(queryTag)) : undefined,
        tags.length > 0 ? cache.deleteMany(tags.map((tag) => resultKey(tag, true))) : undefined, // its space back now
      ])
    })
  }

  /** Makes the second stamps still due, waits for its calls in flight, then closes the cache
   *  if this adapter opened it. */
  async close(): Promise<void> {
    await this.#again.flush()
    await this.#source.close()
  }
}

/** The name Drizzle tags a table's selects with (each dialect's `extractUsedTable`), which a
 *  table object given to `onMutate` or `$cache.invalidate({ tables })` must stamp: the name
 *  before a table creator's prefix, qualified by its schema for PostgreSQL only. Not
 *  `getTableName`, which gives the prefixed name and drops the schema. */
function usedTableName(table: object): string {
  const fields = table as Record<symbol, unknown>
  const base = fields[Symbol.for('drizzle:BaseName')]
  if (typeof base !== 'string') return getTableName(table as Table)
  const schema = fields[Symbol.for('drizzle:Schema')]
  return typeof schema === 'string' && isPgTable(table) ? `${schema}.${base}` : base
}

function isPgTable(table: object): boolean {
  for (let kind: unknown = table.constructor; typeof kind === 'function'; kind = Object.getPrototypeOf(kind)) {
    if ((kind as unknown as Record<symbol, unknown>)[entityKind] === 'PgTable') return true
  }
  return false
}

/** A Duration option in milliseconds (0: off), read as every duration option of the core is
 *  (parseDuration: `'1M'` refused as ambiguous, not read as a minute). */
function milliseconds(value: Duration, field: string): number {
  return parseDuration(value, field)
}

function resultKey(key: string, isTag: boolean): string {
  return isTag ? boundedKey('drizzle:tag:', key, KEY_BYTES) : boundedKey('drizzle:query:', key, KEY_BYTES)
}

function tableTag(name: string): string {
  return boundedKey('drizzle:table:', name, TAG_BYTES)
}

/** The larder tag of a query cached under a Drizzle tag (`$withCache({ tag })`). */
function queryTag(tag: string): string {
  return boundedKey('drizzle:tag:', tag, TAG_BYTES)
}

/** Drizzle's Redis-style expiry (seconds or ms, relative or absolute) as a larder ttl in ms
 *  for a put stored as of `readAt` (see ttlUntil). */
function ttlOf(config: CacheConfig | undefined, readAt: number | undefined): number | undefined {
  if (config === undefined) return undefined
  if (config.px !== undefined) return ttlFromStore(hostNumber(config.px, 'px'), readAt)
  if (config.ex !== undefined) return ttlFromStore(hostNumber(config.ex, 'ex') * 1000, readAt)
  if (config.pxat !== undefined) return ttlUntil(hostNumber(config.pxat, 'pxat'), readAt)
  if (config.exat !== undefined) return ttlUntil(hostNumber(config.exat, 'exat') * 1000, readAt)
  return undefined
}

/** Whether Drizzle's expiry says the result ends as it is put: `px` or `ex` of 0 or less, or
 *  a `pxat`/`exat` not after now (the field ttlOf reads, in its order). Not a number (NaN, a
 *  string) is not: ttlOf refuses it, and onError hears why. */
function keepsNothing(config: CacheConfig | undefined): boolean {
  if (config === undefined) return false
  const { px, ex, pxat, exat } = config as Record<string, unknown>
  if (px !== undefined) return typeof px === 'number' && px <= 0
  if (ex !== undefined) return typeof ex === 'number' && ex <= 0
  if (pxat !== undefined) return typeof pxat === 'number' && pxat <= Date.now()
  if (exat !== undefined) return typeof exat === 'number' && exat * 1000 <= Date.now()
  return false
}

/** The driver's result with every libsql row (isLibsqlRow) made a real array, which keeps
 *  the values a serializer would drop, and a driver's result object made plain data
 *  (isDriverResult); arrays, bytes and plain values (a JSON cell among them) stay as they are. */
function storable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(storable)
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Date)
    return value
  if (isLibsqlRow(value)) return Array.from(value, storable)
  if (isDriverResult(value)) return dataOf(value)
  return value
}

/** How deep a result's bytes are: a node-postgres result, its `rows`, a row, then the cell. */
const BYTES_DEPTH = 3

/**
 * A result with its byte values (a blob: libsql's `ArrayBuffer`, pg's `Buffer`) copied, the
 * arrays and plain objects holding them copied too, and the rest shared: the memory tier
 * answers every hit with the one result it holds, and Drizzle hands a blob to the app as it
 * is (a `Buffer` over the cached bytes' memory), so a change to one result's bytes changed
 * every later one. Rows Drizzle maps into objects of their own, and parses a JSON text column
 * anew each time; a JSON cell the driver parsed (pg's `json`/`jsonb`) is shared between hits.
 * A result without bytes is the one held, walked but not copied.
 */
function ownBytes(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value // most cells: asked first
  if (ArrayBuffer.isView(value)) {
    if (value instanceof DataView) return new DataView(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength))
    return Buffer.isBuffer(value) ? Buffer.from(value) : (value as unknown as { slice(): unknown }).slice()
  }
  if (value instanceof ArrayBuffer) return value.slice(0)
  if (depth >= BYTES_DEPTH) return value
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      const own = ownBytes(item, depth + 1)
      if (own !== item) (copy ??= value.slice())[i] = own
    }
    return copy ?? value
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value
  let copy: Record<string, unknown> | undefined
  for (const [name, item] of Object.entries(value)) {
    const own = ownBytes(item, depth + 1)
    if (own !== item) (copy ??= { ...value })[name] = own
  }
  return copy ?? value
}

/** libsql's `Row`: its values under indices and a `length` that are not enumerable (a
 *  serializer drops them), its columns' names enumerable. Told by that hidden `length`, which
 *  no parsed JSON has: a `json`/`jsonb` cell `{ "length": 2 }` is data, kept as it came (it
 *  was read as an array, and one with a huge length ran the process out of memory). */
function isLibsqlRow(value: object): value is ArrayLike<unknown> {
  const length = Object.getOwnPropertyDescriptor(value, 'length')
  return (
    length !== undefined &&
    length.enumerable === false &&
    typeof length.value === 'number' &&
    Number.isInteger(length.value) &&
    length.value >= 0 &&
    length.value <= MAX_ROW_COLUMNS
  )
}

/** More columns than any database allows (PostgreSQL 1,600, SQLite 32,767 at most). */
const MAX_ROW_COLUMNS = 65_536

/** node-postgres (and the drivers built on it) hands over pg's `Result`: an object of a class
 *  that holds its row parsers (functions, which no serializer stores) beside the data Drizzle
 *  reads back (`rows`, and `rowCount`, `command`, `fields`). */
function isDriverResult(value: object): value is Record<string, unknown> {
  const prototype: unknown = Object.getPrototypeOf(value)
  return prototype !== Object.prototype && prototype !== null && Array.isArray((value as { rows?: unknown }).rows)
}

/** A driver's result as plain data: its own fields but functions and `_`-prefixed internals. */
function dataOf(value: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {}
  for (const [name, field] of Object.entries(value)) {
    if (typeof field !== 'function' && !name.startsWith('_')) kept[name] = storable(field)
  }
  return kept
}
