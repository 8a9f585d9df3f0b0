import type { EventEmitter } from 'node:events'
import type { MaintenanceProgress, PruneReport } from '../maintenance/maintainer.js'
import type { BreakerState } from '../resilience/disk-breaker.js'
import type { CorruptReport } from '../tiers/file-tier.js'
import type { PressureReading } from './pressure.js'
import type { RefreshReport } from './refresh-ahead.js'
import type { ConfigChange } from './reconfigure.js'

/** Events and their arguments. `error` is emitted only when someone listens for it. */
export interface LarderEvents {
  error: [error: Error]
  /** `tier`: the memory tier, or below it (`disk`, the shared tier's hits included, as
   *  always); `source`: exactly which tier answered. (A third argument rather than a wider
   *  `tier`, so listeners typed for `'memory' | 'disk'` still compile.) */
  hit: [key: string, tier: 'memory' | 'disk', source: 'memory' | 'file' | 'redis']
  miss: [key: string]
  set: [key: string]
  delete: [key: string]
  corrupt: [info: CorruptReport]
  /** A breaker changed state: the file tier's (the disk) or the Redis tier's. */
  breaker: [state: BreakerState, tier: 'file' | 'redis']
  /** Progress of a prune or verify (scan, evict and verify phases). */
  progress: [progress: MaintenanceProgress]
  /** An automatic prune (interval or over-budget write) finished. */
  prune: [report: PruneReport]
  /** Memory pressure rose to `highWater` or fell below `lowWater` (`memoryPressure`). */
  pressure: [reading: PressureReading]
  /** A getOrSet `refreshAhead` background refresh ended (see RefreshOutcome). */
  refresh: [report: RefreshReport]
  /** `configure()` changed these options (never emitted for a call that changed nothing). */
  configure: [changes: ConfigChange[]]
}

/**
 * Counts the listeners of one event from `newListener`/`removeListener`, so that a hot path
 * can skip emitting it (emit() gathers its arguments into an array even when nobody listens,
 * and a memory hit is cheap enough to notice that).
 */
export class ListenerCount {
  count = 0
  readonly #emitter: EventEmitter
  readonly #event: string
  readonly #added = (event: string | symbol): void => {
    if (event === this.#event) this.count++
  }

  readonly #removed = (event: string | symbol): void => {
    if (event === this.#event) this.count--
  }

  constructor(emitter: EventEmitter, event: string) {
    this.#emitter = emitter
    this.#event = event
    this.watch()
  }

  /** Installs the hooks unless they are in place (removeAllListeners() takes them), and
   *  recounts. */
  watch(): void {
    const emitter = this.#emitter
    if (!emitter.listeners('newListener').includes(this.#added)) emitter.on('newListener', this.#added)
    if (!emitter.listeners('removeListener').includes(this.#removed)) emitter.on('removeListener', this.#removed)
    this.count = emitter.listenerCount(this.#event)
  }
}
