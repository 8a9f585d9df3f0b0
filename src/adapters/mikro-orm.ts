import type { CacheAdapter } from '@mikro-orm/core'
import { LarderError, type Larder, type LarderOptions } from 'larder'
import { boundedKey, KEY_BYTES, TAG_BYTES } from './bounded-key.js'
import { hostNumber, MissTimes, ttlFromStore } from './miss-times.js'
import { CacheSource, withV8Default, type CacheOrOptions } from './cache-source.js'

export type { CacheOrOptions }

/** Every entry this adapter writes carries it, so `clear()` leaves the cache's other entries. */
const TAG = 'mikro-orm'

/** What MikroORM passes the adapter's constructor: `resultCache.expiration` and
 *  `resultCache.options`, which are larder's options plus `onError`. */
export interface LarderCacheAdapterOptions extends LarderOptions {
  /** Default lifetime of a cached result in ms, when a query gives none (MikroORM's
   *  `resultCache.expiration`, 1000 by default). 0, here or a query's: the result is not
   *  kept (it expires at once in MikroORM's own MemoryCacheAdapter); `Infinity`: kept for
   *  good, as there. */
  expiration?: number
  /** Hears what went wrong (a failing disk, a result larder cannot store or return): the
   *  adapter has no logger of MikroORM's to write to, and a throw would fail the query.
   *  Default: a process warning (`process.emitWarning`). */
  onError?: (error: Error) => void
}

/** What an entry holds: the key it answers (keys are hashed when long) and the data. */
interface Stored {
  name: string
  data: unknown
}

/**
 * MikroORM 6's and 7's result cache in larder (7 adds `get`'s `origin`, which the result cache leaves empty). MikroORM constructs the adapter itself, from the class:
 * `MikroORM.init({ …, resultCache: { adapter: LarderCacheAdapter, expiration: 60_000, options: { dir } } })`,
 * or, to share a cache you opened, `adapter: LarderCacheAdapter.using(cache)`.
 *
 * Each result is one entry under `mikro-orm:<key>` (MikroORM's keys are JSON descriptions of
 * the query unless you name them: long ones are hashed, and the key is checked on read), with
 * the query's expiration as its ttl. MikroORM invalidates nothing on flush: `em.clearCache(key)`
 * (→ `remove`) and `clear()` (this adapter's entries only) reach every process sharing the cache.
 * A result is stored as of its query's miss (`set`'s `readAt`): a `clear()` or `remove` while
 * the query ran is not undone by the store after it (each result carries its key's tag, which
 * `remove` stamps).
 */
export class LarderCacheAdapter implements CacheAdapter {
  /** A class MikroORM can construct, whose instances use `cache` (left open: it is yours). */
  static using(cache: Larder, options: Pick<LarderCacheAdapterOptions, 'onError'> = {}): typeof LarderCacheAdapter {
    return class SharedLarderCacheAdapter extends LarderCacheAdapter {
      constructor({ expiration }: LarderCacheAdapterOptions = {}) {
        super({ expiration, onError: options.onError }, cache)
      }
    }
  }

  readonly #source: CacheSource
  readonly #expiration: number | undefined
  /** Each key's last miss, for its store: a `clear()` while the query ran is not undone. */
  readonly #missed = new MissTimes()

  constructor(options: LarderCacheAdapterOptions = {}, cache?: Larder) {
    const { expiration, onError = (error: Error) => process.emitWarning(error), ...larderOptions } = options
    if (expiration !== undefined && (typeof expiration !== 'number' || Number.isNaN(expiration) || expiration < 0)) {
      throw new LarderError(
        'ERR_INVALID_OPTION',
        `Invalid expiration: expected milliseconds (a number, 0 or more), got ${String(expiration)}`,
        {
          field: 'expiration',
        },
      )
    }
    this.#expiration = expiration
    // Opened again after close(): MikroORM keeps this adapter through orm.close() and connect().
    this.#source = new CacheSource(cache ?? withV8Default(larderOptions), onError, true)
  }

  async get<T = unknown>(name: string): Promise<T | undefined> {
    const key = keyOf(name)
    const read = this.#missed.begin(key)
    return this.#source.guarded(undefined, async (cache) => {
      const asked = cache.now()
      const stored = (await cache.get(key)) as Stored | undefined
      if (stored?.name === name) return stored.data as T
      this.#missed.missed(key, asked, read) // MikroORM queries the database next and stores what it read
      return undefined
    })
  }

  async set(name: string, data: unknown, _origin: string, expiration?: number): Promise<void> {
    const ttl = expiration ?? this.#expiration
    const stored: Stored = { name, data }
    const key = keyOf(name)
    const readAt = this.#missed.take(key)
    if (typeof ttl === 'number' && !(ttl > 0)) {
      // An expiration of 0 (or less) keeps nothing, as in MikroORM's MemoryCacheAdapter, where
      // such a result expires as it is set (larder's ttl 0 would keep it forever); the result
      // it replaces goes too, as there.
      await this.#source.guarded(undefined, async (cache) => {
        await cache.delete(key)
      })
      return
    }
    await this.#source.guarded(undefined, (cache) =>
      cache.set(key, stored, {
        // From the store, as MikroORM's own adapters count it: a query slower than its
        // expiration is still cached. The creation time stays the miss.
        ttl: ttlFromStore(ttl === undefined ? cache.options.defaultTtl : hostNumber(ttl, 'expiration'), readAt),
        tags: [TAG, nameTag(name)],
        readAt,
      }),
    )
  }

  /** Removes the result cached under `name`, and stamps its tag: a query that read before the
   *  removal stores a stale result (a delete alone leaves nothing to compare a late store with). */
  async remove(name: string): Promise<void> {
    await this.#source.guarded(undefined, async (cache) => {
      await cache.invalidateTags([nameTag(name)])
      await cache.delete(keyOf(name))
    })
  }

  /** Removes every entry this adapter wrote, in every process sharing the cache. */
  async clear(): Promise<void> {
    await this.#source.guarded(undefined, (cache) => cache.invalidateTags([TAG]))
  }

  /** Waits for its calls in flight, then closes the cache if this adapter opened it
   *  (`orm.close()` calls it); a call after it (`orm.connect()` again) opens it again. */
  async close(): Promise<void> {
    await this.#source.close()
  }
}

function nameTag(name: string): string {
  return boundedKey('mikro-orm:', name, TAG_BYTES)
}

function keyOf(name: string): string {
  return boundedKey('mikro-orm:', name, KEY_BYTES)
}
