import type { WalkOptions } from './maintenance/maintainer.js'
import type { Duration } from './options.js'

/** Options of `set`, `setStream` and each `setMany` item. */
export interface SetOptions {
  /** Time to live: milliseconds or a duration string; 0 = never expires. Default: the cache's `defaultTtl`. */
  ttl?: Duration
  /** Tags for `invalidateTags` (table names, say). */
  tags?: readonly string[]
}

/** `set()`'s options. */
/** Options of `getStream`. */
export interface GetStreamOptions {
  /** Check every byte of the entry before the first is handed out (the file is read twice):
   *  for a consumer that cannot take back what it received, such as a pipe into `tar x`. A
   *  damaged entry is then a miss (undefined), removed and counted, and no byte of it is
   *  served. Default false: bytes flow as they are checked, and a damaged entry's stream
   *  errors with ERR_CORRUPT before its last bytes. */
  verifyFirst?: boolean
}

export interface SetValueOptions extends SetOptions {
  /** When the value was read from its source (ms since the epoch: `cache.now()` taken before
   *  the read, or `Date.now()`; not in the future): the entry counts as created then, so a tag of it invalidated since makes it stale
   *  at once. For a value read before it is stored (a query result): a write to its table while
   *  the query ran is never undone by the result stored after it. Default: now. In Redis an
   *  entry does not replace one created after it. */
  readAt?: number
}

export interface GetOrSetOptions extends SetOptions {
  /** Stale-if-error: if the loader fails, a value that expired less than this long ago is returned. */
  grace?: Duration
  /** With `redis`: take a short Redis lock on the key while loading, so that of many instances
   *  asking for one missing key at once, one calls its loader and the others wait for its value
   *  (at most 10 s, then they call their own). Default false. */
  lock?: boolean
  /** Refresh-ahead: a share of the entry's lifetime in (0, 1). A hit on an entry older than
   *  that share of its ttl is served at once and starts one background reload (once per key
   *  at a time; with `redis`, once across instances); a failing reload keeps the old value
   *  until it expires. E.g. 0.8 with a ttl of 10 minutes: hits after 8 minutes refresh it.
   *  Entries without expiry are never refreshed. Default: off. */
  refreshAhead?: number
  /** Soft timeout, with `grace`: when the loader has not answered within this and a value
   *  that expired less than `grace` ago is there, that value is returned (as if the loader had
   *  failed); the loader goes on in the background and its value is stored when it comes.
   *  Without such a value, the call waits for the loader (or `hardTimeout`). 0: the stale
   *  value at once. Default: none. */
  timeout?: Duration
  /** When the loader has not answered within this, getOrSet rejects with `ERR_TIMEOUT` (or
   *  returns a value within `grace`); the loader goes on in the background and its value is
   *  stored when it comes. Default: none (wait for the loader). */
  hardTimeout?: Duration
}

export interface SetManyItem extends SetOptions {
  key: string
  value: unknown
}

/** Which entries `entries()` lists: all of them, or those matching every filter given. */
export interface EntriesOptions extends WalkOptions {
  /** Keys starting with this. */
  prefix?: string
  /** Keys matching this glob (`*`, `?`, `[abc]`, `{a,b}`), e.g. `'user:*'`. */
  pattern?: string
  /** Entries carrying any of these tags. */
  tags?: readonly string[]
}
