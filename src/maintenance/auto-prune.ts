import type { ResolvedOptions } from '../options.js'
import type { Maintainer, PruneReport } from './maintainer.js'
import type { RunningTotals, Totals } from './totals.js'

interface AutoPruneParts {
  options: ResolvedOptions
  maintainer: Maintainer
  totals: RunningTotals
  /** An automatic prune finished. */
  pruned(report: PruneReport): void
  /** An automatic prune failed (a failing disk); nobody else would hear of it. */
  failed(error: Error): void
}

/**
 * Prunes without being asked: on `maintenance.interval`, and after a write that takes the
 * running totals over a budget. One prune at a time per instance; it stands aside while
 * another process holds the maintenance lock, and tries again while still over budget.
 */
export class AutoPrune {
  readonly #p: AutoPruneParts
  readonly #budgeted: boolean
  readonly #abort = new AbortController()
  #running: Promise<void> | undefined
  #interval: NodeJS.Timeout | undefined
  #closed = false

  constructor(parts: AutoPruneParts) {
    this.#p = parts
    const { maintenance, maxSize, maxEntries } = parts.options
    this.#budgeted = maintenance.auto && (maxSize !== undefined || maxEntries !== undefined)
    if (maintenance.auto && maintenance.interval > 0) {
      this.#interval = setInterval(() => this.start(), maintenance.interval)
      this.#interval.unref()
    }
  }

  /** After a write: start a prune if the totals now exceed a budget. */
  afterWrite(): void {
    if (!this.#budgeted || this.#running !== undefined) return
    if (this.#overBudget(this.#p.totals.estimate())) this.start()
  }

  /** Starts a prune in the background unless one is running. */
  start(): void {
    if (this.#running !== undefined || this.#closed) return
    this.#running = (async () => {
      // Another process pruning may have counted before our last writes: once it is done,
      // prune again if the totals are still over budget (a few tries, a quarter second apart).
      for (let attempt = 0; attempt < 40; attempt++) {
        if (attempt > 0) {
          await new Promise((resolve) => setTimeout(resolve, 250))
          if (!this.#overBudget(this.#p.totals.read())) return
        }
        const report = await this.#p.maintainer.prune({ signal: this.#abort.signal }, true)
        if (!report.skipped) {
          this.#p.pruned(report)
          return
        }
      }
    })()
      .catch((error: unknown) => {
        if (!this.#abort.signal.aborted) this.#p.failed(error as Error)
      })
      .finally(() => {
        this.#running = undefined
      })
  }

  /** Stops the interval. A short-lived process (a build step) that pushed the cache over
   *  budget should leave it within budget: a prune in progress is let finish. */
  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#interval)
    await this.#running
  }

  #overBudget({ entries, bytes }: Totals): boolean {
    const { maxSize, maxEntries } = this.#p.options
    return (maxSize !== undefined && bytes > maxSize) || (maxEntries !== undefined && entries > maxEntries)
  }
}
