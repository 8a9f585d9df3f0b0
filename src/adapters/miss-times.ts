/** Keys whose last miss time is kept for their store. */
const MAX_KEYS = 10_000

/**
 * When each key last missed (`cache.now()` taken before the read), kept for the store that an
 * ORM makes after querying its database: the result goes in with that `readAt`, so a table
 * invalidated (or a `clear()`) while the query ran makes it stale at once instead of being
 * undone by it. Bounded: past MAX_KEYS the oldest go first, and their store is stamped now.
 */
export class MissTimes {
  readonly #at = new Map<string, number>()

  missed(key: string, at: number): void {
    this.#at.delete(key)
    this.#at.set(key, at)
    if (this.#at.size > MAX_KEYS) this.#at.delete(this.#at.keys().next().value as string)
  }

  /** The time `key` last missed, forgotten as it is taken (undefined: none kept). */
  take(key: string): number | undefined {
    const at = this.#at.get(key)
    if (at !== undefined) this.#at.delete(key)
    return at
  }
}
