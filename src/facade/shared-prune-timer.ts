import type { ResolvedOptions } from '../options.js'
import type { PruneReport } from '../maintenance/maintainer.js'

export interface SharedPruneTimerParts {
  /** The live options (configure() changes `maintenance` in place). */
  options: ResolvedOptions
  /** One prune of Redis's part (operator-calls.ts, pruneShared), cancelled by `signal`. */
  prune(signal: AbortSignal): Promise<PruneReport>
  /** A run finished: its report, as an automatic prune's ('prune' event). */
  pruned(report: PruneReport): void
  /** A run failed (Redis unreachable): nobody else would hear of it. */
  failed(error: Error): void
}

/**
 * The automatic prune of a cache with `redis` and no directory (`dir: false`), on
 * `maintenance.interval`: with a directory, the hourly prune (maintenance/auto-prune.ts) also
 * removes from Redis the entries no instance will serve again; without one nothing did, and
 * an entry without a ttl invalidated by its tag stayed in Redis for good. One run at a time;
 * the timer never keeps the process alive; close() cancels a run (after the SCAN page in hand)
 * and waits for it.
 */
export class SharedPruneTimer {
  readonly #p: SharedPruneTimerParts
  readonly #abort = new AbortController()
  #interval: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(parts: SharedPruneTimerParts) {
    this.#p = parts
    this.#schedule()
  }

  /** `maintenance` changed (`configure()`): its interval read again. */
  reconfigured(): void {
    if (this.#abort.signal.aborted) return
    clearInterval(this.#interval)
    this.#interval = undefined
    this.#schedule()
  }

  #schedule(): void {
    const { maintenance, readOnly } = this.#p.options
    if (!maintenance.auto || readOnly || maintenance.interval <= 0) return
    this.#interval = setInterval(() => this.#start(), maintenance.interval)
    this.#interval.unref()
  }

  #start(): void {
    if (this.#running !== undefined) return
    this.#running = this.#p
      .prune(this.#abort.signal)
      .then((report) => this.#p.pruned(report))
      .catch((error: unknown) => {
        if (!this.#abort.signal.aborted) this.#p.failed(error as Error)
      })
      .finally(() => {
        this.#running = undefined
      })
  }

  async close(): Promise<void> {
    this.#abort.abort()
    clearInterval(this.#interval)
    await this.#running
  }
}
