/**
 * Tag invalidation stamps held in this process only: the tag clock of a cache without a
 * directory (`dir: false`). With Redis, the stamps every instance records there reach it
 * through the bus and at open (bus/, facade/shared-parts.ts), as they reach a directory's
 * tags/ files.
 */
export class MemoryTagClock {
  readonly #stamps = new Map<string, number>()

  isStale(tags: readonly string[], createdAt: number): boolean {
    return tags.length > 0 && this.latest(tags) >= createdAt
  }

  /** The same as isStale(): every stamp is in this process's memory. */
  isStaleHeld(tags: readonly string[], createdAt: number): boolean {
    return this.isStale(tags, createdAt)
  }

  /** Nothing to look at: stamps arrive through invalidate(). */
  look(): void {}

  latest(tags: readonly string[]): number {
    let latest = 0
    for (const tag of tags) {
      const stamp = this.#stamps.get(tag)
      if (stamp !== undefined && stamp > latest) latest = stamp
    }
    return latest
  }

  invalidate(tags: readonly string[], at: number): void {
    for (const tag of tags) if (at > (this.#stamps.get(tag) ?? 0)) this.#stamps.set(tag, at)
  }
}
