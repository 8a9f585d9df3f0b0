import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { onExit } from 'signal-exit'
import type { EntriesOptions, GetOrSetOptions, SetManyItem, SetOptions } from './call-options.js'
import { LarderError, SourceError } from './errors.js'
import { DiskParts } from './facade/disk-parts.js'
import { applyRemote, type RemoteParts } from './facade/remote-changes.js'
import { SharedParts } from './facade/shared-parts.js'
import { warm, type WarmReport } from './facade/warm.js'
import { ListenerCount, type LarderEvents } from './facade/events.js'
import { Failures } from './facade/failures.js'
import { CLOSE_WAIT_MS, InFlight } from './facade/in-flight.js'
import { Loads, type Flight } from './facade/loads.js'
import { prepareWrite, readBackValue, storedEntry, type Write } from './facade/prepare.js'
import { assembleStats, type Stats } from './facade/stats.js'
import { loadHasher } from './format/checksum.js'
import { BATCH_PARALLELISM, Slots } from './batch-slots.js'
import { KeyOrder } from './key-order.js'
import type { EntryInfo } from './maintenance/listing.js'
import type { PruneOptions, PruneReport, UsageReport, VerifyOptions, VerifyReport, WalkOptions } from './maintenance/maintainer.js'
import { resolveOptions, type LarderOptions, type ResolvedOptions } from './options.js'
import type { ActivityReport } from './stats/activity-log.js'
import { Counters, type TierName } from './stats/counters.js'
import { MemoryTagClock } from './store/memory-tag-clock.js'
import type { TagClock } from './store/tag-clock.js'
import { WriteBackQueue } from './tiers/write-back.js'
import { CreationClock, expiryOf } from './store/creation-clock.js'
import type { StreamSource } from './store/stream-writer.js'
import type { CorruptReport, FileTier } from './tiers/file-tier.js'
import { MemoryTier } from './tiers/memory-tier.js'
import { MISS, type TierRead } from './tiers/tier.js'
import { TierStack } from './tiers/tier-stack.js'
import {
  validateCallOptions, validateEntriesOptions, validateKey, validateKeys, validatePruneOptions, validateSetManyItems, validateSource,
  validateTags, validateTtl, validateVerifyOptions, validateWalkOptions, validateWarm,
} from './validate.js'

export type { LarderEvents, Stats, WarmReport }

const SET_OPTIONS = ['ttl', 'tags'] as const
const GET_OR_SET_OPTIONS = ['ttl', 'tags', 'grace', 'lock'] as const
const TIERS: readonly (TierName | undefined)[] = ['memory', 'file', 'redis', undefined]

/** What a load gave its callers: the value, and whether the cache had it (a hit). */
interface Loaded {
  value: unknown
  cached: boolean
}

/**
 * A persistent cache in a directory. Create one with `Larder.open()`.
 *
 * The facade: it validates arguments, counts, emits events, applies `failOpen` and starts
 * maintenance. The tiers (`tiers/`: an in-process memory tier in front of the entry files)
 * are composed by the tier stack, which owns the read and write paths. A failing disk turns
 * reads into misses and writes into counted drops (or `ERR_UNAVAILABLE` with `failOpen: false`).
 */
export class Larder extends EventEmitter<LarderEvents> {
  /** Opens (creating if needed) the cache directory. Rejects only for invalid options, or
   *  with `ERR_UNAVAILABLE` when the directory cannot be used and `failOpen` is false. */
  static async open(options?: LarderOptions): Promise<Larder> {
    const resolved = resolveOptions(options)
    await loadHasher()
    const cache = new Larder(resolved)
    if (resolved.readOnly) return cache // creates nothing, records nothing, folds nothing
    await cache.#prepareDirectory()
    await cache.#disk?.foldIfCrowded()
    await cache.#shared?.start()
    await cache.#syncTagStamps()
    return cache
  }

  /** The resolved options (defaults filled in). */
  readonly options: Readonly<ResolvedOptions>
  readonly #disk: DiskParts | undefined
  readonly #shared: SharedParts | undefined
  readonly #tags: TagClock | MemoryTagClock
  readonly #writeBack: WriteBackQueue | undefined
  readonly #clock: CreationClock
  readonly #memory: MemoryTier | undefined
  readonly #stack: TierStack
  readonly #counters: Counters
  readonly #failures: Failures
  readonly #loads: Loads<Loaded>
  readonly #order = new KeyOrder()
  readonly #inFlight = new InFlight(this.#order)
  readonly #hitListeners: ListenerCount
  /** Gets tried on the memory tier, to time one in 16 of its hits. */
  #memoryGets = 0
  #removeExitHook: (() => void) | undefined
  #closed = false

  private constructor(options: ResolvedOptions) {
    super()
    this.#hitListeners = new ListenerCount(this as EventEmitter, 'hit')
    this.options = Object.freeze(options)
    const { dir, redis, memory } = options
    this.#counters = new Counters(TIERS.filter((t): t is TierName => (t === 'memory' && memory !== false) || (t === 'file' && dir !== false) || (t === 'redis' && redis !== undefined)))
    const counts = this.#counters.counts
    const emitError = (error: Error): void => {
      if (this.listenerCount('error') > 0) this.emit('error', error) // an unheard 'error' would throw
    }
    this.#failures = new Failures(this.#counters, options.failOpen, emitError)
    const corrupt = (report: CorruptReport): boolean => this.emit('corrupt', report)
    this.#disk = dir === false ? undefined : new DiskParts({ ...options, dir }, {
      counts, corrupt, breaker: (state) => this.emit('breaker', state, 'file'), progress: (p) => this.emit('progress', p), pruned: (report) => this.emit('prune', report), pruneFailed: emitError,
    })
    this.#tags = this.#disk?.tags ?? new MemoryTagClock()
    this.#clock = new CreationClock(this.#tags)
    this.#loads = new Loads((tags, createdAt) => this.#tagsStaleSafe(tags, createdAt))
    const tags = { isStale: (tags: readonly string[], createdAt: number) => this.#tagsStaleSafe(tags, createdAt) }
    this.#shared = redis === undefined ? undefined : new SharedParts({ ...options, redis }, {
      counts, tags, corrupt, breaker: (state) => this.emit('breaker', state, 'redis'),
      received: (message) => void this.#inFlight.track(applyRemote(message, this.#remote)).catch(() => {}),
      connected: () => {
        this.#stack.revalidate()
        void this.#syncTagStamps()
      },
      recovered: () => {
        this.#shared?.bus?.flush()
        this.#writeBack?.resume()
      },
    })
    this.#writeBack = options.writeStrategy !== 'write-back' ? undefined : new WriteBackQueue({
      ...options.writeBack,
      send: (batch) => this.#stack.sendBatch(batch),
      dropped: (n) => {
        counts.dropped += n
        this.#counters.tiers.redis!.dropped += n
      },
      ready: () => this.#shared!.breaker.state !== 'open',
    })
    this.#memory = memory === false ? undefined : new MemoryTier(memory, tags.isStale, this.#disk?.changes ?? { changedElsewhere: () => false })
    this.#stack = new TierStack({
      memory: this.#memory, file: this.#disk?.files, redis: this.#shared?.tier, writeBack: this.#writeBack, strategy: options.writeStrategy, options,
      order: this.#order, failures: this.#failures, counters: this.#counters, stamp: () => this.#clock.stamp(),
      publish: (message) => this.#shared?.bus?.publish(message),
      track: (write) => void this.#inFlight.track(write).catch(() => {}),
    })
    // Held for the cache's lifetime: leaves the counters and removes our in-flight temp files
    // if the process exits without close(). A read-only instance has nothing to leave.
    const disk = this.#disk
    if (!options.readOnly && disk !== undefined) this.#removeExitHook = onExit(() => {
      disk.flushCounters()
      disk.recordActivity(counts)
      disk.files.removeTempsSync()
    })
  }

  /** The cache directory (absolute), or false (`dir: false`). */
  get dir(): string | false {
    return this.options.dir
  }

  // ── reads ─────────────────────────────────────────────────────────────────

  /** The value for `key`, or `undefined` on a miss. Never rejects for disk trouble unless `failOpen` is false. */
  async get(key: string): Promise<unknown> {
    this.#assertOpen()
    // The memory tier first, before validation: every key in it was validated when stored,
    // and a hit must cost little more than the lookup. While a change is in flight it must
    // wait for the changes of its key called before it (#read).
    if (this.#memory !== undefined && this.#order.idle && typeof key === 'string') {
      const memory = this.#fromMemory(key)
      if (memory.found) return memory.value
      const found = await this.#read(validateKey(key), 0, false)
      return found.found ? found.value : undefined
    }
    const found = await this.#read(validateKey(key), 0, true)
    return found.found ? found.value : undefined
  }

  /** Whether a fresh entry exists for `key`. Checks the entry's metadata (and, for entries
   *  up to 64 KiB, its checksum) without decompressing or deserializing the value. Counts no
   *  hit or miss. */
  async has(key: string): Promise<boolean> {
    this.#assertOpen()
    const k = validateKey(key)
    const waiting = this.#order.pending(k)
    if (waiting !== undefined) await waiting
    return this.#stack.has(k)
  }

  /** Values for `keys`, in key order (`undefined` for each miss); a hit or miss per key.
   *  At most BATCH_PARALLELISM entries are read at once. */
  async getMany(keys: readonly string[]): Promise<unknown[]> {
    this.#assertOpen()
    const valid = validateKeys(keys)
    const slots = new Slots(BATCH_PARALLELISM)
    return Promise.all(valid.map((k) => slots.run(async () => {
      const found = await this.#read(k, 0, true)
      return found.found ? found.value : undefined
    })))
  }

  /**
   * The value for `key`; on a miss, calls `loader` once however many callers ask at the same
   * time (singleflight), stores its result and returns it (as the serializer gives it back,
   * like every later read). A failing loader rejects every waiting caller and caches nothing;
   * with `grace`, a value expired less than `grace` ago is returned instead, and the entry
   * the loader stores is kept that long past its expiry for this purpose. A loader that
   * resolves to `undefined` caches nothing.
   *
   * The entry is as old as the moment its loader started: a set, delete or clear of the key,
   * or an invalidation of its tags, made while the loader runs wins over what it returns.
   * The callers already waiting receive the loaded value once; later callers do not.
   */
  async getOrSet<T>(key: string, loader: () => T | Promise<T>, options?: GetOrSetOptions): Promise<T> {
    this.#assertWritable()
    const k = validateKey(key)
    if (typeof loader !== 'function') throw new LarderError('ERR_INVALID_VALUE', 'Invalid loader: expected a function', { field: 'loader' })
    const o = validateCallOptions<GetOrSetOptions>(options, GET_OR_SET_OPTIONS)
    const ttl = validateTtl(o.ttl)
    const tags = validateTags(o.tags)
    const grace = validateTtl(o.grace, 'grace') ?? 0
    if (o.lock !== undefined && typeof o.lock !== 'boolean') throw new LarderError('ERR_INVALID_OPTION', `Invalid lock: expected a boolean, got ${String(o.lock)}`, { field: 'lock' })
    const waiting = this.#order.pending(k)
    if (waiting !== undefined) await waiting
    const memory = this.#fromMemory(k)
    if (memory.found) return memory.value as T
    const joined = this.#loads.joinable(k)
    if (joined !== undefined) return this.#join(k, joined) as Promise<T>
    const loaded = await this.#loads.run(k, tags, this.#clock.createdAt(tags), (flight) => this.#load(k, loader, ttl, grace, flight, o.lock === true))
    return loaded.value as T
  }

  /**
   * The value as a stream with bounded memory, or `undefined` on a miss. For a streamed
   * entry these are the bytes that were written; for a `set` value, its serialized bytes.
   * Every byte is checked: if the checksum fails at the end, the stream errors with
   * `ERR_CORRUPT` instead of ending, and the entry is removed.
   */
  async getStream(key: string): Promise<Readable | undefined> {
    this.#assertOpen()
    const k = validateKey(key)
    const waiting = this.#order.pending(k)
    if (waiting !== undefined) await waiting
    const started = performance.now()
    let stream: Readable | undefined
    try {
      const files = this.#files('getStream')
      if (await this.#stack.streamStillValid(k, async () => (await files.info(k))?.createdAt)) stream = await files.getStream(k)
    } catch (error) {
      this.#failures.readFailed(error)
    }
    this.#counters.getLatency.record(performance.now() - started)
    if (stream === undefined) this.#miss(k)
    else this.#hit(k, 'file')
    return stream
  }

  // ── writes ────────────────────────────────────────────────────────────────

  /** Stores `value` under `key`. Bad input rejects with a LarderError and writes nothing. */
  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    this.#assertWritable()
    const k = validateKey(key)
    const o = validateCallOptions<SetOptions>(options, SET_OPTIONS)
    const write = this.#prepare(value, validateTtl(o.ttl), validateTags(o.tags), 0)
    return this.#change(k, () => this.#write(k, write))
  }

  /** Stores several entries. Every item is validated and serialized before any is written;
   *  an error names the item (`items[1].ttl`). At most BATCH_PARALLELISM are written at once. */
  async setMany(items: readonly SetManyItem[]): Promise<void> {
    this.#assertWritable()
    const prepared = validateSetManyItems(items).map(({ key, value, ttl, tags, field }) => ({ key, write: this.#prepare(value, ttl, tags, 0, field) }))
    const slots = new Slots(BATCH_PARALLELISM)
    await Promise.all(prepared.map(({ key, write }) => this.#change(key, () => slots.run(() => this.#write(key, write)))))
  }

  /**
   * Stores a stream (a Readable, any (async) iterable of Uint8Array/string chunks, or one
   * Uint8Array) with bounded memory. The entry appears atomically once the whole stream is
   * written; until then reads see the entry it replaces. An error from the source rejects
   * with that error and stores nothing.
   */
  async setStream(key: string, source: StreamSource | Iterable<Uint8Array | string> | Uint8Array, options?: SetOptions): Promise<void> {
    this.#assertWritable()
    const k = validateKey(key)
    const o = validateCallOptions<SetOptions>(options, SET_OPTIONS)
    const ttl = validateTtl(o.ttl)
    const tags = validateTags(o.tags)
    const input = validateSource(source)
    const files = this.#files('setStream')
    const createdAt = this.#clock.createdAt(tags)
    const expiresAt = expiryOf(ttl ?? this.options.defaultTtl, createdAt)
    return this.#change(k, async () => {
      const started = performance.now()
      this.#memory?.delete(k)
      const abort = new AbortController()
      try {
        await this.#inFlight.track(files.setStream(k, input, { createdAt, expiresAt, tags }, abort.signal), abort)
        this.#counters.counts.sets++
        this.#counters.setLatency.record(performance.now() - started)
        this.emit('set', k)
        this.#disk?.autoPrune.afterWrite()
        // Streams stay local: an older value of the key in Redis must not be read elsewhere.
        await this.#stack.removeShared(k, createdAt)
      } catch (error) {
        if (error instanceof SourceError) throw error.original
        if (input instanceof Readable && !input.destroyed) input.destroy()
        if (abort.signal.aborted && error === abort.signal.reason) {
          // close() gave up waiting for it: nothing was stored, the temp file is gone.
          this.#counters.counts.dropped++
          if (!this.options.failOpen) throw error
          return
        }
        this.#failures.writeFailed(error)
      } finally {
        // A read during the stream may have promoted the entry it replaced.
        this.#memory?.delete(k)
      }
    }, true)
  }

  /** Removes `key`; true if a live entry was there (an expired one is removed too, but was not there). */
  async delete(key: string): Promise<boolean> {
    this.#assertWritable()
    const k = validateKey(key)
    return this.#change(k, () => this.#remove(k))
  }

  /** Removes each key; resolves to how many entries were there. At most BATCH_PARALLELISM
   *  are removed at once. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    this.#assertWritable()
    const valid = validateKeys(keys)
    const slots = new Slots(BATCH_PARALLELISM)
    const removed = await Promise.all(valid.map((k) => this.#change(k, () => slots.run(() => this.#remove(k)))))
    return removed.filter(Boolean).length
  }

  /** Removes every entry of this namespace, for every process sharing the directory (and,
   *  with Redis, every instance): what was set before the call, in every tier, or in `tier`
   *  only; a set called after it is kept. */
  async clear(options?: { tier?: TierName }): Promise<void> {
    this.#assertWritable()
    const { tier } = validateCallOptions<{ tier: TierName }>(options, ['tier'])
    if (tier !== undefined && (!TIERS.includes(tier) || this.#counters.tiers[tier] === undefined)) {
      throw new LarderError('ERR_INVALID_OPTION', `Invalid tier: expected one of ${Object.keys(this.#counters.tiers).join(', ')}, got ${JSON.stringify(tier)}`, { field: 'tier' })
    }
    if (tier !== 'redis') this.#loads.supersedeAll()
    return this.#order.everything(() => this.#inFlight.track(this.#stack.clear(tier ?? 'all')))
  }

  /** Resolves once the writes queued for Redis (write-back) have been sent, or dropped; at once
   *  with any other strategy. */
  async flush(): Promise<void> {
    this.#assertOpen()
    await this.#writeBack?.flush()
  }

  /** Makes each key local: a key the shared tier has is promoted; the keys found nowhere are
   *  loaded by `loader(keys)` (in batches) and stored. */
  async warm(keys: readonly string[], options?: { loader?: (keys: string[]) => unknown; concurrency?: number }): Promise<WarmReport> {
    this.#assertWritable()
    const valid = validateWarm(keys, options)
    return warm({
      lookup: (key) => this.#stack.lookup(key, 0),
      store: (key, value) => this.#change(key, () => this.#write(key, this.#prepare(value, undefined, [], 0))),
    }, valid.keys, valid.loader, valid.concurrency)
  }

  /**
   * Makes every entry carrying any of `tags` stale, in every process sharing the directory.
   * Costs one small file write per tag, however many entries carry it.
   */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    this.#assertWritable()
    const valid = validateTags(tags)
    if (valid.length === 0) return
    this.#loads.supersedeTagged(valid) // a load in progress that carries one of them began before
    const at = this.#clock.stamp()
    await this.#invalidateLocal(valid, at, true)
    if (this.#shared === undefined) return
    try {
      await this.#shared.recordTags(valid, at)
    } catch (error) {
      this.#failures.writeFailed(error, 'redis')
    }
    this.#shared.bus?.publish({ op: 'tags', tags: [...valid], at })
  }

  /**
   * Adds `delta` to the number under `key` (a missing key counts as 0) and returns the
   * result. Calls in one instance take effect in call order, so no update is lost. The entry
   * keeps its expiry, tags and grace. A result that is not finite is refused
   * (`ERR_INVALID_VALUE`), and a `raw` cache cannot store numbers (`ERR_INVALID_OPTION`).
   * Counts no hit or miss.
   */
  async increment(key: string, delta = 1): Promise<number> {
    this.#assertWritable()
    const k = validateKey(key)
    if (typeof delta !== 'number' || !Number.isFinite(delta)) {
      throw new LarderError('ERR_INVALID_VALUE', `Invalid delta: expected a finite number, got ${String(delta)}`, { field: 'delta' })
    }
    if (this.options.serializer === 'raw') {
      throw new LarderError('ERR_INVALID_OPTION', 'Cannot increment: this cache uses the raw serializer, which stores only Buffers, Uint8Arrays and strings, not numbers', { field: 'serializer' })
    }
    return this.#change(k, async () => {
      const memory = this.#memory?.get(k) ?? MISS
      const found: TierRead = memory.found ? memory : await this.#stack.lookup(k, 0)
      let current = 0
      if (found.found) {
        if (typeof found.value !== 'number') {
          throw new LarderError('ERR_INVALID_VALUE', `Cannot increment key ${JSON.stringify(k)}: its value is a ${typeof found.value}, not a number`, { field: 'key' })
        }
        current = found.value
      }
      const next = current + delta
      if (!Number.isFinite(next)) {
        throw new LarderError('ERR_INVALID_VALUE', `Invalid delta: ${current} + ${delta} is not a finite number, which could not be stored`, { field: 'delta' })
      }
      const write = this.#prepare(next, undefined, found.found ? found.tags : [], found.found ? found.grace : 0)
      if (found.found) write.expiresAt = found.expiresAt
      await this.#write(k, write)
      return next
    })
  }

  /** `increment(key, -delta)`. */
  async decrement(key: string, delta = 1): Promise<number> {
    if (typeof delta !== 'number' || !Number.isFinite(delta)) {
      this.#assertOpen()
      throw new LarderError('ERR_INVALID_VALUE', `Invalid delta: expected a finite number, got ${String(delta)}`, { field: 'delta' })
    }
    return this.increment(key, -delta)
  }

  // ── maintenance ───────────────────────────────────────────────────────────

  /**
   * Reclaims space in worker threads: removes expired and tag-invalidated entries, corrupt
   * files, stray temp files older than `maintenance.tempMaxAge`, entries matching the filters
   * (`maxAge`: not used within; `olderThan`: created before; `tags`; `pattern`, a glob over
   * keys such as `'user:*'`), then evicts by `evictionPolicy` down to `maxSize`/`maxEntries`
   * (or, if the configured budget is exceeded, to its low-water mark). `dryRun` reports what
   * would go and removes nothing. Cancel with `signal`: rejects with `ERR_ABORTED`, whose
   * `report` holds the work done. Progress arrives as `progress` events and `onProgress`.
   */
  async prune(options?: PruneOptions): Promise<PruneReport> {
    this.#assertWritable()
    const valid = validatePruneOptions(options)
    const report = await this.#failures.operation(() => this.#files('prune') && this.#disk!.maintainer.prune(valid))
    if (valid.pattern !== undefined && this.#shared !== undefined && valid.dryRun !== true) {
      report.sharedRemoved = await this.#failures.operation(() => this.#shared!.tier.removeMatching(valid.pattern!), 'redis')
    }
    return report
  }

  /**
   * Re-checks every entry's checksum in worker threads (every byte, no decompression). With
   * `repair` (default true) corrupt entries and stale temp files are removed and the running
   * totals corrected. Cancel with `signal` (`ERR_ABORTED`).
   */
  async verify(options?: VerifyOptions): Promise<VerifyReport> {
    this.#assertOpen()
    const valid = validateVerifyOptions(options)
    if (valid.repair !== false) this.#assertWritable()
    return this.#failures.operation(() => this.#files('verify') && this.#disk!.maintainer.verify(valid))
  }

  // ── lifecycle and introspection ───────────────────────────────────────────

  /**
   * What every process did with this cache, recorded as each instance closed (or its process
   * exited): hits, misses, sets and the rest summed, and the breaker state the most recent one
   * left with. This instance counts once it closes; `stats()` has its live counters.
   */
  async activity(): Promise<ActivityReport> {
    this.#assertOpen()
    const disk = this.#disk
    if (disk === undefined) this.#files('activity')
    return this.#failures.operation(async () => disk!.bookkeeping(() => disk!.activity.read()))
  }

  /**
   * What is known of `key`'s entry without decoding its value: sizes, times, tags, codec.
   * `undefined` on a miss (expired and invalidated entries included). Small entries are
   * verified whole; a large one's head is read. Counts no hit or miss and refreshes nothing.
   */
  async info(key: string): Promise<EntryInfo | undefined> {
    this.#assertOpen()
    const k = validateKey(key)
    const waiting = this.#order.pending(k)
    if (waiting !== undefined) await waiting
    try {
      return await this.#files('info').info(k)
    } catch (error) {
      this.#failures.readFailed(error)
      return undefined
    }
  }

  /**
   * Every live entry (or those matching `prefix`, `pattern` and `tags`), described as `info()`
   * does, read in worker threads from entry heads; in no particular order. Removes nothing.
   * Cancel with `signal` (`ERR_ABORTED`); progress as for prune.
   */
  async entries(options?: EntriesOptions): Promise<EntryInfo[]> {
    this.#assertOpen()
    const { filters, walk } = validateEntriesOptions(options)
    return this.#failures.operation(() => this.#files('entries') && this.#disk!.maintainer.list(filters, walk))
  }

  /**
   * Entries, stored and logical bytes, expired entries still on disk, damaged files, oldest
   * and newest entry, and sizes by age: a full read-only walk of the entry heads in worker
   * threads (`stats()` gives entries and bytes without one).
   */
  async usage(options?: WalkOptions): Promise<UsageReport> {
    this.#assertOpen()
    const valid = validateWalkOptions(options)
    return this.#failures.operation(() => this.#files('usage') && this.#disk!.maintainer.usage(valid))
  }

  /** Counters since this instance opened, latency percentiles, breaker state, and the entries
   *  and bytes on disk (from the running totals: a few small files, never a scan). */
  async stats(): Promise<Stats> {
    this.#assertOpen()
    const stats = assembleStats({
      counters: this.#counters,
      memoryEntries: this.#memory?.size ?? 0,
      totals: this.#disk?.totalsNow() ?? { entries: 0, bytes: 0 },
      breakers: { file: this.#disk?.breaker.snapshot(), redis: this.#shared?.breaker.snapshot() },
    })
    if (stats.tiers.redis !== undefined) Object.assign(stats.tiers.redis, { queued: this.#writeBack?.size ?? 0, busQueued: this.#shared?.bus?.queued ?? 0 })
    return stats
  }

  /** Zeroes the counters, per-tier figures and latencies `stats()` reports (what `activity()`
   *  records at close is this instance's whole run, reset or not). */
  resetStats(): void {
    this.#assertOpen()
    this.#counters.reset()
  }

  /** Waits for writes in flight (up to CLOSE_WAIT_MS; streams still running then are aborted:
   *  not stored, their temp files removed, counted as dropped), stops maintenance (after an
   *  automatic prune in progress finishes; the worker pool ends), flushes the running totals,
   *  and releases the breaker's timers and the exit hook. Nothing is written after it
   *  resolves. Any later call rejects with `ERR_CLOSED`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#inFlight.settle()
    await this.#writeBack?.flush(new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref()))
    this.#writeBack?.stop()
    await this.#disk?.close(this.#counters.counts)
    await this.#shared?.close()
    this.#memory?.close()
    this.#removeExitHook?.()
    this.#removeExitHook = undefined
  }

  /** Removes listeners, as EventEmitter does, but keeps knowing who listens for 'hit'. */
  override removeAllListeners(...event: Parameters<EventEmitter<LarderEvents>['removeAllListeners']>): this {
    super.removeAllListeners(...event)
    this.#hitListeners.watch()
    return this
  }

  // ── internals ─────────────────────────────────────────────────────────────

  async #prepareDirectory(): Promise<void> {
    try {
      await this.#disk?.prepare()
    } catch (error) {
      // A cache that cannot use its directory yet still opens: reads miss, writes drop, and
      // the breaker retries the disk later. With failOpen false, the caller hears now.
      try {
        this.#failures.writeFailed(error)
      } catch (unavailable) {
        await this.close()
        throw unavailable
      }
    }
  }

  /** A fresh memory-tier entry, counted as a hit (and timed one time in 16); MISS otherwise. */
  #fromMemory(key: string): TierRead {
    if (this.#memory === undefined) return MISS
    const sampled = (++this.#memoryGets & 15) === 0
    const started = sampled ? performance.now() : 0
    const entry = this.#memory.get(key)
    if (entry.found) {
      const counts = this.#counters.counts
      counts.memoryHits++
      counts.hits++
      if (this.#disk?.hitLog !== undefined) this.#disk.hitLog.hit(this.#disk.layout.hashKey(key))
      if (this.#hitListeners.count > 0) this.emit('hit', key, 'memory', 'memory')
      if (sampled) {
        const took = performance.now() - started
        this.#counters.getLatency.record(took)
        this.#counters.tiers.memory!.get.record(took)
      }
    }
    return entry
  }

  /** Tag check for the memory tier and for loads, where a disk error must not throw: treat
   *  as stale. */
  #tagsStaleSafe(tags: readonly string[], createdAt: number): boolean {
    try {
      return this.#tags.isStale(tags, createdAt)
    } catch {
      return true
    }
  }

  /**
   * A counted, timed read of `key` (get, getMany): once the changes of the key called before
   * it have taken effect, the memory tier (unless the caller has just asked it), then the
   * tiers below. Never throws for disk trouble while failOpen.
   */
  async #read(key: string, grace: number, askMemory: boolean): Promise<TierRead> {
    const waiting = this.#order.pending(key)
    if (waiting !== undefined) {
      await waiting
      askMemory = true
    }
    if (askMemory) {
      const memory = this.#fromMemory(key)
      if (memory.found) return memory
    }
    return this.#countedLookup(key, grace)
  }

  /** The tiers below memory, timed, and counted as one hit or miss. */
  async #countedLookup(key: string, grace: number): Promise<TierRead> {
    const started = performance.now()
    const found = await this.#stack.lookup(key, grace)
    this.#counters.getLatency.record(performance.now() - started)
    if (found.found && !found.stale) this.#hit(key, found.tier === 'redis' ? 'redis' : 'file')
    else this.#miss(key)
    return found
  }

  /**
   * getOrSet's load, shared by every caller that joins it: the cache (counted and timed for
   * the first caller), then the loader. Its result is stored unless the load was superseded
   * or its tags invalidated since it began (the entry would be older than what replaced it).
   */
  async #load(key: string, loader: () => unknown, ttl: number | undefined, grace: number, flight: Flight<Loaded>, lock: boolean): Promise<Loaded> {
    const found = await this.#countedLookup(key, grace)
    if (found.found && !found.stale) return { value: found.value, cached: true }
    const shared = this.#shared
    if (!lock || shared === undefined) return this.#loadAndStore(key, loader, ttl, grace, flight, found)
    // Another instance may be loading it: wait for its value in Redis (bounded), or load.
    const arrived = async (): Promise<Loaded | undefined> => {
      const read = await this.#stack.lookup(key, 0)
      return read.found && !read.stale ? { value: read.value, cached: true } : undefined
    }
    return shared.withLock(key, arrived, () => this.#loadAndStore(key, loader, ttl, grace, flight, found))
  }

  async #loadAndStore(key: string, loader: () => unknown, ttl: number | undefined, grace: number, flight: Flight<Loaded>, found: TierRead): Promise<Loaded> {
    let value: unknown
    try {
      value = await loader()
    } catch (error) {
      if (found.found) return { value: found.value, cached: false } // stale-if-error
      throw error
    }
    if (value === undefined) return { value, cached: false }
    const write = this.#prepare(value, ttl, flight.tags, grace, 'value', flight.createdAt)
    // What every later read returns, so this caller gets it too.
    write.value = readBackValue(this.options, write.serialized)
    if (this.#loads.mayStore(flight)) await this.#change(key, () => this.#write(key, write))
    return { value: write.value, cached: false }
  }

  /** A caller that joined a load in progress: counted as the load turned out. */
  async #join(key: string, flight: Flight<Loaded>): Promise<unknown> {
    try {
      const loaded = await flight.result
      if (loaded.cached) this.#hit(key, 'file')
      else this.#miss(key)
      return loaded.value
    } catch (error) {
      this.#miss(key)
      throw error
    }
  }

  /** Runs a change of `key` in call order (KeyOrder), superseding a load in progress. */
  #change<T>(key: string, change: () => Promise<T>, hidden = false): Promise<T> {
    this.#loads.supersede(key)
    return this.#order.change(key, change, hidden)
  }

  #prepare(value: unknown, ttl: number | undefined, tags: readonly string[], grace: number, field = 'value', createdAt?: number): Write {
    return prepareWrite(this.options, this.#clock, value, ttl, tags, grace, field, createdAt)
  }

  /** One entry written at its turn (KeyOrder), shared by set, setMany, getOrSet and
   *  increment, through the tier stack. */
  async #write(key: string, write: Write): Promise<void> {
    const started = performance.now()
    try {
      const stored = await this.#inFlight.track(this.#stack.write(key, storedEntry(this.options, write, this.#memory !== undefined)))
      if (stored) {
        this.emit('set', key)
        this.#disk?.autoPrune.afterWrite()
      }
    } finally {
      this.#counters.setLatency.record(write.spent + performance.now() - started)
    }
  }

  async #remove(key: string): Promise<boolean> {
    const deleted = await this.#stack.remove(key)
    if (deleted) {
      this.#counters.counts.deletes++
      this.emit('delete', key)
    }
    return deleted
  }

  /** A hit below the memory tier, answered by `source`. */
  #hit(key: string, source: 'file' | 'redis'): void {
    this.#counters.counts.hits++
    if (this.#hitListeners.count > 0) this.emit('hit', key, 'disk', source)
  }

  #miss(key: string): void {
    this.#counters.counts.misses++
    this.emit('miss', key)
  }

  /** The file tier, for a method that needs one; ERR_INVALID_OPTION without a directory. */
  #files(method: string): FileTier {
    if (this.#disk === undefined) throw new LarderError('ERR_INVALID_OPTION', `${method}() needs a cache directory; this cache was opened with dir: false`, { field: 'dir' })
    return this.#disk.files
  }

  /** Records tag invalidations in this instance's tag clock (the directory's stamps, written
   *  through its breaker, or the memory clock). */
  async #invalidateLocal(tags: readonly string[], at: number, counted: boolean): Promise<void> {
    if (this.#disk === undefined) return (this.#tags as MemoryTagClock).invalidate(tags, at)
    try {
      await this.#disk.files.invalidateTags(counted ? tags : tags.filter((t) => !this.#tagsStaleSafe([t], at)), at)
    } catch (error) {
      if (counted) this.#failures.writeFailed(error)
    }
  }

  /** The tag stamps Redis holds, merged into the local clock (at open and after an outage:
   *  invalidations made while this instance was away). */
  async #syncTagStamps(): Promise<void> {
    let stamps: Map<string, number>
    try {
      if (this.#shared === undefined || this.options.readOnly) return
      stamps = await this.#shared.tagStamps()
    } catch {
      return // Redis unreachable: the next reconnect syncs
    }
    const byTime = new Map<number, string[]>()
    for (const [tag, at] of stamps) byTime.set(at, [...(byTime.get(at) ?? []), tag])
    for (const [at, tags] of byTime) {
      this.#clock.observe(at)
      await this.#invalidateLocal(tags, at, false)
    }
  }

  get #remote(): RemoteParts {
    return { stack: this.#stack, clock: this.#clock, loads: this.#loads as Loads<unknown>, invalidateTags: (tags, at) => this.#invalidateLocal(tags, at, false) }
  }

  #assertOpen(): void {
    if (this.#closed) throw new LarderError('ERR_CLOSED', 'The cache is closed', { field: 'cache' })
  }

  #assertWritable(): void {
    this.#assertOpen()
    if (this.options.readOnly) throw new LarderError('ERR_READ_ONLY', 'The cache was opened with readOnly: true; it writes nothing', { field: 'readOnly' })
  }
}
