/** What the creation clock asks of a tag clock (store/tag-clock.ts, or memory-tag-clock.ts). */
export interface TagLatest {
  latest(tags: readonly string[]): number
}

/** The latest time a clock gave or heard of, which several clocks may count on (sharedTime). */
export interface Time {
  last: number
}

const byName = new Map<string, Time>()

/**
 * The one time of every instance of this process on a Redis prefix and namespace. Such
 * instances hear each other's changes on the bus only after the current task, and a write one
 * of them makes after another's completed must still be the newer version in Redis (which
 * keeps the first of two stamped alike), or it is refused. Keyed by the keyspace, not by how
 * the server was named: instances given their own ioredis clients, or `localhost` and
 * `127.0.0.1`, reach the same Redis, and were refused more than half their later writes.
 * (Two servers with the same prefix and namespace in one process share a floor: a change heard
 * from a host whose clock is ahead on one moves the versions written to the other as well.)
 * Not one time for the whole process: other namespaces and prefixes keep their own.
 */
export function sharedTime(prefix: string, namespace: string): Time {
  const name = `${prefix}\0${namespace}`
  let time = byName.get(name)
  if (time === undefined) byName.set(name, (time = { last: 0 }))
  return time
}

/**
 * Creation times for entries and invalidation times for tags: wall-clock milliseconds,
 * strictly increasing (per instance, or per Redis namespace of the process: sharedTime), so a
 * value set right after an invalidation is always newer than it, even within the same
 * millisecond. A tagged entry's creation time is
 * also above the latest invalidation of its tags that any process recorded, so a write that
 * follows another process's invalidation in the same millisecond is still fresh.
 */
export class CreationClock {
  readonly #tags: TagLatest
  readonly #time: Time

  /** `time`: the time it counts on, shared with other clocks (sharedTime); its own if none. */
  constructor(tags: TagLatest, time: Time = { last: 0 }) {
    this.#tags = tags
    this.#time = time
  }

  /** A time after `after` and after every time this clock gave before. */
  stamp(after = 0): number {
    const now = Date.now()
    const floor = after > this.#time.last ? after : this.#time.last
    this.#time.last = now > floor ? now : floor + 0.001
    return this.#time.last
  }

  /**
   * A time for an invalidation: the end of this millisecond (or after every time this clock
   * gave, if later). Another process's clock counts within a millisecond in fractions (X.001,
   * X.002…), so its entries created earlier in this millisecond may be later than a plain X:
   * an invalidation stamped X left them live. Writes that follow it read its stamp and are
   * created after it (createdAt).
   */
  invalidation(): number {
    const end = Math.floor(Date.now()) + 0.999
    if (end <= this.#time.last) return this.stamp()
    this.#time.last = end
    return end
  }

  /** The latest time this clock gave or heard of (0 before any). */
  get latest(): number {
    return this.#time.last
  }

  /** Another instance changed something at `at` (a bus message): this clock's later times
   *  are after it, so a change made here after hearing of it is newer, whatever the two
   *  hosts' clocks say. */
  observe(at: number): void {
    if (at > this.#time.last && Number.isFinite(at)) this.#time.last = at
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

/** The first time after `at` that compares as later: `at + 0.0001` does not (a double near
 *  today's epoch milliseconds is only precise to about 0.0002 ms), this does. For "drop the
 *  copy created at `at` but not a newer one". */
export function justAfter(at: number): number {
  return at + Math.max(Math.abs(at) * Number.EPSILON, Number.MIN_VALUE)
}

/** When an entry created at `createdAt` with `ttl` (0 = never) expires; 0 for never. A `ttl`
 *  counts from now by this host's wall clock: `createdAt` is ahead of it once this clock has
 *  heard of a change by a host whose clock is ahead (observe), and an expiry counted from it
 *  would outlive its ttl by that much. */
export function expiryOf(ttl: number, createdAt: number): number {
  return ttl === 0 ? 0 : Math.floor(Math.min(createdAt, Date.now())) + ttl
}
