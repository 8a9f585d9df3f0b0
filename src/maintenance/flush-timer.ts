/**
 * When a process's bookkeeping (running-total deltas, LFU hit counts) reaches its file: at
 * most once per `ms` while it changes, and `ms` after the last change.
 *
 * A timer alone is not enough: a burst of writes that each complete without a turn of the
 * event loop (overwrites of small entries are synchronous underneath) never lets a timer fire,
 * and other processes would not see the burst, nor a shared budget its growth, until it ended.
 * So a change also flushes at once when the last flush is `ms` old. The timer is unref'd
 * (pending bookkeeping never keeps a process alive; the exit hook flushes instead). A flush
 * runs through the cache's breaker (`DiskGuard`): skipped while it is open, and a flush that
 * throws (a failing disk) is counted by it and swallowed: what it was to write stays pending.
 */
/**
 * Runs a step that touches the disk through the cache's circuit breaker: skipped while it is
 * open, its failure counted (and swallowed). Without one, a step runs as it is.
 */
export type DiskGuard = (step: () => void) => void

export class FlushTimer {
  readonly #ms: number
  readonly #flush: () => void
  readonly #guard: DiskGuard | undefined
  #timer: NodeJS.Timeout | undefined
  #lastFlush = -Infinity

  constructor(ms: number, flush: () => void, guard?: DiskGuard) {
    this.#ms = ms
    this.#flush = flush
    this.#guard = guard
  }

  /** Something changed: flush now if the last flush is `ms` old, else once `ms` after it. */
  changed(): void {
    if (performance.now() - this.#lastFlush >= this.#ms) this.#run()
    else this.#schedule()
  }

  /** The owner is flushing now (on the timer, at close, before a scan): the next flush is due
   *  `ms` from now. */
  flushing(): void {
    this.cancel()
    this.#lastFlush = performance.now()
  }

  cancel(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #schedule(): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#run()
    }, this.#ms)
    this.#timer.unref()
  }

  #run(): void {
    if (this.#guard !== undefined) {
      this.#guard(this.#flush)
      return
    }
    try {
      this.#flush()
    } catch {
      // the disk is failing; the next flush retries
    }
  }
}
