import type { BreakerSnapshot } from '../resilience/disk-breaker.js'
import type { ActivityCounters } from '../stats/activity-log.js'
import type { Counters, RefreshCounts, TierName, TierStats } from '../stats/counters.js'
import type { LatencySummary } from '../stats/latency-window.js'
import type { CacheParts } from './cache-parts.js'

/** This instance's counters since it opened (or since `resetStats()`), and more. */
export interface Stats extends ActivityCounters {
  /** hits / (hits + misses); 0 before any read. */
  hitRate: number
  /** Entries in the memory tier (0 when it is off). */
  memoryEntries: number
  latency: { get: LatencySummary; set: LatencySummary }
  /** The file tier's breaker (closed, with nothing counted, when there is no file tier). */
  breaker: BreakerSnapshot
  /** Entries in this namespace on disk, for every process sharing it: running totals, not a
   *  scan (see maintenance/totals.ts); exact after a prune or verify, then within the
   *  writes racing it. */
  entries: number
  /** Bytes of entry files in this namespace on disk (what `maxSize` limits), likewise. */
  size: number
  /** When a prune or verify last counted the tree (ms since the epoch), if ever. */
  scannedAt: number | undefined
  /** Each tier's own figures: the tiers this cache has. */
  tiers: Partial<Record<TierName, TierStats>>
  /** getOrSet's `refreshAhead`: background refreshes started, and how those that ended did. */
  refreshAhead: RefreshCounts
}

const CLOSED: BreakerSnapshot = Object.freeze({ state: 'closed', failures: 0, rejected: 0, opened: 0 })

/** The figures `stats()` returns, assembled from the counters, the memory tier's size, the
 *  running totals, the breakers and the Redis tier's queues (write-back, the bus's outbox). */
export function assembleStats({ counters, memory, disk, shared, writeBack }: CacheParts): Stats {
  const totals: { entries: number; bytes: number; scannedAt?: number | undefined } = disk?.totalsNow() ?? { entries: 0, bytes: 0 }
  const breakers: Partial<Record<TierName, BreakerSnapshot>> = { file: disk?.breaker.snapshot(), redis: shared?.breaker.snapshot() }
  const c = counters.sinceReset()
  const reads = c.hits + c.misses
  const tiers: Partial<Record<TierName, TierStats>> = {}
  for (const [name, tier] of Object.entries(counters.tiers) as [TierName, NonNullable<Counters['tiers'][TierName]>][]) {
    tiers[name] = tier.snapshot(breakers[name])
  }
  // The memory tier's hits are counted once, on the fast path, as memoryHits; its own `hits`
  // counts only those no caller's read counts (increment's and warm's reads of it).
  if (tiers.memory !== undefined) {
    const memory = counters.tiers.memory!
    Object.assign(tiers.memory, { hits: c.memoryHits + memory.hits, shed: memory.shed })
  }
  if (tiers.file !== undefined && disk?.compressLater !== undefined) tiers.file.compressLater = disk.compressLater.counts()
  if (tiers.redis !== undefined) Object.assign(tiers.redis, { queued: writeBack?.size ?? 0, busQueued: shared?.bus?.queued ?? 0 })
  return {
    ...c,
    entries: totals.entries,
    size: totals.bytes,
    scannedAt: totals.scannedAt,
    hitRate: reads === 0 ? 0 : c.hits / reads,
    memoryEntries: memory?.size ?? 0,
    latency: { get: counters.getLatency.summary(), set: counters.setLatency.summary() },
    breaker: breakers.file ?? CLOSED,
    tiers,
    refreshAhead: { ...counters.refreshes },
  }
}
