import type { DataSource, QueryRunner } from 'typeorm'
import type { QueryResultCache } from 'typeorm/cache/QueryResultCache.js'
import type { QueryResultCacheOptions } from 'typeorm/cache/QueryResultCacheOptions.js'
import { boundedKey, KEY_BYTES, TAG_BYTES } from './bounded-key.js'
import { hostNumber, MissTimes, ttlFromStore } from './miss-times.js'
import { CacheSource, type CacheOrOptions } from './cache-source.js'

export type { CacheOrOptions }

/** Every entry this adapter writes carries it, so `clear()` leaves the cache's other entries. */
const TAG = 'typeorm'

/** The suffixes TypeORM adds to a query's cache id for the queries it derives from it:
 *  `getManyAndCount`'s count and a joined page's id list. `remove([id])` removes them too. */
const DERIVED = ['', '-count', '-pagination']

/**
 * TypeORM's query result cache in larder:
 * `new DataSource({ …, cache: { provider: (ds) => new LarderQueryResultCache(ds, options | cache) } })`.
 *
 * A query cached with an id (`cache: { id, milliseconds }`) is stored under `typeorm:id:<id>`,
 * one without under its SQL and parameters (`typeorm:query:…`, hashed when long); each entry
 * holds what TypeORM gave `storeInCache` (its result is TypeORM's JSON string, kept verbatim)
 * and expires with the query's duration, so larder reclaims it. TypeORM invalidates nothing
 * on writes: `remove([id])` (which also removes the `-count` and `-pagination` ids TypeORM
 * derives) and `clear()` (this adapter's entries only) are the ways, and both reach every
 * process sharing the directory. A result is stored as of its query's miss (`set`'s `readAt`),
 * so a `clear()` or `remove([id])` while the query ran is not undone by the store after it: a
 * result cached by id also carries its id's tag, which `remove` stamps (a delete alone leaves
 * nothing to compare a late store with).
 *
 * Errors are written to the DataSource's logger as warnings and read as a miss or a dropped
 * store, so a failing disk never fails a query (a cache opened with `failOpen: false` throws
 * `ERR_UNAVAILABLE`, which TypeORM turns into a failed query unless `ignoreErrors` is set).
 */
export class LarderQueryResultCache implements QueryResultCache {
  readonly #source: CacheSource
  /** Each key's last miss, for its store: a `clear()` while the query ran is not undone. */
  readonly #missed = new MissTimes()

  constructor(dataSource?: DataSource, cache?: CacheOrOptions) {
    // The DataSource's logger is TypeORM's channel for what goes wrong outside a query.
    this.#source = new CacheSource(
      cache,
      (error) => {
        dataSource?.logger.log('warn', `larder query result cache: ${error.message}`)
      },
      true, // opened again by connect() after disconnect(): TypeORM keeps this provider through destroy()
    )
  }

  /** Opens the cache, again after disconnect() if this adapter opened it
   *  (DataSource.initialize() calls it). */
  async connect(): Promise<void> {
    await this.#source.guarded(undefined, () => Promise.resolve(undefined))
  }

  /** Waits for its calls in flight, then closes the cache if this adapter opened it
   *  (DataSource.destroy() calls it). */
  async disconnect(): Promise<void> {
    await this.#source.close()
  }

  /** Nothing to create: larder needs no table. */
  async synchronize(_queryRunner?: QueryRunner): Promise<void> {}

  async getFromCache(options: QueryResultCacheOptions, _queryRunner?: QueryRunner): Promise<QueryResultCacheOptions | undefined> {
    const key = keyOf(options)
    const read = this.#missed.begin(key)
    return this.#source.guarded(undefined, async (cache) => {
      const asked = cache.now()
      let saved = (await cache.get(key)) as QueryResultCacheOptions | undefined
      // A key may be a hash (of a long id or query): the entry must be for this very one.
      if (saved !== undefined && saved.identifier !== options.identifier) saved = undefined
      if (saved !== undefined && options.identifier === undefined && saved.query !== options.query) saved = undefined
      // TypeORM queries the database next and stores what it read.
      if (saved === undefined || this.isExpired(saved)) this.#missed.missed(key, asked, read)
      return saved
    })
  }

  async storeInCache(
    options: QueryResultCacheOptions,
    _savedCache: QueryResultCacheOptions | undefined,
    _queryRunner?: QueryRunner,
  ): Promise<void> {
    const key = keyOf(options)
    const readAt = this.#missed.take(key)
    if (typeof options.duration === 'number' && !(options.duration > 0)) {
      // A duration of 0 or less (`cache: { duration: 0 }`) is expired as it is stored, as
      // TypeORM judges it (isExpired): kept, it was never served and never expired (no ttl),
      // a dead entry per distinct query. Nothing is kept, and the result it replaces goes too.
      await this.#source.guarded(undefined, async (cache) => {
        await cache.delete(key)
      })
      return
    }
    await this.#source.guarded(undefined, (cache) =>
      cache.set(
        key,
        {
          identifier: options.identifier,
          query: options.query,
          time: options.time,
          duration: options.duration,
          result: options.result as unknown,
        },
        {
          // From the store, as TypeORM's own caches count it (from the `time` it stores): a query
          // slower than its duration is still cached. The creation time stays the miss.
          ttl: ttlFromStore(options.duration === undefined ? cache.options.defaultTtl : hostNumber(options.duration, 'duration'), readAt),
          tags: options.identifier === undefined ? [TAG] : [TAG, idTag(options.identifier)],
          readAt,
        },
      ),
    )
  }

  /** As TypeORM's own caches judge it: stored `time` plus `duration` has passed. A `duration`
   *  read back as null was `Infinity`, which JSON turns into null: never. */
  isExpired(savedCache: QueryResultCacheOptions): boolean {
    const duration = (savedCache.duration as number | null) ?? Infinity
    return (savedCache.time ?? 0) + duration < Date.now()
  }

  /** Removes every entry this adapter wrote, in every process sharing the cache. */
  async clear(_queryRunner?: QueryRunner): Promise<void> {
    await this.#source.guarded(undefined, (cache) => cache.invalidateTags([TAG]))
  }

  /** Removes the queries cached under these ids, and the ids TypeORM derived from them; the
   *  ids' tags are stamped too, so a query that read before the removal stores a stale result. */
  async remove(identifiers: string[], _queryRunner?: QueryRunner): Promise<void> {
    const ids = identifiers.flatMap((id) => DERIVED.map((suffix) => id + suffix))
    await this.#source.guarded(undefined, async (cache) => {
      await cache.invalidateTags(ids.map(idTag))
      await cache.deleteMany(ids.map(idKey))
    })
  }
}

function idKey(identifier: string): string {
  return boundedKey('typeorm:id:', identifier, KEY_BYTES)
}

function idTag(identifier: string): string {
  return boundedKey('typeorm:id:', identifier, TAG_BYTES)
}

function keyOf(options: QueryResultCacheOptions): string {
  return options.identifier !== undefined ? idKey(options.identifier) : boundedKey('typeorm:query:', options.query ?? '', KEY_BYTES)
}
