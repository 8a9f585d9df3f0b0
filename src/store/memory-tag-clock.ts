import { OwedStamps } from './owed-stamps.js'
import { oldestKey } from '../oldest-key.js'

/** How many stamps a memory tag clock holds (about 100 bytes each). */
export const MAX_MEMORY_STAMPS = 100_000

/**
 * Tag invalidation stamps held in this process only: the tag clock of a cache without a
 * directory (`dir: false`). With Redis, the stamps every instance records there reach it
 * through the bus and at open (bus/, facade/shared-parts.ts), as they reach a directory's
 * tags/ files.
 *
 * Bounded: Redis keeps a stamp for every tag invalidated (up to 100,000), and a process must not hold
 * them all. Past MAX_MEMORY_STAMPS the stamp raised longest ago is let go and becomes a floor:
 * every tagged entry created at or before it reads as stale (more misses, never a stale hit).
 * The stamps read at open come oldest first, so the floor is the oldest it can be.
 */
export class MemoryTagClock {
  readonly #stamps = new Map<string, number>()
  /** The latest stamp let go (0: none). */
  #floor = 0
  /** Stamps a failed read of Redis's left owed (store/owed-stamps.ts). */
  readonly owed = new OwedStamps()

  isStale(tags: readonly string[], createdAt: number): boolean {
    return tags.length > 0 && this.latest(tags) >= createdAt
  }

  /** isStale(), every stamp being in this process's memory, or owed (the memory tier's
   *  hits: a copy dropped there is read again from Redis, where the owed stamps leave it). */
  isStaleHeld(tags: readonly string[], createdAt: number): boolean {
    return this.isStale(tags, createdAt) || this.owed.covers(tags, createdAt)
  }

  /** Nothing to look at: stamps arrive through invalidate(). */
  look(): void {}

  latest(tags: readonly string[]): number {
    if (tags.length === 0) return 0
    let latest = this.#floor
    for (const tag of tags) {
      const stamp = this.#stamps.get(tag)
      if (stamp !== undefined && stamp > latest) latest = stamp
    }
    return latest
  }

  invalidate(tags: readonly string[], at: number): void {
    if (at <= this.#floor) return // the floor makes these tags' entries stale already
    for (const tag of tags) {
      const before = this.#stamps.get(tag)
      if (before !== undefined && before >= at) continue
      this.#stamps.delete(tag) // raised: held longest from now
      this.#stamps.set(tag, at)
    }
    while (this.#stamps.size > MAX_MEMORY_STAMPS) {
      const tag = oldestKey(this.#stamps)!
      const at = this.#stamps.get(tag)!
      this.#stamps.delete(tag)
      if (at > this.#floor) this.#floor = at
    }
  }

  /** Every tagged entry created at or before `at` is stale from now on (the floor of the
   *  stamps a fold removed from Redis: facade/tag-invalidation.ts). */
  holdFloor(at: number): void {
    if (at > this.#floor) this.#floor = at
  }

  /** How many stamps are held (tests). */
  get heldCount(): number {
    return this.#stamps.size
  }
}
