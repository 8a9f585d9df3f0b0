import type { ResolvedOptions } from '../options.js'
import { isBreakerOpen } from '../resilience/disk-breaker.js'
import type { Maintainer, PruneReport } from './maintainer.js'
import type { RunningTotals, Totals } from './totals.js'

export interface AutoPruneParts {
  options: ResolvedOptions
  maintainer: Maintainer
  totals: RunningTotals
  /** An automatic prune finished. */
  pruned(report: PruneReport): void
  /** An automatic prune failed (a failing disk); nobody else would hear of it. */
  failed(error: Error): void
}

/** How long to wait between tries while another process holds the lock, and how many. */
const RETRY_MS = 250
const RETRIES = 40
/** While the cache is over budget and another process prunes (or it holds HOLDER_PACED_FROM
 *  budgets while this one does), this instance's writes are spaced this long apart for each
 *  budget's worth the totals hold… */
const PACE_MS_PER_BUDGET = 1
/** …and never more than this. */
const PACE_MS_AT_MOST = 100
/** A write never waits longer than this for its turn, however many are in flight (a setMany
 *  of thousands would otherwise wait minutes for its last). */
const PACED_WAIT_AT_MOST = 1000
/** The process whose own prune runs is paced so too once the totals hold this many budgets. */
const HOLDER_PACED_FROM = 4

/**
 * Prunes without being asked: on `maintenance.interval`, and after a write that takes the
 * running totals over a budget. One run at a time per instance; writers never wait for it.
 *
 * A run prunes until the totals are within budget: writes made while a pass ran (which the
 * pass may have missed) are checked for when it ends, and another pass follows if they took
 * the cache over budget again. So a burst is caught up with as soon as it ends, and close()
 * (which waits for the run) leaves the cache within budget as far as this process's writes go.
 * A run stands aside while another process holds the maintenance lock and tries again, a
 * quarter second apart, while the cache is still over budget (ten seconds at most: then the
 * next write over budget starts another run); it also stops when a pass frees
 * nothing (every victim was in use), until the next write. A clear killed part way leaves the
 * totals at zero while entries stay: an instance that opens or writes then runs a pass, whose
 * scan counts them.
 */
export class AutoPrune {
  readonly #p: AutoPruneParts
  #budgeted = false
  readonly #abort = new AbortController()
  #running: Promise<void> | undefined
  #interval: NodeJS.Timeout | undefined
  #closed = false
  /** A write came while a pass ran (afterWrite left it to the run). */
  #wroteDuringPass = false
  /** The run is waiting for another hold of the lock to end (from a try that found it held
   *  until the try that takes it), and whether that holder evicts, as its owner says (a
   *  prune's: this instance's writes are paced) or not (a verify's, a rekey's: they are not;
   *  see #paced). */
  #standingAside: 'for a prune' | 'for other work' | undefined
  /** When the next write paced while standing aside may go on (see #paced). */
  #pacedUntil = 0

  constructor(parts: AutoPruneParts) {
    this.#p = parts
    this.#schedule()
  }

  /** The options changed (`configure()`): the budget and interval are read again, and a run
   *  starts if the cache is now over a (lower) budget. */
  reconfigured(): void {
    if (this.#closed) return
    clearInterval(this.#interval)
    this.#interval = undefined
    this.#schedule()
    void this.afterWrite()
  }

  #schedule(): void {
    const { maintenance, maxSize, maxEntries, readOnly } = this.#p.options
    // A read-only instance removes nothing, whatever budget or interval it was given (options.ts
    // turns `auto` off for it; checked here too, as start() does, since a run evicts).
    const auto = maintenance.auto && !readOnly
    this.#budgeted = auto && (maxSize !== undefined || maxEntries !== undefined)
    if (auto && maintenance.interval > 0) {
      this.#interval = setInterval(() => this.start(), maintenance.interval)
      this.#interval.unref()
    }
  }

  /**
   * After a write: start a run if the totals now exceed a budget. A run in progress checks
   * for this write itself when its pass ends; meanwhile, while the cache is over budget, the
   * write waits for one turn of the event loop (the promise returned). Small sets complete
   * without giving the event loop a turn, so a burst of them (`for … await set()`) kept the
   * run's workers from reporting back at all: the cache grew by the whole burst before the
   * first eviction. A turn per write lets the prune keep pace, mostly; past HOLDER_PACED_FROM
   * budgets, or while the run stands aside for another process's prune (where a turn paces
   * nothing), the write is spaced from the others instead (#paced). While it stands aside for
   * a hold that evicts nothing (a verify, a rekey), the write goes on at once.
   */
  afterWrite(): Promise<void> | undefined {
    if (!this.#budgeted) return undefined
    if (this.#running !== undefined) {
      this.#wroteDuringPass = true
      const totals = this.#p.totals.estimate()
      if (!this.#overBudget(totals) || this.#standingAside === 'for other work') return undefined
      return this.#standingAside === 'for a prune' || this.#over(totals) >= HOLDER_PACED_FROM
        ? this.#paced(totals)
        : new Promise((resolve) => setImmediate(resolve))
    }
    if (this.#overBudget(this.#p.totals.estimate()) || this.#p.totals.abandonedClear()) this.start()
    return undefined
  }

  /** At open: a run now if a clear was abandoned part way (totals.ts, cleared()), whose zero
   *  leaves the entries it did not move uncounted until a scan counts them. */
  afterOpen(): void {
    const { maintenance, readOnly } = this.#p.options
    if (maintenance.auto && !readOnly && this.#p.totals.abandonedClear(true)) this.start()
  }

  /** Starts a run in the background unless one is running. */
  start(): void {
    if (this.#running !== undefined || this.#closed || this.#p.options.readOnly) return
    this.#running = this.#run()
      .catch((error: unknown) => {
        // While the breaker is open the disk is left alone: nothing to report.
        if (!this.#abort.signal.aborted && !isBreakerOpen(error)) this.#p.failed(error as Error)
      })
      .finally(() => {
        this.#running = undefined
        this.#standingAside = undefined
      })
  }

  /** Stops the interval and waits for a run in progress: a short-lived process (a build step)
   *  that pushed the cache over budget should leave it within budget. */
  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#interval)
    await this.#running
  }

  /**
   * The back-pressure on a write over budget while another process's prune holds the lock: a
   * turn of the event loop paces only the process whose own workers prune, and
   * three writers of which two stood aside wrote at full speed, the cache on disk reaching 290
   * times its budget in a burst. So this process's writes are spaced apart, in call order and
   * however many are in flight, PACE_MS_PER_BUDGET for each budget's worth the totals are over
   * (at most PACE_MS_AT_MOST; none waits over PACED_WAIT_AT_MOST): the further over, the
   * slower they come, until the pruner's evictions keep pace with them. The process pruning is
   * paced so too past HOLDER_PACED_FROM budgets: its turn per write let one process's burst
   * reach 15 budgets.
   *
   * Only a prune's hold paces (its owner file says so: lock.ts, or says nothing, as an older
   * larder's does). A verify or a rekey holds the lock for minutes on a big cache and evicts
   * nothing: pacing then throttled every process's writes to about ten a second for as long as
   * an operator's check ran, for no eviction to keep pace with. So while the run stands aside
   * for one, writes go on at full speed and the cache overshoots its budget until the job
   * ends; the run's next try (or, past its retries, the next write over budget) then prunes it
   * back. A prune does not run beside them: both a verify with repair and a prune write the
   * running totals from a scan of their own, and a rekey holds entries aside in place.
   */
  #paced({ entries, bytes }: Totals): Promise<void> {
    const spacing = Math.min(PACE_MS_AT_MOST, Math.max(1, Math.floor(this.#over({ entries, bytes }))) * PACE_MS_PER_BUDGET)
    const now = Date.now()
    this.#pacedUntil = Math.min(now + PACED_WAIT_AT_MOST, Math.max(now, this.#pacedUntil) + spacing)
    return new Promise((resolve) => setTimeout(resolve, this.#pacedUntil - now))
  }

  async #run(): Promise<void> {
    for (let tries = 0; tries < RETRIES;) {
      this.#wroteDuringPass = false
      const report = await this.#p.maintainer.prune({ signal: this.#abort.signal }, { locked: () => (this.#standingAside = undefined) })
      if (report.skipped) {
        // Another process is pruning (it may have counted before our last writes), or doing
        // work that evicts nothing; which of the two is looked at on every try.
        tries++
        this.#standingAside = this.#p.maintainer.lockHeldToEvict() ? 'for a prune' : 'for other work'
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      } else {
        this.#p.pruned(report)
        // A pass that freed nothing ends the run (every victim was in use: another pass now
        // would free nothing either), unless writes came while it ran: its scan may have missed
        // them, and their afterWrite left them to this run, so they are checked for below.
        if (report.freedBytes === 0 && report.evicted === 0 && !this.#wroteDuringPass) return
        tries = 0
      }
      // Read from the files, not the estimate: the writes that raced the pass are in them.
      if (!this.#overBudget(this.#p.totals.read())) return
    }
  }

  /** How many budgets' worth the totals hold (the larger of the two budgets' shares). */
  #over({ entries, bytes }: Totals): number {
    const { maxSize, maxEntries } = this.#p.options
    return Math.max(maxSize === undefined ? 0 : bytes / maxSize, maxEntries === undefined ? 0 : entries / maxEntries)
  }

  #overBudget({ entries, bytes }: Totals): boolean {
    const { maxSize, maxEntries } = this.#p.options
    return (maxSize !== undefined && bytes > maxSize) || (maxEntries !== undefined && entries > maxEntries)
  }
}
