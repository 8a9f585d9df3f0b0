import type { EventEmitter } from 'node:events'
import { onExit } from 'signal-exit'
import { LarderError } from '../errors.js'
import { KeyOrder } from '../key-order.js'
import type { ResolvedOptions } from '../options.js'
import { Counters, type TierName } from '../stats/counters.js'
import { CreationClock, sharedTime } from '../store/creation-clock.js'
import type { CorruptReport, FileTier } from '../tiers/file-tier.js'
import { MemoryTier } from '../tiers/memory-tier.js'
import { keyPrefixOf } from '../redis/sweep.js'
import { TierStack } from '../tiers/tier-stack.js'
import type { TierEntry } from '../tiers/tier.js'
import { WriteBackQueue } from '../tiers/write-back.js'
import { CountedReads } from './counted-reads.js'
import { DiskParts } from './disk-parts.js'
import { ListenerCount, type LarderEvents } from './events.js'
import { Failures } from './failures.js'
import { GetOrSet, type Loaded } from './get-or-set.js'
import { CLOSE_WAIT_MS, InFlight } from './in-flight.js'
import { Loads } from './loads.js'
import { OrderedWrites } from './ordered-writes.js'
import { OwedToRedis } from './owed-to-redis.js'
import { MemoryPressure } from './pressure.js'
import { RefreshAhead } from './refresh-ahead.js'
import { applyRemote } from './remote-changes.js'
import { prune } from './operator-calls.js'
import { SharedParts } from './shared-parts.js'
import { SharedPruneTimer } from './shared-prune-timer.js'
import { TagInvalidation } from './tag-invalidation.js'

/**
 * What one cache is made of, and how the parts are wired: the disk side (`dir` unless false),
 * the shared side (`redis`), the memory tier, the tier stack over them, the write-back queue,
 * the clocks, the counters, and the facade's own parts (reads, writes, loads, call order,
 * writes in flight). Larder composes one at construction, opens it, and closes it; every
 * public method uses these parts and holds none of its own.
 */
export class CacheParts {
  /** The live options: configure() replaces their changeable fields in place. */
  readonly options: ResolvedOptions
  readonly disk: DiskParts | undefined
  readonly shared: SharedParts | undefined
  readonly tags: TagInvalidation
  readonly clock: CreationClock
  readonly memory: MemoryTier | undefined
  readonly writeBack: WriteBackQueue | undefined
  readonly stack: TierStack
  readonly counters: Counters
  readonly failures: Failures
  readonly loads: Loads<Loaded>
  readonly order = new KeyOrder()
  readonly inFlight = new InFlight(this.order)
  readonly hitListeners: ListenerCount
  readonly reads: CountedReads
  readonly writes: OrderedWrites
  readonly getOrSet: GetOrSet
  readonly pressure: MemoryPressure | undefined
  /** Without a directory, with `redis`: the automatic prune of Redis's part. */
  readonly sharedPrune: SharedPruneTimer | undefined
  #removeExitHook: (() => void) | undefined
  /** open() has read the stamps (or given up waiting for Redis): from then on, the connection
   *  coming back reads them too (see the `recovered` hook). */
  #opened = false
  /** What Redis missed, handed from an instance that closed to the next (owed-to-redis.ts). */
  #owed: OwedToRedis | undefined

  /** `events` is the Larder, which every event is emitted on. */
  constructor(options: ResolvedOptions, events: EventEmitter<LarderEvents>) {
    this.options = options
    this.hitListeners = new ListenerCount(events, 'hit')
    const { dir, redis, memory } = options
    const tiers: TierName[] = []
    if (memory !== false) tiers.push('memory')
    if (dir !== false) tiers.push('file')
    if (redis !== undefined) tiers.push('redis')
    this.counters = new Counters(tiers)
    const counts = this.counters.counts
    const emitError = (error: Error): void => {
      if (events.listenerCount('error') > 0) events.emit('error', error) // an unheard 'error' would throw
    }
    this.failures = new Failures(this.counters, options.failOpen, emitError)
    // Listeners of what background work and the read path report: a throw must not stop the
    // work it hears of (a damaged file left in place and counted as a disk error; a prune's
    // pass cut off at its first report, so no budget was kept; a breaker's change of state,
    // heard from inside opossum, thrown into the host as an uncaught exception). Heard as
    // 'error', as a background loader's failure is.
    const heard = (emit: () => void): void => {
      try {
        emit()
      } catch (error) {
        emitError(error instanceof Error ? error : new Error(String(error)))
      }
    }
    const corrupt = (report: CorruptReport): void => heard(() => events.emit('corrupt', report))
    this.disk =
      dir === false
        ? undefined
        : new DiskParts(
            // The same object, not a copy: configure() changes it in place, and every part
            // reads the options it may change from it (facade/reconfigure.ts).
            options as ResolvedOptions & { dir: string },
            {
              counts,
              corrupt,
              breaker: (state) => heard(() => events.emit('breaker', state, 'file')),
              progress: (p) => heard(() => events.emit('progress', p)),
              pruned: (report) => heard(() => events.emit('prune', report)),
              pruneFailed: emitError,
              // A stream cannot turn into a miss once handed out: it fails, with ERR_UNAVAILABLE
              // under failOpen false, and the failure is counted and heard as a failed read's.
              streamFailed: (error) => {
                try {
                  this.failures.readFailed(error)
                  return error
                } catch (unavailable) {
                  return unavailable
                }
              },
            },
          )
    this.tags = new TagInvalidation({
      disk: this.disk,
      shared: () => this.shared,
      clock: () => this.clock,
      failures: this.failures,
      readOnly: options.readOnly,
      failOpen: options.failOpen,
      held: () => this.#owed?.recordSoon(),
    })
    // With Redis, one time for every instance of this process on the same prefix and namespace
    // (sharedTime): a write made after another's completed is the newer one.
    this.clock = new CreationClock(this.tags.clock, redis === undefined ? undefined : sharedTime(redis.prefix, options.namespace))
    const isStale = (tags: readonly string[], createdAt: number): boolean => this.tags.isStaleSafe(tags, createdAt)
    this.loads = new Loads(isStale, this.disk?.changeWatch)
    this.shared =
      redis === undefined
        ? undefined
        : new SharedParts(options as ResolvedOptions & { redis: NonNullable<ResolvedOptions['redis']> }, {
            counts,
            tags: { isStale, owes: (tags, createdAt) => this.tags.clock.owed.covers(tags, createdAt) },
            corrupt,
            breaker: (state) => heard(() => events.emit('breaker', state, 'redis')),
            received: (message) =>
              void this.inFlight
                .track(
                  applyRemote(message, {
                    stack: this.stack,
                    clock: this.clock,
                    loads: this.loads,
                    missedMessages: () => this.#missedMessages(),
                    invalidateTags: (tags, at) => this.tags.recordLocal(tags, at, false),
                    // A failing disk or a busy maintenance lock: the breaker counts the one, and
                    // the entries stay for the operator's next prune (reads still judge them).
                    pruneMatching: async (pattern, at) => {
                      if (this.disk === undefined || options.readOnly) return
                      await this.disk.maintainer.prune({ pattern, createdBefore: at }).catch(() => {})
                    },
                  }),
                )
                .catch(() => {}),
            beforeFlush: () => this.tags.sendPending(),
            connected: () => {
              this.#missedMessages()
              void this.#owed?.settle()
            },
            lost: () => this.#missedMessages(),
            recovered: () => {
              // The changes Redis missed first (each publishes its own message once it lands),
              // then the messages that waited.
              this.writeBack?.resume()
              void this.stack.sendMissedClear()
              void this.tags.sendPending()
              void this.shared?.bus?.flush() // after the stamps (beforeFlush)
              // The stamps read when the bus came back may have met the breaker still open
              // (refused at once): read them again now that commands go through. Not during
              // open: the connection's first 'ready' comes before the bus's first subscription,
              // which must read them again anyway (what was invalidated before it is heard only
              // from Redis), and open() waits for that read, or sends its own: one pass over a
              // hash that grows with the fleet's invalidations, not two.
              if (this.#opened) this.tags.recovered()
              void this.#owed?.settle()
            },
          })
    // With Redis, the queue is there even while another strategy is chosen: configure() may
    // switch to write-back. It costs nothing until a write is queued.
    this.writeBack =
      redis === undefined
        ? undefined
        : new WriteBackQueue({
            ...options.writeBack,
            send: (batch) => this.stack.sendBatch(batch),
            dropped: (n) => this.failures.dropped('redis', n),
            lostTombstone: (at) => this.stack.oweRedisClear(at),
            ready: () => this.shared!.breaker.state !== 'open',
          })
    const shared = this.shared
    if (shared !== undefined) this.failures.whyRedisDown = () => shared.whyNotConnected()
    this.memory =
      memory === false
        ? undefined
        : new MemoryTier(
            { ...memory, eviction: options.evictionPolicy === 'random' ? 'random' : 'lru', watched: options.memoryPressure !== false },
            this.tags.held,
            this.disk?.changes ?? { changesElsewhere: () => undefined },
            // Counted where no read below will find the dead entry and count it: the only tier,
            // or above Redis alone once the entry is past its expiry and grace, when Redis drops
            // it (PXAT); before that (in its grace, or invalidated) Redis holds it and counts it.
            // With a directory, the file tier counts it.
            this.disk === undefined
              ? (entry) => {
                  if (redis === undefined || goneFromRedis(entry)) this.counters.counts.expired++
                }
              : undefined,
          )
    this.stack = new TierStack({
      memory: this.memory,
      file: this.disk?.files,
      redis: this.shared?.tier,
      writeBack: this.writeBack,
      options,
      order: this.order,
      failures: this.failures,
      counters: this.counters,
      stamp: () => this.clock.stamp(),
      resyncing: () => this.tags.resyncing,
      underPressure: () => this.pressure?.high === true,
      redisOpen: () => this.shared?.breaker.state === 'open',
      announcement: (message) => this.shared?.bus?.inline(message),
      publish: (message) => this.shared?.bus?.publish(message),
      track: (write) => void this.inFlight.track(write).catch(() => {}),
      promotedToFile: () => void this.disk?.autoPrune.afterWrite(),
      deferred: () => this.#owed?.recordSoon(),
    })
    const diskParts = this.disk
    if (options.redis !== undefined && this.writeBack !== undefined)
      this.#owed = new OwedToRedis({
        layout: options.readOnly ? undefined : diskParts?.layout,
        prefix: options.redis.prefix,
        keyPrefix: keyPrefixOf(this.shared!.client),
        writeBack: this.writeBack,
        tags: this.tags,
        stack: this.stack,
        failures: this.failures,
        bookkeeping: (write) => diskParts!.bookkeeping(write),
      })
    this.reads = new CountedReads({
      memory: this.memory,
      stack: this.stack,
      order: this.order,
      counters: this.counters,
      disk: this.disk,
      events,
      hitListeners: this.hitListeners,
      failures: this.failures,
      files: (method) => this.files(method),
    })
    this.writes = new OrderedWrites({
      options,
      order: this.order,
      inFlight: this.inFlight,
      loads: this.loads,
      stack: this.stack,
      memory: this.memory,
      disk: this.disk,
      clock: this.clock,
      counters: this.counters,
      failures: this.failures,
      events,
    })
    this.getOrSet = new GetOrSet({
      options,
      order: this.order,
      loads: this.loads,
      reads: this.reads,
      writes: this.writes,
      stack: this.stack,
      shared: this.shared,
      clock: this.clock,
      inFlight: this.inFlight,
      emitError,
      refreshAhead: new RefreshAhead({
        loads: this.loads,
        writes: this.writes,
        shared: this.shared,
        clock: this.clock,
        counters: this.counters,
        inFlight: this.inFlight,
        events,
        emitError,
      }),
    })
    this.sharedPrune =
      this.disk === undefined && this.shared !== undefined
        ? new SharedPruneTimer({
            options,
            prune: (signal) => prune(this, { signal }),
            pruned: (report) => heard(() => events.emit('prune', report)),
            failed: emitError,
          })
        : undefined
    this.pressure =
      options.memoryPressure === false
        ? undefined
        : new MemoryPressure(options.memoryPressure, {
            memory: this.memory,
            counts: this.counters.tiers.memory,
            emit: (reading) => heard(() => events.emit('pressure', reading)),
          })
    // Held for the cache's lifetime: leaves the counters and removes our in-flight temp files
    // if the process exits without close(). A read-only instance has nothing to leave.
    const disk = this.disk
    if (!options.readOnly && disk !== undefined)
      this.#removeExitHook = onExit(() => {
        disk.flushCounters()
        disk.recordActivity(counts)
        disk.files.removeTempsSync()
      })
  }

  /** Prepares the directory, folds crowded bookkeeping, waits (bounded) for Redis and takes
   *  the tag stamps recorded there. A read-only instance creates, records and folds nothing,
   *  but refuses a directory others control as well. */
  async open(): Promise<void> {
    if (!this.options.readOnly) {
      await this.#prepareDirectory()
      await this.disk?.foldIfCrowded()
      await this.shared?.start()
      await this.#readStamps()
      this.#owed?.take()
    } else {
      try {
        this.disk?.files.checkTrust()
        this.disk?.learnEntriesSince()
      } catch (unsafe) {
        await this.close()
        throw unsafe
      }
      // Redis as a writable instance waits for it (bounded), and its tag stamps read (held by
      // the clock, not written): a read-only instance must not serve what was invalidated.
      await this.shared?.start()
      await this.#readStamps()
    }
    this.pressure?.start()
  }

  /** The tag stamps Redis holds, read once at open: the bus's first subscription (a resync)
   *  has sent the read already, joined here; without a bus, or with none subscribed yet (Redis
   *  slow), the read is sent now (a subscription that comes later reads them again, as it
   *  must). The connection's 'ready' sends none meanwhile (`#opened`). */
  async #readStamps(): Promise<void> {
    try {
      await (this.tags.resyncing ?? this.tags.reading ?? this.tags.syncFromShared())
    } finally {
      this.#opened = true
    }
  }

  /** The file tier, for a method that needs one; ERR_INVALID_OPTION without a directory. */
  files(method: string): FileTier {
    if (this.disk === undefined)
      throw new LarderError('ERR_INVALID_OPTION', `${method}() needs a cache directory; this cache was opened with dir: false`, {
        field: 'dir',
      })
    return this.disk.files
  }

  /** Waits for writes in flight (see InFlight), drains the write-back queue (as long at most),
   *  stops maintenance, flushes the running totals, closes the connections larder opened and
   *  releases timers and the exit hook. */
  async close(): Promise<void> {
    this.pressure?.close()
    await this.sharedPrune?.close()
    this.loads.close() // background work: nothing stored once closing begins
    await this.inFlight.settle()
    await this.writeBack?.flush(new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref()))
    this.writeBack?.stop()
    // The sets still queued never reach Redis (the deletes are left for the next instance, and
    // the sets Redis missed as deletes of what they replaced: owed-to-redis.ts): dropped, as
    // those the full queue lets go are. A copy in the directory
    // does not keep them: the outage rule removes it at the next open, Redis holding another.
    const unsent = this.writeBack?.queuedSets() ?? 0
    if (unsent > 0) this.failures.dropped('redis', unsent)
    await this.stack.stop()
    if (this.tags.pending > 0) await this.tags.sendPending() // one try: a stamp Redis misses outlives this instance's own files
    this.tags.close()
    await this.shared?.bus?.flush() // one try for the messages still waiting
    this.#owed?.leave()
    await this.disk?.close(this.counters.counts)
    await this.shared?.close()
    this.memory?.close()
    this.#removeExitHook?.()
    this.#removeExitHook = undefined
  }

  /** The bus may have missed messages (it subscribed again, went silent, or a sender's outbox
   *  overflowed): the outage rule (tiers/tier-stack.ts), and the tag stamps Redis holds, which
   *  reads wait for (TagInvalidation.resync). */
  #missedMessages(): void {
    this.stack.revalidate()
    this.tags.resync()
  }

  async #prepareDirectory(): Promise<void> {
    try {
      await this.disk?.prepare()
    } catch (error) {
      // A cache that cannot use its directory yet still opens: reads miss, writes drop, and
      // the breaker retries the disk later. With failOpen false, the caller hears now.
      try {
        this.failures.writeFailed(error)
      } catch (unavailable) {
        await this.close()
        throw unavailable
      }
    }
  }
}

/** Whether Redis has dropped `entry` by now: past its expiry plus its grace (RedisTier sets
 *  PXAT there, or sooner with `redis.ttl`, which this does not claim). */
function goneFromRedis(entry: TierEntry): boolean {
  return entry.expiresAt !== 0 && Date.now() >= entry.expiresAt + entry.grace
}
