import type { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { BATCH_PARALLELISM, Slots } from '../batch-slots.js'
import { isLarderError, LarderError } from '../errors.js'
import type { KeyOrder } from '../key-order.js'
import type { Counters } from '../stats/counters.js'
import type { FileTier } from '../tiers/file-tier.js'
import type { MemoryTier } from '../tiers/memory-tier.js'
import { answerOf } from '../tiers/memory-tier.js'
import { MISS, type TierRead } from '../tiers/tier.js'
import type { StackRead, TierStack } from '../tiers/tier-stack.js'
import type { DiskParts } from './disk-parts.js'
import type { LarderEvents, ListenerCount } from './events.js'
import type { Failures } from './failures.js'

export interface CountedReadsParts {
  memory: MemoryTier | undefined
  stack: TierStack
  order: KeyOrder
  counters: Counters
  disk: DiskParts | undefined
  events: EventEmitter<LarderEvents>
  hitListeners: ListenerCount
  failures: Failures
  /** The file tier, for a method that needs one (CacheParts.files). */
  files: (method: string) => FileTier
}

/** One memory-tier hit in this many is timed. A clock read (performance.now(), Date.now())
 *  costs ~115 ns on these VMs, about the cost of the whole hit; timing one hit in 16 took
 *  two of them per 16 hits, on top of the memory tier's own clock read (issue 14's
 *  profile). One in 64 still fills the 4,096-sample latency window within 262,144 hits. */
const MEMORY_HITS_PER_TIMING = 64

/**
 * Reads as the caller sees them: each one counted as one hit or miss, timed, and heard as a
 * 'hit' or 'miss' event. The memory tier's hit is the hot path: a lookup, two counters, and
 * one timing in MEMORY_HITS_PER_TIMING.
 */
export class CountedReads {
  readonly #memory: MemoryTier | undefined
  readonly #stack: TierStack
  readonly #order: KeyOrder
  readonly #counters: Counters
  readonly #disk: DiskParts | undefined
  readonly #events: EventEmitter<LarderEvents>
  readonly #hitListeners: ListenerCount
  readonly #failures: Failures
  readonly #files: (method: string) => FileTier
  /** Gets tried on the memory tier, to time one in MEMORY_HITS_PER_TIMING of its hits. */
  #memoryGets = 0

  constructor(parts: CountedReadsParts) {
    this.#memory = parts.memory
    this.#stack = parts.stack
    this.#order = parts.order
    this.#counters = parts.counters
    this.#disk = parts.disk
    this.#events = parts.events
    this.#hitListeners = parts.hitListeners
    this.#failures = parts.failures
    this.#files = parts.files
  }

  /** A fresh memory-tier entry, counted as a hit (and timed one time in MEMORY_HITS_PER_TIMING); MISS otherwise. */
  fromMemory(key: string): TierRead {
    if (this.#memory === undefined) return MISS
    const sampled = (++this.#memoryGets & (MEMORY_HITS_PER_TIMING - 1)) === 0
    const started = sampled ? performance.now() : 0
    const entry = this.#memory.get(key)
    if (entry.found) {
      const counts = this.#counters.counts
      counts.memoryHits++
      counts.hits++
      if (this.#disk?.countsHits === true) this.#disk.hitLog!.hit(this.#disk.layout.hashKey(key))
      if (this.#hitListeners.count > 0) this.#events.emit('hit', key, 'memory', 'memory')
      if (sampled) {
        const took = performance.now() - started
        this.#counters.getLatency.record(took)
        this.#counters.tiers.memory!.get.record(took)
      }
    }
    return entry
  }

  /** The memory tier's answer for `key`, counted as get()'s hit, when nothing can throw in
   *  giving it (no 'hit' listener); undefined otherwise (a miss, or a listener to hear it). */
  answerAtOnce(key: string): Promise<unknown> | undefined {
    if (this.#hitListeners.count > 0) return undefined
    const memory = this.fromMemory(key)
    return memory.found ? answerOf(memory) : undefined
  }

  /**
   * A counted, timed read of `key` (get, getMany): once the changes of the key called before
   * it have taken effect, the memory tier (unless the caller has just asked it), then the
   * tiers below. Never throws for disk trouble while failOpen. Not an async function: with
   * nothing to wait for, the answer is belowMemory's own (at once, not a promise, when the
   * tiers answer at once: a memory hit, or the file tier's plain read); it may throw (a 'hit'
   * listener that throws), and its callers handle that (async functions, or get()'s own).
   */
  read(key: string, grace: number, askMemory: boolean): TierRead | Promise<TierRead> {
    const waiting = this.#order.pending(key)
    if (waiting !== undefined) return this.#readAfter(waiting, key, grace)
    if (askMemory) {
      const memory = this.fromMemory(key)
      if (memory.found) return memory
    }
    return this.belowMemory(key, grace)
  }

  /** read() once the changes of its key called before it have taken effect. */
  async #readAfter(waiting: Promise<unknown>, key: string, grace: number): Promise<TierRead> {
    await waiting
    const memory = this.fromMemory(key)
    if (memory.found) return memory
    return this.belowMemory(key, grace)
  }

  /** The tiers below memory, timed, and counted as one hit or miss. */
  belowMemory(key: string, grace: number): StackRead | Promise<StackRead> {
    const started = performance.now()
    const found = this.#stack.lookup(key, grace)
    return found instanceof Promise ? found.then((read) => this.#counted(key, read, started)) : this.#counted(key, found, started)
  }

  /** A read below memory, timed from `started` and counted as a hit or a miss (either may
   *  throw: a listener's error). */
  #counted(key: string, found: StackRead, started: number): StackRead {
    this.#counters.getLatency.record(performance.now() - started)
    if (found.found && !found.stale) this.hit(key, found.tier ?? 'file')
    else {
      // An entry expired within the grace the read was given (getOrSet's): found expired, as
      // a read without it counts it, but counted by no tier (to them it was stale, not gone),
      // so counted here, once whichever tiers held it.
      if (found.found) this.#counters.counts.expired++
      this.miss(key)
    }
    return found
  }

  /** getMany(): a counted read of each key, at most BATCH_PARALLELISM at once; in key order,
   *  `undefined` for each miss. */
  many(keys: readonly string[]): Promise<unknown[]> {
    const slots = new Slots(BATCH_PARALLELISM)
    return Promise.all(
      keys.map((key, i) =>
        slots.run(async () => {
          let found: TierRead
          try {
            found = await this.read(key, 0, true)
          } catch (error) {
            // A key's refusal (ERR_TOO_LARGE) names the item, as every batch error does.
            if (isLarderError(error) && error.field === 'key')
              throw new LarderError(error.code, error.message, { field: `keys[${i}]`, cause: error })
            throw error
          }
          return found.found ? found.value : undefined
        }),
      ),
    )
  }

  /** getStream(): once the changes of `key` called before it have taken effect, the file
   *  tier's stream of the entry (unless the stack finds it no longer valid), else (with
   *  `redis`) the bytes of the value Redis holds (verified whole before the first is handed
   *  out, as `verifyFirst` asks), timed, and counted as one hit or miss. */
  stream(key: string, verifyFirst = false): Promise<Readable | undefined> {
    return this.#order.afterChanges(key, async () => {
      const started = performance.now()
      let stream: Readable | undefined
      let source: 'file' | 'redis' = 'file'
      /** The files found the entry expired or invalidated and counted it: one read counts one
       *  `expired`, not another for the stream's read of it nor for Redis's copy. */
      let expired = false
      try {
        const files = this.#files('getStream')
        const createdAt = async (): Promise<number | undefined> => {
          const found = await files.info(key)
          if (found !== 'expired') return found?.createdAt
          expired = true
          return undefined
        }
        if ((await this.#stack.streamStillValid(key, createdAt)) && !expired) {
          const read = await files.getStream(key, verifyFirst)
          if (read === 'expired') expired = true
          else stream = read
        }
      } catch (error) {
        this.#failures.readFailed(error)
      }
      const fileCounts = this.#counters.tiers.file
      if (fileCounts !== undefined) {
        // The file tier's read, timed on a hit or a miss as its buffered reads are (Redis's
        // stand-in below is not its).
        fileCounts.get.record(performance.now() - started)
        if (stream === undefined) fileCounts.misses++
        else fileCounts.hits++
      }
      if (stream === undefined) {
        const bytes = await this.#stack.serializedFromRedis(key, !expired)
        if (bytes !== undefined) {
          stream = Readable.from([bytes], { objectMode: false })
          source = 'redis'
        }
      }
      this.#counters.getLatency.record(performance.now() - started)
      if (stream === undefined) this.miss(key)
      else {
        try {
          this.hit(key, source)
        } catch (error) {
          // A 'hit' listener's throw rejects the call, as get's does: the stream is never
          // handed out, so its file is closed here (it was left to the garbage collector).
          stream.destroy()
          throw error
        }
      }
      return stream
    })
  }

  /** A hit below the memory tier, answered by `source` ('memory': a write of this instance's
   *  still queued for Redis, held in this process). */
  hit(key: string, source: 'memory' | 'file' | 'redis'): void {
    this.#counters.counts.hits++
    if (this.#hitListeners.count > 0) this.#events.emit('hit', key, source === 'memory' ? 'memory' : 'disk', source)
  }

  miss(key: string): void {
    this.#counters.counts.misses++
    this.#events.emit('miss', key)
  }
}
