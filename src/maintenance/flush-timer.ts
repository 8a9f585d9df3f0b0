/**
 * A deferred flush: `schedule()` arranges one call of `flush` after `ms`, however many times
 * it is called meanwhile. The timer is unref'd (pending bookkeeping never keeps a process
 * alive; the exit hook flushes instead), and a flush that throws (a failing disk) is
 * swallowed: what it was to write stays pending for the next one.
 */
export class FlushTimer {
  readonly #ms: number
  readonly #flush: () => void
  #timer: NodeJS.Timeout | undefined

  constructor(ms: number, flush: () => void) {
    this.#ms = ms
    this.#flush = flush
  }

  schedule(): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      try {
        this.#flush()
      } catch {
        // the disk is failing; the next flush retries
      }
    }, this.#ms)
    this.#timer.unref()
  }

  cancel(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
