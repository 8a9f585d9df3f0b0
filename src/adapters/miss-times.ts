/** Keys whose misses are kept for their stores. */
const MAX_KEYS = 10_000
/** Misses kept per key: queries of one key in flight at once. */
const MAX_PER_KEY = 64
/** A miss whose store has not come this long after is forgotten (its query failed, or stored
 *  nothing): kept, it would date every later store of the key back to it. */
const MAX_AGE_MS = 5 * 60_000

/**
 * The misses of each key (`cache.now()` taken before the read) whose stores have not come yet,
 * for the store an ORM makes after querying its database: the result goes in with a `readAt`,
 * so a table invalidated (or a `clear()`) while the query ran makes it stale at once instead of
 * being undone by it. Two queries of one key in flight at once cannot be told apart at their
 * stores (one may have read before an update, the other after), so each store is dated by the
 * oldest miss still outstanding and takes away the newest: a result may be stale for nothing
 * (a miss more), never live with rows read before a change. Bounded: past MAX_KEYS the key
 * missed longest ago goes (its store is then stamped now).
 */
export class MissTimes {
  readonly #at = new Map<string, number[]>()

  missed(key: string, at: number): void {
    const times = this.#at.get(key) ?? []
    this.#at.delete(key)
    this.#at.set(key, times)
    times.push(at)
    if (times.length > MAX_PER_KEY) times.splice(1, 1) // the oldest stays: it dates every store
    if (this.#at.size > MAX_KEYS) this.#at.delete(this.#at.keys().next().value as string)
  }

  /** The time a store of `key` is stored as of: its oldest outstanding miss (undefined: none
   *  kept); one miss fewer kept. */
  take(key: string): number | undefined {
    const times = this.#at.get(key)
    if (times === undefined) return undefined
    while (times.length > 1 && times[0]! < Date.now() - MAX_AGE_MS) times.shift()
    const oldest = times[0]
    times.pop()
    if (times.length === 0) this.#at.delete(key)
    return oldest
  }
}
