/**
 * Tags invalidated a second time, `after` ms after each write asked for it: for a host library
 * that reports a write before the database has made it visible. Drizzle calls `onMutate`
 * beside the statement (both at once, so it may finish first), and inside a transaction the
 * rows change only at COMMIT, any time later. A select another process runs in between reads
 * the old rows after the first stamp, so its result is cached as fresh; the second stamp makes
 * it stale, in every process, once the write has (most likely) landed.
 *
 * One timer per tag: a tag asked for again while its timer runs is stamped once more `after`
 * the first fires, so every write gets a stamp at least `after` past it, and a table written
 * a thousand times a second is stamped about once a second (each stamp is a small file and,
 * with Redis, a message to every host). The timers hold no process open: a process that exits
 * without closing its adapter skips the stamps still due (`flush()`, on close, makes them).
 */
export class InvalidateAgain {
  readonly #after: number
  readonly #stamp: (tags: string[]) => Promise<void>
  /** Tags with a stamp due, and whether a write asked again since its timer was set. */
  readonly #due = new Map<string, { timer: NodeJS.Timeout; askedAgain: boolean }>()
  readonly #stamping = new Set<Promise<void>>()

  constructor(after: number, stamp: (tags: string[]) => Promise<void>) {
    this.#after = after
    this.#stamp = stamp
  }

  /** A write to `tags` was reported: stamp them again `after` ms from now. */
  ask(tags: readonly string[]): void {
    if (this.#after <= 0) return
    for (const tag of tags) {
      const due = this.#due.get(tag)
      if (due !== undefined) due.askedAgain = true
      else this.#schedule(tag)
    }
  }

  /** Whether any of `tags` was written here and its second stamp is still due: the write may
   *  not have landed (or may yet be rolled back). */
  due(tags: readonly string[]): boolean {
    return this.#due.size !== 0 && tags.some((tag) => this.#due.has(tag))
  }

  /** Makes every stamp still due now, and waits for those under way (the adapter's close). */
  async flush(): Promise<void> {
    const tags = [...this.#due.keys()]
    for (const { timer } of this.#due.values()) clearTimeout(timer)
    this.#due.clear()
    if (tags.length > 0) this.#run(tags)
    await Promise.all(this.#stamping)
  }

  #schedule(tag: string): void {
    const timer = setTimeout(() => {
      const askedAgain = this.#due.get(tag)?.askedAgain === true
      this.#due.delete(tag)
      this.#run([tag])
      if (askedAgain) this.#schedule(tag)
    }, this.#after)
    timer.unref()
    this.#due.set(tag, { timer, askedAgain: false })
  }

  /** `stamp` reports its own failures (the adapter's error channel): it never rejects. */
  #run(tags: string[]): void {
    const stamping = this.#stamp(tags).finally(() => this.#stamping.delete(stamping))
    this.#stamping.add(stamping)
  }
}
