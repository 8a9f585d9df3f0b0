import { oldestKey } from '../oldest-key.js'

/** How many keys a file tier remembers refused changes of; past it the oldest is let go. */
export const MAX_REFUSED = 10_000

/**
 * The changes of a key that the file tier's disk refused (a write or a removal that failed
 * with ENOSPC, EIO, EROFS…, or that the open breaker turned away), each with the time it was
 * made. Such a change leaves the entry it was to replace on disk, and that older value must not
 * be read again once the disk answers: not by this instance (which has already told its caller
 * the change was made, failOpen's counted drop) and, once it is removed, by no other. The file
 * tier removes it (`dropIfOlder`) as soon as it can: at once, when the breaker closes again,
 * or at the next read of the key, which misses until then. Bounded: past MAX_REFUSED keys the
 * oldest is let go (README: a failing disk).
 */
export class RefusedChanges {
  /** key → the time of its latest refused change; in the order they were refused. */
  readonly #at = new Map<string, number>()

  get size(): number {
    return this.#at.size
  }

  remember(key: string, at: number): void {
    const known = this.#at.get(key)
    this.#at.delete(key)
    this.#at.set(key, known === undefined ? at : Math.max(known, at))
    if (this.#at.size > MAX_REFUSED) this.#at.delete(oldestKey(this.#at)!)
  }

  at(key: string): number | undefined {
    return this.#at.get(key)
  }

  /** The key's refused changes up to `at` are settled (its older entry removed, or a change of
   *  it made since is on disk): forgotten, unless a later one was refused meanwhile. */
  settled(key: string, at: number): void {
    const known = this.#at.get(key)
    if (known !== undefined && known <= at) this.#at.delete(key)
  }

  /** Every key's (a clear of the namespace's files went through). */
  forgetAll(): void {
    this.#at.clear()
  }

  keys(): string[] {
    return [...this.#at.keys()]
  }
}
