import type { ChangeProgress } from '../store/change-clock.js'

/** A change begun and not ended this long after its first record was heard is taken as over:
 *  its writer died (before its change, or after it and before the record after it), or is
 *  stalled. Either way its rename or unlink has happened or never will (or its record after
 *  will come and drop the key again). */
export const SETTLE_MS = 1000

/** A change of everything (a clear, a prune by filter), where a key goes: no key holds a NUL. */
const ALL = '\u0000'

/**
 * The changes other processes have begun and not yet ended, as a memory tier's looks at the
 * change log found them (store/change-clock.ts: a writer records each change before its
 * rename or unlink and again after). A value read from disk between a writer's two records
 * may be the one its change replaces, and the record after is the only news of the change a
 * reader would get: a writer killed between its change and that record (the rename is the
 * dearest step of a set, so most kills land there) never sends it, and a memory tier that had
 * read and held the old value in the gap served it for as long as it held the key. So the
 * keys of changes in progress are not promoted into memory (a read from disk is served, not
 * held), until the record after is heard or SETTLE_MS have passed; then the key is dropped
 * once more, and reads begun before may not promote (sweep()).
 *
 * Holds only changes in progress: a change heard whole (both records in one look, the usual
 * case) leaves nothing here. Costs a memory-tier hit nothing: only a promotion asks.
 */
export class UnsettledChanges implements ChangeProgress {
  /** writer id + key (or ALL) → the key and when its change was first heard begun; oldest first. */
  readonly #open = new Map<string, { key: string; since: number }>()
  /** How many changes in progress each key (or ALL) has. */
  readonly #keys = new Map<string, number>()

  /** Changes in progress (0: nothing to ask). */
  get size(): number {
    return this.#open.size
  }

  begun(writer: string, key: string | undefined): void {
    const id = `${writer}${key ?? ALL}`
    const open = this.#open.get(id)
    if (open !== undefined) return // a record before seen again (a writer's second change of the key, its first unended): timed from the first
    this.#open.set(id, { key: key ?? ALL, since: Date.now() })
    this.#keys.set(key ?? ALL, (this.#keys.get(key ?? ALL) ?? 0) + 1)
  }

  ended(writer: string, key: string | undefined): void {
    const id = `${writer}${key ?? ALL}`
    const open = this.#open.get(id)
    if (open === undefined) return // its record before was read by no look of this tier, or timed out
    this.#open.delete(id)
    this.#forget(open.key)
  }

  /** Whether a change of `key` (or of everything) is in progress. */
  isOpen(key: string): boolean {
    return this.#keys.has(key) || this.#keys.has(ALL)
  }

  /** Forgets the changes begun SETTLE_MS or more before `now`, telling `overdue` each one's key
   *  (undefined: everything). */
  sweep(now: number, overdue: (key: string | undefined) => void): void {
    for (const [id, open] of this.#open) {
      if (now - open.since < SETTLE_MS) break
      this.#open.delete(id)
      this.#forget(open.key)
      overdue(open.key === ALL ? undefined : open.key)
    }
  }

  #forget(key: string): void {
    const count = this.#keys.get(key)! - 1
    if (count === 0) this.#keys.delete(key)
    else this.#keys.set(key, count)
  }
}
