import type { TagClock } from './tag-clock.js'

/**
 * Creation times for entries and invalidation times for tags: wall-clock milliseconds,
 * strictly increasing within the process, so a value set right after an invalidation is
 * always newer than it, even within the same millisecond. A tagged entry's creation time is
 * also above the latest invalidation of its tags that any process recorded, so a write that
 * follows another process's invalidation in the same millisecond is still fresh.
 */
export class CreationClock {
  readonly #tags: TagClock
  #last = 0

  constructor(tags: TagClock) {
    this.#tags = tags
  }

  /** A time after `after` and after every time this clock gave before. */
  stamp(after = 0): number {
    const now = Date.now()
    const floor = after > this.#last ? after : this.#last
    this.#last = now > floor ? now : floor + 0.001
    return this.#last
  }

  /** A creation time for an entry carrying `tags`: after their latest invalidation. */
  createdAt(tags: readonly string[]): number {
    if (tags.length === 0) return this.stamp()
    let latest = 0
    try {
      latest = this.#tags.latest(tags)
    } catch {
      // The disk is failing; the write that follows will meet the same fault and be counted.
    }
    return this.stamp(latest)
  }
}

/** When an entry created at `createdAt` with `ttl` (0 = never) expires; 0 for never. */
export function expiryOf(ttl: number, createdAt: number): number {
  return ttl === 0 ? 0 : Math.floor(createdAt) + ttl
}
