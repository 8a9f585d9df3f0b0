/**
 * The tag stamps Redis holds that a read failed to bring (facade/tag-invalidation.ts): the read
 * at open or after the bus missed messages timed out, or Redis could not be reached. Another
 * instance may have invalidated any tag meanwhile, and an invalidation by tag leaves Redis's
 * version of a key as it was, so the outage rule for keys cannot catch it. So until a read
 * begun after the failure has merged them, every tagged entry created at or before the
 * failure is a miss here: left in place (a local file, a Redis value) and judged by the merged
 * stamps once they are read; more misses, never an invalidated value. Untagged entries are
 * unaffected.
 */
export class OwedStamps {
  /** Tagged entries created at or before this are misses (0: nothing owed). */
  #before = 0

  /** A read of the stamps failed at `at` (a time of the creation clock): owed up to it. */
  owe(at: number): void {
    if (at > this.#before) this.#before = at
  }

  /** A read begun after the failure merged them: the stamps judge again, alone. */
  paid(): void {
    this.#before = 0
  }

  /** Whether an entry carrying `tags` created at `createdAt` waits for the stamps owed. */
  covers(tags: readonly string[], createdAt: number): boolean {
    return this.#before !== 0 && tags.length !== 0 && createdAt <= this.#before
  }

  /** Whether anything is owed. */
  get any(): boolean {
    return this.#before !== 0
  }
}
