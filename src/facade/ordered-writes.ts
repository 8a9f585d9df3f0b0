import type { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { BATCH_PARALLELISM, Slots } from '../batch-slots.js'
import { isLarderError, SourceError } from '../errors.js'
import type { KeyOrder } from '../key-order.js'
import type { ResolvedOptions } from '../options.js'
import type { Counters, TierName } from '../stats/counters.js'
import { expiryOf, justAfter, type CreationClock } from '../store/creation-clock.js'
import { ClearedMidStream, type StreamSource } from '../store/stream-writer.js'
import type { FileTier } from '../tiers/file-tier.js'
import type { MemoryTier } from '../tiers/memory-tier.js'
import type { TierStack } from '../tiers/tier-stack.js'
import type { ValidSetManyItem } from '../validate.js'
import type { DiskParts } from './disk-parts.js'
import type { LarderEvents } from './events.js'
import type { Failures } from './failures.js'
import type { InFlight } from './in-flight.js'
import type { Loads } from './loads.js'
import { prepareWrite, storedEntry, type Write } from './prepare.js'

export interface OrderedWritesParts {
  options: Readonly<ResolvedOptions>
  order: KeyOrder
  inFlight: InFlight
  loads: Loads<unknown>
  stack: TierStack
  memory: MemoryTier | undefined
  disk: DiskParts | undefined
  clock: CreationClock
  counters: Counters
  failures: Failures
  events: EventEmitter<LarderEvents>
}

/**
 * The changes of entries as the caller sees them: each runs at its turn among the calls on its
 * key (KeyOrder), supersedes a getOrSet load in progress, is tracked for close(), goes through
 * the tier stack, and is counted, timed and heard as a 'set' or 'delete' event.
 */
export class OrderedWrites {
  readonly #p: OrderedWritesParts

  constructor(parts: OrderedWritesParts) {
    this.#p = parts
  }

  /** Runs a change of `key` in call order (KeyOrder), superseding a load in progress. */
  change<T>(key: string, change: () => Promise<T>, hidden = false): Promise<T> {
    this.#p.loads.supersede(key)
    return this.#p.order.change(key, change, hidden)
  }

  /** Serializes a value at call time (see prepare.ts). */
  prepare(value: unknown, ttl: number | undefined, tags: readonly string[], grace: number, field = 'value', createdAt?: number): Write {
    return prepareWrite(this.#p.options, this.#p.clock, value, ttl, tags, grace, field, createdAt)
  }

  /** One entry written at its turn, shared by set, setMany, getOrSet, increment and warm,
   *  through the tier stack. Call it inside change(). */
  async write(key: string, write: Write): Promise<void> {
    const { stack, counters, events, disk, options, memory } = this.#p
    const started = performance.now()
    try {
      // Not tracked in InFlight: close() waits for it as the change of its key it runs in
      // (KeyOrder.settled), as every write does.
      const stored = await stack.write(
        key,
        storedEntry(options, write, memory !== undefined),
        write.through === true,
        write.redisFailedSince,
      )
      if (stored) {
        try {
          events.emit('set', key)
        } finally {
          // Whatever a 'set' listener throws (the caller's error, as from any event): a write
          // over budget still starts the automatic prune, or no budget was kept again.
          const pace = disk?.autoPrune.afterWrite()
          if (pace !== undefined) await pace
        }
      }
    } finally {
      counters.setLatency.record(write.spent + performance.now() - started)
    }
  }

  /** setMany(): every item serialized (its errors naming `field`) before any is written, then
   *  each written in call order, at most BATCH_PARALLELISM at once. */
  async writeMany(items: readonly ValidSetManyItem[]): Promise<void> {
    const prepared = items.map(({ key, value, ttl, tags, field }) => ({ key, write: this.prepare(value, ttl, tags, 0, field) }))
    const slots = new Slots(BATCH_PARALLELISM)
    await settledAll(prepared.map(({ key, write }) => this.change(key, () => slots.run(() => this.write(key, write)))))
  }

  /** deleteMany(): each key removed in call order, at most BATCH_PARALLELISM at once; how many
   *  entries were there. */
  async removeMany(keys: readonly string[]): Promise<number> {
    const slots = new Slots(BATCH_PARALLELISM)
    const removed = await settledAll(
      keys.map((key) => {
        const at = this.#p.clock.stamp() // at call time, as set's items are (see remove)
        return this.change(key, () => slots.run(() => this.remove(key, at)))
      }),
    )
    return removed.filter(Boolean).length
  }

  /** Removes `key` from every tier; true if a live entry was there. Call it inside change().
   *  `at`: the delete's time, taken when it was called, as a set's creation time is: a change
   *  called after it (stamped then) must be newer than its tombstone, or Redis would refuse
   *  it and the writer drop its own copies (the later call lost everywhere). */
  async remove(key: string, at: number): Promise<boolean> {
    const deleted = await this.#p.stack.remove(key, at)
    if (deleted) {
      this.#p.counters.counts.deletes++
      this.#p.events.emit('delete', key)
    }
    return deleted
  }

  /** clear() of every tier, or of `tier` only: after every change called before it, and before
   *  every change called after it; it supersedes the loads in progress unless only Redis goes. */
  clear(tier: TierName | undefined): Promise<void> {
    if (tier !== 'redis') this.#p.loads.supersedeAll()
    // The trash the files left is deleted after the clear's turn in the call order (which
    // calls made after it wait for), before the clear resolves.
    return this.#p.order
      .everything(() => this.#p.inFlight.track(this.#p.stack.clear(tier ?? 'all')))
      .then(() => this.#p.stack.file?.trashDeleted())
  }

  /**
   * `setStream()`: the stream goes to the file tier only (with bounded memory), in call order;
   * the memory tier's copy is dropped before and after (a read during the stream may promote
   * the entry it replaces), and Redis's older value is removed, so no instance reads it. A
   * stream close() gave up on is a counted drop (the entry it was to replace removed, under
   * failOpen); the source's own error is rethrown as it was.
   */
  async stream(key: string, files: FileTier, input: StreamSource, ttl: number | undefined, tags: readonly string[]): Promise<void> {
    const { options, clock, memory, inFlight, counters, events, disk, stack, failures } = this.#p
    const createdAt = clock.createdAt(tags)
    const expiresAt = expiryOf(ttl ?? options.defaultTtl, createdAt)
    // A Readable that fails before it is read (a createReadStream of a missing file, while the
    // change waits for its turn or the breaker) emits 'error' to no listener, which throws it
    // into the host. Heard from the call on: the stream keeps its error, and reading it at its
    // turn rejects with it, as with any source error.
    const emitter = typeof (input as Partial<Readable>).on === 'function' ? (input as Readable) : undefined
    emitter?.on('error', heardLater)
    return this.change(
      key,
      async () => {
        const started = performance.now()
        memory?.delete(key)
        const abort = inFlight.streamAbort()
        let stored = false
        try {
          await inFlight.track(files.setStream(key, input, { createdAt, expiresAt, tags }, abort.signal), abort)
          files.changed(key, createdAt)
          counters.counts.sets++
          const took = performance.now() - started
          // A stream is the file tier's write alone: timed there as its buffered sets are.
          if (counters.tiers.file !== undefined) {
            counters.tiers.file.sets++
            counters.tiers.file.set.record(took)
          }
          counters.setLatency.record(took)
          stored = true
          await disk?.autoPrune.afterWrite()
          try {
            await stack.removeShared(key, createdAt)
          } catch (unavailable) {
            // failOpen false, Redis's older value not removed: the caller hears the stream was
            // not stored, so its entry file goes too (this one's, not a newer one's).
            await files.dropIfOlder(key, justAfter(createdAt)).catch(() => {})
            throw unavailable
          }
        } catch (error) {
          if (error instanceof SourceError) throw error.original
          if (error instanceof ClearedMidStream) {
            // cleared before it landed: as if it had landed first. A drop of the file tier's,
            // counted there too, as its buffered writes' are.
            failures.dropped('file')
            return
          }
          // A source the write will not read is let go, as the writer lets go of one it was
          // reading (a Readable destroyed, a web ReadableStream cancelled: a fetch body holds
          // its connection until then); one the writer holds still (a locked web stream, after
          // an abort) it cancels itself.
          if (input instanceof Readable && !input.destroyed) input.destroy()
          else if (input instanceof ReadableStream && !input.locked) void input.cancel().catch(() => {})
          if (abort.signal.aborted && error === abort.signal.reason) {
            // close() gave up waiting for it: nothing was stored, the temp file is gone.
            failures.dropped('file')
            if (!options.failOpen) throw error
            // The caller goes on as if it was stored: the entry it was to replace must not be
            // served again, here or anywhere (close() waits for this, as for the change).
            await files.dropIfOlder(key, createdAt).catch(() => {})
            await stack.removeShared(key, createdAt).catch(() => {})
            return
          }
          // The disk's failure, which failOpen does not tell the caller: the entry the stream
          // was to replace must not be served again (TierStack's #refusedByDisk).
          if (options.failOpen && !isLarderError(error)) files.refused(key, createdAt)
          failures.writeFailed(error)
        } finally {
          memory?.delete(key)
        }
        // Heard once the stream's part is done, outside the catch above: a 'set' listener that
        // throws is the caller's error, as it is for set(), not a write the disk failed (which
        // counted the stored entry as a drop and an error, and with failOpen false reported it
        // as ERR_UNAVAILABLE).
        if (stored) events.emit('set', key)
      },
      true,
    ).finally(() => emitter?.off('error', heardLater))
  }
}

/** A stream source's early 'error', heard for the read that meets it again (see stream()). */
function heardLater(): void {}

/**
 * Every item's result once all of them are done, or the first failure (`failOpen: false`)
 * once all of them are done: a batch call never settles while some of its items are still
 * being written, so what the caller then reads is what the batch left.
 */
async function settledAll<T>(items: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(items)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value)
}
