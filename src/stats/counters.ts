import type { CompressLaterCounts } from '../maintenance/compress-later.js'
import type { BreakerSnapshot } from '../resilience/disk-breaker.js'
import type { ActivityCounters } from './activity-log.js'
import { LatencyWindow, type LatencySummary } from './latency-window.js'

export type TierName = 'memory' | 'file' | 'redis'

/** One tier's figures in `stats().tiers`. */
export interface TierStats {
  /** Reads this tier answered with a live entry. */
  hits: number
  /** Reads that asked this tier and went on below it (or missed). */
  misses: number
  /** Entries written to this tier (promotions from a lower tier included). */
  sets: number
  /** Live entries removed from this tier by `delete`/`deleteMany`. */
  deletes: number
  /** Failed operations of this tier (a failing disk, an unreachable Redis). */
  errors: number
  /** Writes this tier should have stored and did not. */
  dropped: number
  /** Reads (on a hit or a miss here) and writes of this tier, in ms. The memory tier's
   *  reads are timed one in 64. */
  latency: { get: LatencySummary; set: LatencySummary }
  /** Its circuit breaker, for the tiers that have one (file, redis). */
  breaker?: BreakerSnapshot
  /** memory only: entries dropped under memory pressure (see facade/pressure.ts). */
  shed?: number
  /** redis only: writes waiting in the write-back queue. */
  queued?: number
  /** redis only: bus messages waiting for Redis to be reachable. */
  busQueued?: number
  /** file only: large values written uncompressed and compressed by a worker after their set
   *  (the `compressLater` option). */
  compressLater?: CompressLaterCounts
}

/** One tier's running counts. */
export class TierCounters {
  hits = 0
  misses = 0
  sets = 0
  deletes = 0
  errors = 0
  dropped = 0
  /** The memory tier's: entries shed under memory pressure. */
  shed = 0
  get = new LatencyWindow()
  set = new LatencyWindow()

  reset(): void {
    this.hits = this.misses = this.sets = this.deletes = this.errors = this.dropped = this.shed = 0
    this.get = new LatencyWindow()
    this.set = new LatencyWindow()
  }

  snapshot(breaker?: BreakerSnapshot): TierStats {
    const { hits, misses, sets, deletes, errors, dropped } = this
    const stats: TierStats = { hits, misses, sets, deletes, errors, dropped, latency: { get: this.get.summary(), set: this.set.summary() } }
    if (breaker !== undefined) stats.breaker = breaker
    return stats
  }
}

/** `stats().refreshAhead`: background refreshes started, and how those that ended did. */
export interface RefreshCounts {
  started: number
  refreshed: number
  failed: number
  superseded: number
  elsewhere: number
}

const NO_REFRESHES: RefreshCounts = Object.freeze({ started: 0, refreshed: 0, failed: 0, superseded: 0, elsewhere: 0 })

const ZERO: ActivityCounters = Object.freeze({
  hits: 0,
  misses: 0,
  memoryHits: 0,
  sets: 0,
  deletes: 0,
  expired: 0,
  corrupt: 0,
  errors: 0,
  dropped: 0,
  bytesWritten: 0,
  bytesRead: 0,
})

/**
 * Everything an instance counts. `counts` are its lifetime figures (what `activity()` records
 * when it closes, so `resetStats()` never takes anything from that record); `stats()` shows
 * them less the `baseline` the last reset took. Per-tier figures and latencies exist only for
 * `stats()`, and a reset simply zeroes them.
 */
export class Counters {
  readonly counts: ActivityCounters = { ...ZERO }
  #baseline: ActivityCounters = ZERO
  getLatency = new LatencyWindow()
  setLatency = new LatencyWindow()
  readonly tiers: Partial<Record<TierName, TierCounters>> = {}
  /** getOrSet's refresh-ahead: refreshes started, and how each ended. */
  refreshes: RefreshCounts = { ...NO_REFRESHES }

  constructor(tiers: readonly TierName[]) {
    for (const tier of tiers) this.tiers[tier] = new TierCounters()
  }

  /** The counts since the last reset. */
  sinceReset(): ActivityCounters {
    const since = { ...this.counts }
    for (const name of Object.keys(since) as (keyof ActivityCounters)[]) since[name] -= this.#baseline[name]
    return since
  }

  reset(): void {
    this.#baseline = { ...this.counts }
    this.getLatency = new LatencyWindow()
    this.setLatency = new LatencyWindow()
    for (const tier of Object.values(this.tiers)) tier.reset()
    this.refreshes = { ...NO_REFRESHES }
  }
}
