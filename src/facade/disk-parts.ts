import { recordBudget } from '../maintenance/budget-record.js'
import { crowded, worthALook } from '../maintenance/crowding.js'
import { AutoPrune } from '../maintenance/auto-prune.js'
import { CompressLater } from '../maintenance/compress-later.js'
import { HitLog } from '../maintenance/hit-log.js'
import { LastUse } from '../maintenance/last-use.js'
import { Maintainer, type MaintenanceProgress, type PruneReport } from '../maintenance/maintainer.js'
import { MaintenancePool } from '../maintenance/pool.js'
import { RunningTotals } from '../maintenance/totals.js'
import type { ResolvedOptions } from '../options.js'
import { DiskBreaker, type BreakerState } from '../resilience/disk-breaker.js'
import { ActivityLog, type ActivityCounters } from '../stats/activity-log.js'
import { ChangeWatch } from '../store/change-watch.js'
import { ChangeClock } from '../store/change-clock.js'
import { recordedEntriesSince, recordEntriesSince } from '../store/entries-since.js'
import { Layout } from '../store/layout.js'
import { recordNamespaceName } from '../store/namespace-name.js'
import { TagClock } from '../store/tag-clock.js'
import { FileTier, type CorruptReport } from '../tiers/file-tier.js'

/** What the disk side tells the facade (which turns each into an event or a count). */
export interface DiskHooks {
  counts: ActivityCounters
  corrupt: (report: CorruptReport) => void
  breaker: (state: BreakerState) => void
  progress: (progress: MaintenanceProgress) => void
  pruned: (report: PruneReport) => void
  /** An automatic prune failed: nobody else would hear of it. */
  pruneFailed: (error: Error) => void
  /** See FileTierParts.streamFailed. */
  streamFailed: (error: unknown) => unknown
}

/** The disk parts of every instance open in this process, by namespace directory: a prune
 *  writes the pending uses of them all (merged LRU touches, LFU hit counts), so that it sees
 *  every disk hit of this process, not only its own instance's (an instance beside it counted
 *  as another process: within touchAfter). */
const openHere = new Map<string, Set<DiskParts>>()

/**
 * Everything a cache with a directory owns besides its memory tier: the layout, the breaker
 * that guards every disk step, the file tier, the shared clocks (tag stamps, the change log),
 * and the bookkeeping and maintenance that keep the directory within its budget. The facade
 * composes it; `dir: false` has none of it.
 */
export class DiskParts {
  readonly layout: Layout
  readonly tags: TagClock
  readonly changes: ChangeClock
  /** What getOrSet's loads ask of the change log before they store. */
  readonly changeWatch: ChangeWatch
  readonly breaker: DiskBreaker
  readonly totals: RunningTotals
  readonly hitLog: HitLog | undefined
  readonly lastUse: LastUse
  readonly activity: ActivityLog
  readonly pool: MaintenancePool
  readonly maintainer: Maintainer
  readonly autoPrune: AutoPrune
  readonly files: FileTier
  /** Large values compressed after their set, in the workers (undefined: read-only). */
  readonly compressLater: CompressLater | undefined
  readonly #compressPool = new MaintenancePool(1)
  readonly #options: ResolvedOptions

  /** Hits are counted for LFU (the hit log exists whatever the policy: configure() may
   *  switch to LFU). Read from the live options, per hit. */
  get countsHits(): boolean {
    return this.hitLog !== undefined && this.#options.evictionPolicy === 'lfu'
  }

  constructor(options: ResolvedOptions & { dir: string }, hooks: DiskHooks) {
    this.#options = options
    this.layout = new Layout(options.dir, options.namespace, options.shared)
    // A link or foreign file where a directory or file of ours belongs: removed, and counted
    // and reported like a corrupt entry.
    this.layout.tree.onForeign = (file, reason) => {
      hooks.counts.corrupt++
      hooks.corrupt({ key: undefined, file, reason })
    }
    this.tags = new TagClock(this.layout, { readOnly: options.readOnly })
    this.breaker = new DiskBreaker(options.breaker, hooks.breaker)
    const guard = (step: () => void): void => {
      try {
        this.bookkeeping(step)
      } catch {
        // skipped (breaker open) or failed (counted): what it was to write stays pending
      }
    }
    this.totals = new RunningTotals(this.layout, guard)
    // Kept whatever the policy (it writes nothing until a hit is counted, and the file tier
    // counts hits only under 'lfu'), so that configure() can switch to LFU.
    this.hitLog = options.readOnly ? undefined : new HitLog(this.layout, guard)
    this.pool = new MaintenancePool(options.maintenance.workers)
    this.lastUse = new LastUse(options.maintenance.touchAfter, guard, (files, times) => this.pool.run({ task: 'touch', files, times }))
    this.activity = new ActivityLog(this.layout)
    this.changes = new ChangeClock(this.layout)
    this.changeWatch = new ChangeWatch(this.layout)
    this.compressLater = options.readOnly
      ? undefined
      : new CompressLater({
          layout: this.layout,
          options,
          // A pool of its own: a task holds its thread while sets keep coming, and a prune must
          // not wait behind it (maintenance.workers is one by default).
          run: (input, transfer) => this.#compressPool.run(input, { transfer }),
          diskClosed: () => this.breaker.state === 'closed',
          failed: (error) => this.bookkeepingFailed(error),
        })
    this.files = new FileTier({
      layout: this.layout,
      options,
      breaker: this.breaker,
      tags: this.tags,
      totals: this.totals,
      hitLog: this.hitLog,
      changes: this.changes,
      lastUse: options.readOnly ? undefined : this.lastUse,
      counts: hooks.counts,
      corrupt: hooks.corrupt,
      streamFailed: hooks.streamFailed,
      removeTrash: (trash) => this.pool.run({ task: 'remove-trash', trash }),
      compressLater: this.compressLater,
    })
    this.maintainer = new Maintainer({
      layout: this.layout,
      options,
      totals: this.totals,
      pool: this.pool,
      pruneStarted: async () => {
        const here = [...(openHere.get(this.layout.namespaceDir) ?? [this])]
        // The values this process wrote plain are counted compressed (compress-later.ts,
        // caughtUp); another process's, at most a second plain, as they are found.
        for (const parts of here) await parts.compressLater?.caughtUp()
        await this.lastUse.pruneStarted()
        // Another instance's failure to write its uses is its own: this prune goes on.
        const others = here.filter((parts) => parts !== this)
        await Promise.all(others.map((parts) => parts.lastUse.pruneStarted().catch(() => {})))
        this.hitLog?.flush()
        for (const parts of others) {
          try {
            parts.hitLog?.flush()
          } catch {
            // that instance's disk trouble, counted when it next writes
          }
        }
      },
      pruneEnded: () => {
        for (const parts of openHere.get(this.layout.namespaceDir) ?? [this]) parts.lastUse.pruneEnded()
      },
      breaker: { isOpen: () => this.breaker.state === 'open', failed: (error) => this.bookkeepingFailed(error) },
      compactActivity: () => this.activity.compact(),
      progress: hooks.progress,
      heldByReader: () => {
        const removals = this.files.heardRemovals()
        const tags = this.tags.heldStamps()
        return removals === undefined && tags === undefined ? undefined : { removals, tags }
      },
    })
    const here = openHere.get(this.layout.namespaceDir) ?? new Set<DiskParts>()
    openHere.set(this.layout.namespaceDir, here.add(this))
    this.autoPrune = new AutoPrune({
      options,
      maintainer: this.maintainer,
      totals: this.totals,
      pruned: hooks.pruned,
      failed: hooks.pruneFailed,
    })
  }

  /** Refuses a directory others control, creates the namespace, records the budget ("no
   *  budget" too) and the namespace's name (store/namespace-name.ts), then folds piled-up
   *  bookkeeping files if an opener should. Throws disk failures (and ERR_UNSAFE_DIR) for the
   *  facade to judge. */
  async prepare(): Promise<void> {
    await this.files.prepare()
    const { maxSize, maxEntries, evictionPolicy } = this.#options
    recordBudget(this.layout, { maxSize, maxEntries, evictionPolicy })
    recordNamespaceName(this.layout, this.#options.namespace)
    this.tags.entriesSince = recordEntriesSince(this.layout)
  }

  /** A read-only instance's open: the directory's record of its oldest entry read, not made
   *  (the walks in the workers are then not handed the stamps older than it). */
  learnEntriesSince(): void {
    this.tags.entriesSince = recordedEntriesSince(this.layout)
  }

  /** Before the stamps Redis holds are judged: the record as it stands now, if another
   *  instance lowered it (its clock behind this one's: store/entries-since.ts). */
  refreshEntriesSince(): void {
    this.tags.entriesSince = Math.min(this.tags.entriesSince, recordedEntriesSince(this.layout))
  }

  /** Folds per-process bookkeeping files that piled up in a cache nobody prunes; starts a
   *  prune if a clear was abandoned part way (AutoPrune.afterOpen). */
  async foldIfCrowded(): Promise<void> {
    if (worthALook() && (this.totals.crowded() || this.activity.crowded() || crowded(this.layout.hitsDir))) {
      await this.maintainer.foldBookkeeping().catch(() => {}) // a failing disk (counted by the breaker): next time
    }
    this.autoPrune.afterOpen()
  }

  /**
   * A bookkeeping step on the disk (running totals, hit counts, merged touches, activity
   * records read back): refused while the breaker is open, so a failing disk is left alone, and
   * its failure is counted by the breaker like any operation's. Its successes are not: the
   * breaker's rates stay those of the application's own calls. Sync, so it serves the exit hook.
   */
  bookkeeping<T>(step: () => T): T {
    if (this.breaker.state === 'open') throw Object.assign(new Error('Breaker is open'), { code: 'EOPENBREAKER' })
    try {
      return step()
    } catch (error) {
      this.bookkeepingFailed(error)
      throw error
    }
  }

  /** Counts a failed bookkeeping or maintenance step in the breaker, as opossum counts any
   *  failure: an operation run through it that failed (it judges whether it is a disk's). A
   *  synchronous throw is counted at once, before the caller reads the breaker's state. */
  bookkeepingFailed(error: unknown): void {
    this.breaker
      .run(() => {
        throw error
      })
      .catch(() => {})
  }

  /** Entries and bytes on disk from the running totals; the last known figures while the
   *  disk fails (or the breaker is open). */
  totalsNow(): { entries: number; bytes: number; scannedAt?: number | undefined } {
    try {
      return this.bookkeeping(() => this.totals.read())
    } catch {
      return this.totals.lastKnown()
    }
  }

  /** Writes the running totals, hit counts and merged touches this process holds, through
   *  the breaker (not while it is open; a failure is counted). Sync: runs at exit too. */
  flushCounters(): void {
    // A failing disk or an open breaker: the next full scan corrects the totals.
    for (const flush of [() => this.lastUse.flush(), () => this.totals.flush(), () => this.hitLog?.flush()]) {
      try {
        this.bookkeeping(flush)
      } catch {
        // skipped or counted
      }
    }
  }

  /** Leaves this instance's counters and breaker state for `activity()`. Sync: runs at exit too. */
  recordActivity(counts: ActivityCounters): void {
    try {
      this.activity.record(counts, this.breaker.snapshot().state)
    } catch {
      // the disk is failing: this run goes unrecorded
    }
  }

  /** Stops maintenance (after an automatic prune in progress), flushes what is pending and
   *  releases timers, workers and the breaker. */
  async close(counts: ActivityCounters): Promise<void> {
    await this.files.settleAtClose()
    await this.autoPrune.close()
    await this.maintainer.close()
    await this.compressLater?.close()
    const here = openHere.get(this.layout.namespaceDir)
    here?.delete(this)
    if (here?.size === 0) openHere.delete(this.layout.namespaceDir)
    // Before the last flush: a stream handed out earlier removes nothing from now on.
    this.files.closed()
    if (!this.#options.readOnly) {
      await this.lastUse.settled()
      this.flushCounters()
      this.recordActivity(counts)
    }
    this.totals.stop()
    this.hitLog?.stop()
    this.lastUse.stop()
    await this.files.ended()
    await this.pool.destroy()
    await this.#compressPool.destroy()
    this.breaker.shutdown()
    this.tags.close()
    this.changes.close()
    this.changeWatch.close()
  }
}
