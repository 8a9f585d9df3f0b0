import type { ResolvedMemoryPressure } from '../options.js'
import { watchMemory, type MemoryReading } from '../resilience/memory-watch.js'
import type { TierCounters } from '../stats/counters.js'
import type { MemoryTier } from '../tiers/memory-tier.js'

/** What the `pressure` event carries: the reading, and the level it put this cache at. */
export interface PressureReading extends MemoryReading {
  level: 'high' | 'normal'
}

export interface PressureParts {
  memory: MemoryTier | undefined
  /** The memory tier's counters (`shed`), when it has one. */
  counts: TierCounters | undefined
  emit(reading: PressureReading): void
}

/**
 * One cache's answer to memory pressure (thresholds: options.ts, `memoryPressure`; readings:
 * resilience/memory-watch.ts). A reading's share is the larger of heap used / heap limit and
 * RSS / RSS limit. At or above `highWater`: the memory tier sheds down to `shedTo` of what it
 * holds, least recently used first, and stays within that bound (a new entry replaces an old
 * one) while the pressure lasts; every further high reading sheds again, so pressure that
 * persists empties it. `high` is read by the tier stack, whose write-back queue then stops
 * growing (writes go straight to Redis). Below `lowWater` the bound is lifted. The `pressure`
 * event fires on each change of level, with the reading. Between the marks the level stays.
 */
export class MemoryPressure {
  high = false
  readonly #options: ResolvedMemoryPressure
  readonly #p: PressureParts
  #unwatch: (() => void) | undefined

  constructor(options: ResolvedMemoryPressure, parts: PressureParts) {
    this.#options = options
    this.#p = parts
  }

  /** Joins the process's readings (once the cache is open). */
  start(): void {
    this.#unwatch ??= watchMemory({ interval: this.#options.interval, reading: (reading) => this.#judge(reading) })
  }

  close(): void {
    this.#unwatch?.()
  }

  #judge(reading: MemoryReading): void {
    const share = Math.max(reading.heapUsed / reading.heapLimit, reading.rss / reading.rssLimit)
    const { memory, counts } = this.#p
    if (share >= this.#options.highWater) {
      const shed = memory?.shed(this.#options.shedTo)
      if (shed !== undefined && counts !== undefined) counts.shed += shed.entries
      if (this.high) return
      this.high = true
      this.#p.emit({ ...reading, level: 'high' })
    } else if (this.high && share < this.#options.lowWater) {
      this.high = false
      memory?.relieve()
      this.#p.emit({ ...reading, level: 'normal' })
    }
  }
}
