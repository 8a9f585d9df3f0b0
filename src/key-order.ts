/**
 * Calls on one key of one instance take effect in the order they were made, in every tier.
 *
 * A change (set, setMany's items, setStream, delete, increment, getOrSet's store) awaits the
 * disk, and an earlier change may still be awaiting its own: a partition's first write waits
 * for its `mkdir`, a large value for the thread pool. Without an order, `Promise.all([set(k),
 * delete(k)])` could delete first and store after, or leave the memory tier holding what the
 * disk no longer has. So each change runs once every change of its key called before it has
 * taken effect, and a read waits for the changes of its key called before it (`pending`).
 * `clear()` waits for every change called before it, and every change called after it waits
 * for the clear.
 *
 * Nothing is chained when nothing is in flight on the key: the change starts at once, in the
 * caller's tick, and a read checks `idle` (one comparison) before anything else.
 */
import { PromotionGuard } from './tiers/promotion-guard.js'

const settled = (): void => {}

interface Queued {
  /** Settles (never rejects) when the key's last change has taken effect. */
  last: Promise<void>
  /** What a read of the key waits for: `last`, unless the last change is a stream. */
  visible: Promise<void> | undefined
}

export class KeyOrder {
  readonly #keys = new Map<string, Queued>()
  /** A clear in progress: changes called after it wait for it. */
  #everything: Promise<void> | undefined
  /** Each key's changes, called and taken effect, since a read's ticket. A read during which
   *  its key changed may have read what the change replaced: it must not promote its value.
   *  Kept per key (a change of another key says nothing about this one: a busy cache would
   *  otherwise promote almost nothing); a clear counts for every key. */
  readonly #changes = new PromotionGuard()

  /** Taken by a read before it starts (see `changedSince`). */
  ticket(): number {
    return this.#changes.ticket()
  }

  /** Whether a change of `key` (or a clear) was called or took effect since `ticket`. */
  changedSince(key: string, ticket: number): boolean {
    return !this.#changes.mayPromote(key, 0, ticket)
  }

  /** Whether a change of `key` (or a clear) was called and has not taken effect yet. A read
   *  that took its ticket after such a change was called (it waited for earlier changes, as
   *  the get between a clear and a delete does) and ends before it must not promote either:
   *  the change may already have dropped the memory tier's copy (a delete does so first) and
   *  then removes what the read found. */
  inFlight(key: string): boolean {
    return this.#keys.has(key) || this.#everything !== undefined
  }

  /** True when no change is in flight on any key. */
  get idle(): boolean {
    return this.#keys.size === 0 && this.#everything === undefined
  }

  /** What a read of `key` must wait for first (the changes called before it), if anything. */
  pending(key: string): Promise<void> | undefined {
    const queued = this.#keys.get(key)
    return queued === undefined ? this.#everything : queued.visible
  }

  /** Runs `read` once the changes of `key` called before it have taken effect (`pending`):
   *  at once, in the caller's tick, when none is in flight. */
  afterChanges<T>(key: string, read: () => Promise<T>): Promise<T> {
    const waiting = this.pending(key)
    return waiting === undefined ? read() : waiting.then(read)
  }

  /**
   * Runs `change` once every change of `key` called before it (and any clear) has taken
   * effect. A `hidden` change (a stream) is ordered like any other, but reads do not wait for
   * it: they see the entry it replaces until the stream's entry appears whole.
   */
  change<T>(key: string, change: () => Promise<T>, hidden = false): Promise<T> {
    const queued = this.#keys.get(key)
    const before = queued === undefined ? this.#everything : queued.last
    this.#changes.heard(key, Infinity)
    const tickets = this.#changes.tickets
    const run = before === undefined ? change() : before.then(change)
    // The key leaves the queue as `run` settles, before its caller's `await` resumes: a read
    // right after an awaited change then finds the queue idle and takes get()'s hit path.
    const leave = (): void => {
      // Heard again as it ends when a read took its ticket while it ran (that read may have
      // found what it replaces); a set with no read in flight is spared the second record.
      if (this.#changes.tickets !== tickets) this.#changes.heard(key, Infinity)
      if (this.#keys.get(key) === slot) this.#keys.delete(key)
    }
    const last = run.then(leave, leave)
    const slot: Queued = { last, visible: hidden ? (queued === undefined ? this.#everything : queued.visible) : last }
    this.#keys.set(key, slot)
    return run
  }

  /** Settles once every change called so far has taken effect (close() waits for it). */
  settled(): Promise<void> {
    const all = [...this.#keys.values()].map((queued) => queued.last)
    if (this.#everything !== undefined) all.push(this.#everything)
    return Promise.all(all).then(settled)
  }

  /** Settles once every change called so far that reads wait for has taken effect: all but
   *  streams (whose source may take as long as it likes). flush() waits for it, so a set called
   *  just before it, not awaited, is among the writes it sends. */
  visibleSettled(): Promise<void> {
    const all: Promise<void>[] = []
    for (const queued of this.#keys.values()) if (queued.visible !== undefined) all.push(queued.visible)
    if (this.#everything !== undefined) all.push(this.#everything)
    return Promise.all(all).then(settled)
  }

  /** Runs `change` (a clear) after every change called before it; every change called after
   *  it waits for it. */
  everything<T>(change: () => Promise<T>): Promise<T> {
    const before = [...this.#keys.values()].map((queued) => queued.last)
    if (this.#everything !== undefined) before.push(this.#everything)
    this.#keys.clear()
    this.#changes.heardAll()
    const run = before.length === 0 ? change() : Promise.all(before).then(change)
    const done = run.then(settled, settled)
    this.#everything = done
    void done.then(() => {
      this.#changes.heardAll()
      if (this.#everything === done) this.#everything = undefined
    })
    return run
  }
}
