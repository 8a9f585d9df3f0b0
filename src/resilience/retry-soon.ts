/** How soon a send that failed is tried again. */
export const RETRY_MS = 200

/**
 * One pending retry of something sent to Redis that failed while its breaker stayed closed
 * (a single command timeout on a loaded host): the breaker closing, or the connection coming
 * back, would send it, but neither happens then, and what waits would wait until the next
 * outage. `schedule` sets one unref'd timer at most; `stop` ends it for good (close).
 */
export class RetrySoon {
  readonly #attempt: () => void
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor(attempt: () => void) {
    this.#attempt = attempt
  }

  schedule(): void {
    if (this.#timer !== undefined || this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#attempt()
    }, RETRY_MS)
    this.#timer.unref()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
