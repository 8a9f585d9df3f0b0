import { AsyncLocalStorage } from 'node:async_hooks'
import { LarderError } from 'larder'
import { oldestKey } from '../oldest-key.js'

/** Keys whose misses are kept for their stores. */
const MAX_KEYS = 10_000
/** Misses kept per key: queries of one key in flight at once. */
const MAX_PER_KEY = 64
/** A miss whose store has not come this long after is forgotten (its query failed, or stored
 *  nothing): kept, it would date every later store of the key back to it. */
const MAX_AGE_MS = 5 * 60_000
/** Reads remembered in one async context (see Read): the newest, for a context that runs many. */
const READS_PER_CONTEXT = 32

/** One read of a key, made in the sync part of an adapter's read (before any await), so that
 *  the caller's code after it (its query, then its store) runs in a context that holds it. */
export interface Read {
  readonly key: string
  /** When it missed (undefined: a hit, or not yet answered). */
  at: number | undefined
  /** A store took it. */
  used: boolean
}

/**
 * The misses of each key (`cache.now()` taken before the read) whose stores have not come yet,
 * for the store an ORM makes after querying its database: the result goes in with a `readAt`,
 * so a table invalidated (or a `clear()`) while the query ran makes it stale at once instead of
 * being undone by it. A store whose own read is found in its async context (begin) is dated
 * by that read's miss. Otherwise two queries of one key in flight at once cannot be told apart
 * at their stores (one may have read before an update, the other after), so the store is dated
 * by the oldest miss still outstanding and takes away the newest: a result may be stale for
 * nothing (a miss more), never live with rows read before a change. Bounded: past MAX_KEYS the
 * key missed longest ago goes (its store is then stamped now).
 */
export class MissTimes {
  readonly #at = new Map<string, number[]>()
  readonly #context = new AsyncLocalStorage<readonly Read[]>()

  /**
   * A read of `key` begins: called in the sync part of the adapter's read, so the record
   * joins the caller's async context (`enterWith`) and the caller's store after its query
   * finds it there. Drizzle, TypeORM and MikroORM each await the read, the query and the store
   * in one chain, so a store is dated by its own miss: a query that failed (no store follows)
   * no longer dates the stores of later queries, as the oldest outstanding miss did (one at
   * most, where its read stays in the caller's context: see take).
   */
  begin(key: string): Read {
    const read: Read = { key, at: undefined, used: false }
    const held = this.#context.getStore() ?? []
    this.#context.enterWith([...held.filter((r) => !r.used).slice(-(READS_PER_CONTEXT - 1)), read])
    return read
  }

  missed(key: string, at: number, read?: Read): void {
    if (read !== undefined) read.at = at
    const times = this.#at.get(key) ?? []
    this.#at.delete(key)
    this.#at.set(key, times)
    times.push(at)
    if (times.length > MAX_PER_KEY) times.splice(1, 1) // the oldest stays: it dates every store
    if (this.#at.size > MAX_KEYS) this.#at.delete(oldestKey(this.#at)!)
  }

  /** The time a store of `key` is stored as of: its oldest outstanding miss (undefined: none
   *  kept); one miss fewer kept. */
  take(key: string): number | undefined {
    const times = this.#at.get(key)
    // The store's own miss, when its context holds exactly one missed read of the key not yet
    // stored; two (reads of one key started one after the other in one function, then stored)
    // cannot be told apart: the oldest outstanding miss dates the store, as without a context.
    const own = this.#context.getStore()?.filter((r) => r.key === key && !r.used && r.at !== undefined)
    if (own?.length === 1) {
      const read = own[0]!
      read.used = true
      const index = times?.indexOf(read.at!) ?? -1
      if (index >= 0) times!.splice(index, 1)
      if (times?.length === 0) this.#at.delete(key)
      return read.at
    }
    // Those reads leave the context: one may be a query that failed (no store follows, and
    // TypeORM's reads reach the caller's context), which kept there made every later store of
    // the key in that flow ambiguous too, each dated by its miss: stale at once after a clear()
    // made since, so the query was never cached again. The other read's store, if one comes,
    // is dated by the oldest outstanding miss as this one is (a miss more, never old rows).
    if (own !== undefined) for (const read of own) read.used = true
    if (times === undefined) return undefined
    while (times.length > 1 && times[0]! < Date.now() - MAX_AGE_MS) times.shift()
    const oldest = times[0]
    times.pop()
    if (times.length === 0) this.#at.delete(key)
    return oldest
  }
}

/**
 * The `ttl` to give `set(…, { readAt })` for an entry to expire at `expiresAt` (ms since the
 * epoch). set() counts a ttl from the entry's creation, which `readAt` moves back to the
 * query's miss: a result would live its duration less its query's time, and one whose query
 * was slower than its duration would be stored expired (never cached). The host libraries
 * count a duration from the store (TypeORM's own caches from the `time` it stores, MikroORM's
 * MemoryCacheAdapter from its `set`), and Drizzle's `exat`/`pxat` are ends. So the ttl is
 * counted from where set() counts it (the earlier of the creation time and the wall clock,
 * floored: expiryOf in store/creation-clock.ts) to the end wanted, and the creation time stays
 * the miss, for a tag invalidated while the query ran to win. At least 1 ms: 0 is "never".
 * An end of `Infinity` (a duration of `Infinity`: MikroORM's MemoryCacheAdapter keeps such a
 * result for good) is "never" too: larder refuses an infinite ttl, and the result was then not
 * cached at all, with an error reported for every query.
 */
export function ttlUntil(expiresAt: number, readAt: number | undefined): number {
  if (expiresAt === Infinity) return 0
  const now = Date.now()
  const from = Math.floor(readAt !== undefined && readAt < now ? readAt : now)
  return Math.max(1, Math.ceil(expiresAt - from))
}

/** `ttl` ms (0: never) counted from the store, for `set(…, { readAt })` (see ttlUntil). */
export function ttlFromStore(ttl: number, readAt: number | undefined): number {
  return ttl === 0 ? 0 : ttlUntil(Date.now() + ttl, readAt)
}

/**
 * `value`, a host library's duration or expiry in its own unit (its field `field`), if it is a
 * number. Their types say number, but JavaScript callers and configuration files hand over
 * what they have: a string `'5000'` added to `Date.now()` made a text of digits, read as an
 * expiry some 570,000 years away. Refused instead (ERR_INVALID_TTL, naming the field, which
 * the adapter reports through the host's channel); nothing is stored.
 */
export function hostNumber(value: unknown, field: string): number {
  if (typeof value === 'number' && !Number.isNaN(value)) return value
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : String(value)
  throw new LarderError(
    'ERR_INVALID_TTL',
    `Invalid ${field}: expected a number, got ${shown}${typeof value === 'number' ? '' : ` (${typeof value})`}`,
    {
      field,
    },
  )
}
