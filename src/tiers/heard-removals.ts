import { Glob } from '../maintenance/glob.js'
import { oldestKey } from '../oldest-key.js'

/** How many keys a read-only file tier remembers heard removals of; past it the oldest is let
 *  go and the floor rises to it (see HeardRemovals). */
export const MAX_HEARD = 10_000

/** How many patterns a read-only file tier remembers heard removals by (another instance's
 *  `prune({ pattern })`); past it the oldest is let go and the floor rises to it, as for keys.
 *  Fewer than keys: a read of an entry older than a pattern's removal tests the pattern. */
export const MAX_HEARD_PATTERNS = 256

/** HeardRemovals as data (structured-cloneable), in the order heard. */
export interface HeardSnapshot {
  floor: number
  keys: [key: string, at: number][]
  patterns: [pattern: string, at: number][]
}

/**
 * The removals a read-only instance heard from other instances (a delete or a write of a key,
 * a removal by pattern, a clear), which it may not carry out on its directory: it removes
 * nothing and writes nothing there (README: readOnly). Instead its reads honour them: an entry
 * file created before a removal heard of its key, or of a pattern its key matches (the glob
 * prune matches with), or before the latest clear heard (`floor`), is a miss, left in place;
 * one created since (a writer sharing the directory) is read as ever. Bounded: past MAX_HEARD
 * keys (or MAX_HEARD_PATTERNS patterns) the oldest is let go and the floor rises to its time,
 * so an entry it hid stays hidden (with every other entry as old: misses, never a value a
 * removal replaced).
 */
export class HeardRemovals {
  /** key → the time of its latest removal heard, above the floor; in the order heard. */
  readonly #at = new Map<string, number>()
  /** pattern → its glob and the time of its latest removal heard, above the floor; in the
   *  order heard. */
  readonly #patterns = new Map<string, { glob: Glob; at: number }>()
  /** Every entry created before this time is a miss (a clear heard, or a removal let go). */
  #floor = -Infinity

  /** Whether any removal was heard (reads of a tier that heard none pay this one check). */
  get any(): boolean {
    return this.#floor !== -Infinity || this.#at.size !== 0 || this.#patterns.size !== 0
  }

  /** `key` was changed or removed elsewhere at `at`: its entries created before then are gone. */
  removed(key: string, at: number): void {
    if (at <= this.#floor) return
    const known = this.#at.get(key)
    this.#at.delete(key)
    this.#at.set(key, known === undefined ? at : Math.max(known, at))
    if (this.#at.size <= MAX_HEARD) return
    const oldest = oldestKey(this.#at)!
    const oldestAt = this.#at.get(oldest)!
    this.#at.delete(oldest)
    this.cleared(oldestAt)
  }

  /** The keys matching `pattern` were removed elsewhere at `at`: their entries created before
   *  then are gone. */
  removedMatching(pattern: string, at: number): void {
    if (at <= this.#floor) return
    const known = this.#patterns.get(pattern)
    this.#patterns.delete(pattern)
    this.#patterns.set(pattern, { glob: known?.glob ?? new Glob(pattern), at: Math.max(known?.at ?? at, at) })
    if (this.#patterns.size <= MAX_HEARD_PATTERNS) return
    const oldest = oldestKey(this.#patterns)!
    const oldestAt = this.#patterns.get(oldest)!.at
    this.#patterns.delete(oldest)
    this.cleared(oldestAt)
  }

  /** The namespace's entries were cleared elsewhere at `at`: every entry created before is gone. */
  cleared(at: number): void {
    if (at <= this.#floor) return
    this.#floor = at
    for (const [key, keyAt] of this.#at) if (keyAt <= at) this.#at.delete(key)
    for (const [pattern, heard] of this.#patterns) if (heard.at <= at) this.#patterns.delete(pattern)
  }

  /** What was heard, as data a worker thread can take (HeardRemovals.from): for walks in the
   *  workers that must judge entries as this tier's reads do (`entries()`, `usage()`);
   *  undefined when nothing was heard. */
  snapshot(): HeardSnapshot | undefined {
    if (!this.any) return undefined
    return { floor: this.#floor, keys: [...this.#at], patterns: [...this.#patterns].map(([pattern, { at }]) => [pattern, at]) }
  }

  /** The removals a snapshot holds, judged alike. */
  static from(snapshot: HeardSnapshot): HeardRemovals {
    const heard = new HeardRemovals()
    heard.#floor = snapshot.floor
    for (const [key, at] of snapshot.keys) heard.#at.set(key, at)
    for (const [pattern, at] of snapshot.patterns) heard.#patterns.set(pattern, { glob: new Glob(pattern), at })
    return heard
  }

  /** Whether `key`'s entry created at `createdAt` was removed by a change heard since. */
  hides(key: string, createdAt: number): boolean {
    if (createdAt < this.#floor) return true
    const at = this.#at.size === 0 ? undefined : this.#at.get(key)
    if (at !== undefined && createdAt < at) return true
    if (this.#patterns.size !== 0)
      for (const heard of this.#patterns.values()) if (createdAt < heard.at && heard.glob.test(key)) return true
    return false
  }
}
