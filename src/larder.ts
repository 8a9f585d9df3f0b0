import { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { onExit } from 'signal-exit'
import type { EntriesOptions, GetOrSetOptions, SetManyItem, SetOptions } from './call-options.js'
import { LarderError, SourceError, isLarderError } from './errors.js'
import { loadHasher } from './format/checksum.js'
import { readBack, serialize, type Serialized } from './format/serializers.js'
import { BATCH_PARALLELISM, Slots } from './batch-slots.js'
import { KeyOrder } from './key-order.js'
import { AutoPrune } from './maintenance/auto-prune.js'
import { recordBudget } from './maintenance/budget-record.js'
import { worthALook } from './maintenance/crowding.js'
import { HitLog } from './maintenance/hit-log.js'
import { LastUse } from './maintenance/last-use.js'
import type { EntryInfo } from './maintenance/listing.js'
import { Maintainer, type MaintenanceProgress, type PruneOptions, type PruneReport, type UsageReport, type VerifyOptions, type VerifyReport, type WalkOptions } from './maintenance/maintainer.js'
import { MaintenancePool } from './maintenance/pool.js'
import { RunningTotals } from './maintenance/totals.js'
import { resolveOptions, type LarderOptions, type ResolvedOptions } from './options.js'
import { DiskBreaker, isBreakerOpen, type BreakerSnapshot, type BreakerState } from './resilience/disk-breaker.js'
import { ActivityLog, type ActivityCounters, type ActivityReport } from './stats/activity-log.js'
import { LatencyWindow, type LatencySummary } from './stats/latency-window.js'
import { CreationClock, expiryOf } from './store/creation-clock.js'
import { Layout } from './store/layout.js'
import { recordNamespaceName } from './store/namespace-name.js'
import type { StreamSource } from './store/stream-writer.js'
import { ChangeClock } from './store/change-clock.js'
import { TagClock } from './store/tag-clock.js'
import { FileTier, type CorruptReport } from './tiers/file-tier.js'
import { MemoryTier } from './tiers/memory-tier.js'
import { MISS, type TierEntry, type TierRead } from './tiers/tier.js'
import {
  validateCallOptions, validateEntriesOptions, validateKey, validateKeys, validatePruneOptions, validateSource,
  validateTags, validateTtl, validateValueSize, validateVerifyOptions, validateWalkOptions,
} from './validate.js'

/** This instance's counters since it opened (`ActivityCounters`), and more. */
export interface Stats extends ActivityCounters {
  /** hits / (hits + misses); 0 before any read. */
  hitRate: number
  /** Entries in the memory tier (0 when it is off). */
  memoryEntries: number
  latency: { get: LatencySummary; set: LatencySummary }
  breaker: BreakerSnapshot
  /** Entries in this namespace on disk, for every process sharing it: running totals, not a
   *  scan (see maintenance/totals.ts); exact after a prune or verify, then within the
   *  writes racing it. */
  entries: number
  /** Bytes of entry files in this namespace on disk (what `maxSize` limits), likewise. */
  size: number
  /** When a prune or verify last counted the tree (ms since the epoch), if ever. */
  scannedAt: number | undefined
}

/** Events and their arguments. `error` is emitted only when someone listens for it. */
export interface LarderEvents {
  error: [error: Error]
  hit: [key: string, tier: 'memory' | 'disk']
  miss: [key: string]
  set: [key: string]
  delete: [key: string]
  corrupt: [info: CorruptReport]
  breaker: [state: BreakerState]
  /** Progress of a prune or verify (scan, evict and verify phases). */
  progress: [progress: MaintenanceProgress]
  /** An automatic prune (interval or over-budget write) finished. */
  prune: [report: PruneReport]
}

const SET_OPTIONS = ['ttl', 'tags'] as const
/** How long close() waits for writes in flight before it aborts the streams among them. */
const CLOSE_WAIT_MS = 5000
const GET_OR_SET_OPTIONS = ['ttl', 'tags', 'grace'] as const

/** An entry ready to be written: serialized at call time, written at its turn. */
interface Write {
  serialized: Serialized
  createdAt: number
  expiresAt: number
  tags: readonly string[]
  grace: number
  /** ms spent preparing it (serializing), for latency.set. */
  spent: number
  /** The value as the serializer gives it back, when already known. */
  value?: unknown
}

/** getOrSet's options, validated. */
interface Load {
  ttl: number | undefined
  tags: readonly string[]
  grace: number
}

/** What a load gave its callers: the value, and whether the cache had it (a hit). */
interface Loaded {
  value: unknown
  cached: boolean
}

/** A getOrSet load in progress, which callers of the same key join. */
interface Flight {
  tags: readonly string[]
  /** The creation time of what it stores: stamped when the load began. */
  createdAt: number
  /** A change of the key (or of its tags) was called since it began: it stores nothing. */
  superseded: boolean
  result: Promise<Loaded>
}

/**
 * A persistent cache in a directory. Create one with `Larder.open()`.
 *
 * The facade: it validates arguments, composes the tiers (an in-process memory tier in front
 * of the entry files, `tiers/`), counts, emits events, applies `failOpen`, and starts
 * maintenance. A failing disk turns reads into misses and writes into counted drops (or
 * `ERR_UNAVAILABLE` with `failOpen: false`).
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
    if (worthALook() && (cache.#totals.crowded() || cache.#activity.crowded())) {
      await cache.#maintainer.foldBookkeeping().catch(() => {}) // a failing disk (counted by the breaker): next time
    }
    return cache
  }

  /** The resolved options (defaults filled in). */
  readonly options: Readonly<ResolvedOptions>
  readonly #layout: Layout
  readonly #tags: TagClock
  readonly #clock: CreationClock
  readonly #breaker: DiskBreaker
  readonly #memory: MemoryTier | undefined
  readonly #files: FileTier
  readonly #flights = new Map<string, Flight>()
  readonly #order = new KeyOrder()
  readonly #getLatency = new LatencyWindow()
  readonly #setLatency = new LatencyWindow()
  /** Gets tried on the memory tier, to time one in 16 of its hits. */
  #memoryGets = 0
  /** 'hit' listeners: emit() gathers its arguments into an array even with none, and a
   *  memory hit is cheap enough to notice, so hits emit only when someone listens. */
  #hitListeners = 0
  readonly #counts: ActivityCounters = { hits: 0, misses: 0, memoryHits: 0, sets: 0, deletes: 0, expired: 0, corrupt: 0, errors: 0, dropped: 0, bytesWritten: 0, bytesRead: 0 }
  readonly #totals: RunningTotals
  readonly #hitLog: HitLog | undefined
  readonly #lastUse: LastUse
  readonly #activity: ActivityLog
  readonly #pool: MaintenancePool
  readonly #maintainer: Maintainer
  readonly #autoPrune: AutoPrune
  #removeExitHook: (() => void) | undefined
  #closed = false
  /** Writes in flight, for close() to wait for; a stream's can be aborted. */
  readonly #inflight = new Set<{ done: Promise<unknown>; abort?: AbortController }>()

  private constructor(options: ResolvedOptions) {
    super()
    this.#watchHitListeners()
    this.options = Object.freeze(options)
    this.#layout = new Layout(options.dir, options.namespace, options.shared)
    // A link or foreign file where a directory or file of ours belongs: removed, and counted
    // and reported like a corrupt entry.
    this.#layout.tree.onForeign = (file, reason) => {
      this.#counts.corrupt++
      this.emit('corrupt', { key: undefined, file, reason })
    }
    this.#tags = new TagClock(this.#layout)
    this.#clock = new CreationClock(this.#tags)
    this.#breaker = new DiskBreaker(options.breaker, (state) => this.emit('breaker', state))
    const guard = (step: () => void): void => {
      try {
        this.#bookkeeping(step)
      } catch {
        // skipped (breaker open) or failed (counted): what it was to write stays pending
      }
    }
    this.#totals = new RunningTotals(this.#layout, guard)
    this.#hitLog = options.evictionPolicy === 'lfu' && !options.readOnly ? new HitLog(this.#layout, guard) : undefined
    this.#lastUse = new LastUse(options.maintenance.touchAfter, guard)
    this.#activity = new ActivityLog(this.#layout)
    this.#pool = new MaintenancePool(options.maintenance.workers)
    const changes = new ChangeClock(this.#layout)
    this.#memory = options.memory === false ? undefined : new MemoryTier(options.memory, (tags, createdAt) => this.#tagsStaleSafe(tags, createdAt), changes)
    this.#files = new FileTier({
      layout: this.#layout, options, breaker: this.#breaker, tags: this.#tags, totals: this.#totals, hitLog: this.#hitLog, changes,
      lastUse: options.readOnly ? undefined : this.#lastUse, counts: this.#counts,
      corrupt: (report) => this.emit('corrupt', report),
    })
    this.#maintainer = new Maintainer({
      layout: this.#layout, options, totals: this.#totals, pool: this.#pool,
      pruneStarted: () => {
        this.#lastUse.pruneStarted()
        this.#hitLog?.flush()
      },
      pruneEnded: () => this.#lastUse.pruneEnded(),
      breaker: { isOpen: () => this.#breaker.state === 'open', failed: (error) => this.#bookkeepingFailed(error) },
      compactActivity: () => this.#activity.compact(),
      progress: (p) => this.emit('progress', p),
    })
    this.#autoPrune = new AutoPrune({
      options, maintainer: this.#maintainer, totals: this.#totals,
      pruned: (report) => this.emit('prune', report),
      failed: (error) => {
        if (this.listenerCount('error') > 0) this.emit('error', error)
      },
    })
    // Held for the cache's lifetime: leaves the counters and removes our in-flight temp files
    // if the process exits without close(). A read-only instance has nothing to leave.
    if (!options.readOnly) this.#removeExitHook = onExit(() => {
      this.#flushCounters()
      this.#recordActivity()
      this.#files.removeTempsSync()
    })
  }

  /** The cache directory (absolute). */
  get dir(): string {
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
    if (this.#memory?.has(k) === true) return true
    try {
      return await this.#files.has(k)
    } catch (error) {
      this.#readFailed(error)
      return false
    }
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
    const load: Load = { ttl: validateTtl(o.ttl), tags: validateTags(o.tags), grace: validateTtl(o.grace, 'grace') ?? 0 }
    const waiting = this.#order.pending(k)
    if (waiting !== undefined) await waiting
    const memory = this.#fromMemory(k)
    if (memory.found) return memory.value as T
    const joined = this.#flights.get(k)
    if (joined !== undefined && !this.#invalidatedSince(joined)) return this.#join(k, joined) as Promise<T>
    const flight: Flight = { tags: load.tags, createdAt: this.#clock.createdAt(load.tags), superseded: false, result: undefined as never }
    flight.result = this.#load(k, loader, load, flight)
    this.#flights.set(k, flight)
    try {
      return (await flight.result).value as T
    } finally {
      if (this.#flights.get(k) === flight) this.#flights.delete(k)
    }
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
      stream = await this.#files.getStream(k)
    } catch (error) {
      this.#readFailed(error)
    }
    this.#getLatency.record(performance.now() - started)
    if (stream === undefined) this.#miss(k)
    else this.#hit(k, 'disk')
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
    if (!Array.isArray(items)) throw new LarderError('ERR_INVALID_VALUE', 'Invalid items: expected an array of { key, value, ttl?, tags? }', { field: 'items' })
    const prepared = items.map((item: unknown, i) => {
      const field = `items[${i}]`
      if (item === null || typeof item !== 'object') throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: expected { key, value, ttl?, tags? }`, { field })
      const o = validateCallOptions<SetManyItem>(item, ['key', 'value', 'ttl', 'tags'], field)
      const k = validateKey(o.key, `${field}.key`)
      const ttl = validateTtl(o.ttl, `${field}.ttl`)
      const tags = validateTags(o.tags, `${field}.tags`)
      return { k, write: this.#prepare(o.value, ttl, tags, 0, `${field}.value`) }
    })
    const slots = new Slots(BATCH_PARALLELISM)
    await Promise.all(prepared.map(({ k, write }) => this.#change(k, () => slots.run(() => this.#write(k, write)))))
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
    const createdAt = this.#clock.createdAt(tags)
    const expiresAt = expiryOf(ttl ?? this.options.defaultTtl, createdAt)
    return this.#change(k, async () => {
      const started = performance.now()
      this.#memory?.delete(k)
      const abort = new AbortController()
      try {
        await this.#track(this.#files.setStream(k, input, { createdAt, expiresAt, tags }, abort.signal), abort)
        this.#setLatency.record(performance.now() - started)
        this.emit('set', k)
        this.#autoPrune.afterWrite()
      } catch (error) {
        if (error instanceof SourceError) throw error.original
        if (input instanceof Readable && !input.destroyed) input.destroy()
        if (abort.signal.aborted && error === abort.signal.reason) {
          // close() gave up waiting for it: nothing was stored, the temp file is gone.
          this.#counts.dropped++
          if (!this.options.failOpen) throw error
          return
        }
        this.#writeFailed(error)
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

  /** Removes every entry of this namespace, for every process sharing the directory: what was
   *  set before the call, in every tier; a set called after it is kept. */
  async clear(): Promise<void> {
    this.#assertWritable()
    for (const flight of this.#flights.values()) flight.superseded = true
    this.#flights.clear()
    return this.#order.everything(async () => {
      this.#memory?.clear()
      try {
        await this.#track(this.#files.clear())
      } catch (error) {
        this.#writeFailed(error)
      }
    })
  }

  /**
   * Makes every entry carrying any of `tags` stale, in every process sharing the directory.
   * Costs one small file write per tag, however many entries carry it.
   */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    this.#assertWritable()
    const valid = validateTags(tags)
    if (valid.length === 0) return
    // A load in progress that carries one of them began before: it must not store.
    for (const [k, flight] of this.#flights) {
      if (flight.tags.some((t) => valid.includes(t))) this.#supersede(k)
    }
    try {
      await this.#files.invalidateTags(valid, this.#clock.stamp())
    } catch (error) {
      this.#writeFailed(error)
    }
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
      const found: TierRead = memory.found ? memory : await this.#lookup(k, 0, false)
      let current = 0
      let kept: { expiresAt: number; tags: readonly string[]; grace: number } | undefined
      if (found.found) {
        if (typeof found.value !== 'number') {
          throw new LarderError('ERR_INVALID_VALUE', `Cannot increment key ${JSON.stringify(k)}: its value is a ${typeof found.value}, not a number`, { field: 'key' })
        }
        current = found.value
        kept = found
      }
      const next = current + delta
      if (!Number.isFinite(next)) {
        throw new LarderError('ERR_INVALID_VALUE', `Invalid delta: ${current} + ${delta} is not a finite number, which could not be stored`, { field: 'delta' })
      }
      const write = this.#prepare(next, undefined, kept?.tags ?? [], kept?.grace ?? 0)
      if (kept !== undefined) write.expiresAt = kept.expiresAt
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
    return this.#diskOperation(() => this.#maintainer.prune(valid))
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
    return this.#diskOperation(() => this.#maintainer.verify(valid))
  }

  // ── lifecycle and introspection ───────────────────────────────────────────

  /**
   * What every process did with this cache, recorded as each instance closed (or its process
   * exited): hits, misses, sets and the rest summed, and the breaker state the most recent one
   * left with. This instance counts once it closes; `stats()` has its live counters.
   */
  async activity(): Promise<ActivityReport> {
    this.#assertOpen()
    return this.#diskOperation(async () => this.#bookkeeping(() => this.#activity.read()))
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
      return await this.#files.info(k)
    } catch (error) {
      this.#readFailed(error)
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
    return this.#diskOperation(() => this.#maintainer.list(filters, walk))
  }

  /**
   * Entries, stored and logical bytes, expired entries still on disk, damaged files, oldest
   * and newest entry, and sizes by age: a full read-only walk of the entry heads in worker
   * threads (`stats()` gives entries and bytes without one).
   */
  async usage(options?: WalkOptions): Promise<UsageReport> {
    this.#assertOpen()
    const valid = validateWalkOptions(options)
    return this.#diskOperation(() => this.#maintainer.usage(valid))
  }

  /** Counters since this instance opened, latency percentiles, breaker state, and the entries
   *  and bytes on disk (from the running totals: a few small files, never a scan). */
  async stats(): Promise<Stats> {
    this.#assertOpen()
    const c = this.#counts
    const reads = c.hits + c.misses
    let totals: { entries: number; bytes: number; scannedAt?: number | undefined }
    try {
      totals = this.#bookkeeping(() => this.#totals.read())
    } catch {
      totals = this.#totals.lastKnown() // the disk is failing (or the breaker open): the last known figures
    }
    return {
      ...c,
      entries: totals.entries,
      size: totals.bytes,
      scannedAt: totals.scannedAt,
      hitRate: reads === 0 ? 0 : c.hits / reads,
      memoryEntries: this.#memory?.size ?? 0,
      latency: { get: this.#getLatency.summary(), set: this.#setLatency.summary() },
      breaker: this.#breaker.snapshot(),
    }
  }

  /** Waits for writes in flight (up to CLOSE_WAIT_MS; streams still running then are aborted:
   *  not stored, their temp files removed, counted as dropped), stops maintenance (after an
   *  automatic prune in progress finishes; the worker pool ends), flushes the running totals,
   *  and releases the breaker's timers and the exit hook. Nothing is written after it
   *  resolves. Any later call rejects with `ERR_CLOSED`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#settleWrites()
    await this.#autoPrune.close()
    await this.#maintainer.close()
    if (!this.options.readOnly) {
      this.#flushCounters()
      this.#recordActivity()
    }
    this.#totals.stop()
    this.#hitLog?.stop()
    this.#lastUse.stop()
    await this.#pool.destroy()
    this.#breaker.shutdown()
    this.#memory?.close()
    this.#removeExitHook?.()
    this.#removeExitHook = undefined
  }

  /** Removes listeners, as EventEmitter does, but keeps knowing who listens for 'hit'. */
  override removeAllListeners(...event: Parameters<EventEmitter<LarderEvents>['removeAllListeners']>): this {
    super.removeAllListeners(...event)
    this.#watchHitListeners()
    return this
  }

  // ── internals ─────────────────────────────────────────────────────────────

  readonly #countHitListener = (event: string | symbol): void => {
    if (event === 'hit') this.#hitListeners++
  }

  readonly #uncountHitListener = (event: string | symbol): void => {
    if (event === 'hit') this.#hitListeners--
  }

  /** 'hit' listeners are counted from newListener/removeListener (see #hitListeners): installs
   *  those hooks unless they are in place, and recounts. */
  #watchHitListeners(): void {
    const events = this as EventEmitter
    if (!events.listeners('newListener').includes(this.#countHitListener)) events.on('newListener', this.#countHitListener)
    if (!events.listeners('removeListener').includes(this.#uncountHitListener)) events.on('removeListener', this.#uncountHitListener)
    this.#hitListeners = this.listenerCount('hit')
  }

  /** Runs a write as one close() waits for. */
  async #track<T>(write: Promise<T>, abort?: AbortController): Promise<T> {
    const flight = { done: write.catch(() => {}), abort }
    this.#inflight.add(flight)
    try {
      return await write
    } finally {
      this.#inflight.delete(flight)
    }
  }

  /** Lets writes in flight finish for up to CLOSE_WAIT_MS, then aborts the streams left (a
   *  buffered write is a few syscalls from done, so only streams can be slower) and waits,
   *  as long again at most, for them to remove their temp files. */
  async #settleWrites(): Promise<void> {
    if (this.#inflight.size === 0 && this.#order.idle) return
    // Changes queued behind others on their key (KeyOrder) are writes called before close too.
    await settledWithin([this.#order.settled(), ...[...this.#inflight].map((f) => f.done)], CLOSE_WAIT_MS)
    const closing = new LarderError('ERR_CLOSED', 'The cache was closed before this stream was stored; nothing was written', { field: 'cache' })
    for (const flight of this.#inflight) flight.abort?.abort(closing)
    await settledWithin([this.#order.settled(), ...[...this.#inflight].map((f) => f.done)], CLOSE_WAIT_MS)
  }

  async #prepareDirectory(): Promise<void> {
    try {
      await this.#files.prepare()
      const { maxSize, maxEntries, evictionPolicy } = this.options
      recordBudget(this.#layout, { maxSize, maxEntries, evictionPolicy }) // "no budget" too
      recordNamespaceName(this.#layout, this.options.namespace)
    } catch (error) {
      // A cache that cannot use its directory yet still opens: reads miss, writes drop, and
      // the breaker retries the disk later. With failOpen false, the caller hears now.
      try {
        this.#writeFailed(error)
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
      this.#counts.memoryHits++
      this.#counts.hits++
      if (this.#hitLog !== undefined) this.#hitLog.hit(this.#layout.hashKey(key))
      if (this.#hitListeners > 0) this.emit('hit', key, 'memory')
      if (sampled) this.#getLatency.record(performance.now() - started)
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
   * files. Never throws for disk trouble while failOpen.
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
    return this.#timedLookup(key, grace)
  }

  async #timedLookup(key: string, grace: number): Promise<TierRead> {
    const started = performance.now()
    const found = await this.#lookup(key, grace, true)
    this.#getLatency.record(performance.now() - started)
    return found
  }

  /**
   * Reads `key` from the files (see FileTier.get), counts the hit or miss if asked, and
   * promotes a hit into the memory tier, unless a change was called while the disk was read
   * (the value read may be what it replaced). Never throws for disk trouble while failOpen.
   */
  async #lookup(key: string, grace: number, count: boolean): Promise<TierRead> {
    const version = this.#order.version
    let result: TierRead = MISS
    const ticket = this.#memory?.epoch
    try {
      result = await this.#files.get(key, grace)
    } catch (error) {
      this.#readFailed(error)
    }
    const hit = result.found && !result.stale
    if (count) {
      if (hit) this.#hit(key, 'disk')
      else this.#miss(key)
    }
    if (result.found && !result.stale && this.#order.version === version) this.#memory?.set(key, result, ticket)
    return result
  }

  /**
   * getOrSet's load, shared by every caller that joins it: the files (counted and timed for
   * the first caller), then the loader. Its result is stored unless the load was superseded
   * or its tags invalidated since it began (the entry would be older than what replaced it).
   */
  async #load(key: string, loader: () => unknown, load: Load, flight: Flight): Promise<Loaded> {
    const found = await this.#timedLookup(key, load.grace)
    if (found.found && !found.stale) return { value: found.value, cached: true }
    let value: unknown
    try {
      value = await loader()
    } catch (error) {
      if (found.found) return { value: found.value, cached: false } // stale-if-error
      throw error
    }
    if (value === undefined) return { value, cached: false }
    const write = this.#prepare(value, load.ttl, load.tags, load.grace, 'value', flight.createdAt)
    // What every later read returns, so this caller gets it too.
    write.value = this.#readBack(write.serialized)
    if (!flight.superseded && !this.#invalidatedSince(flight)) await this.#change(key, () => this.#write(key, write))
    return { value: write.value, cached: false }
  }

  /** A caller that joined a load in progress: counted as the load turned out. */
  async #join(key: string, flight: Flight): Promise<unknown> {
    try {
      const loaded = await flight.result
      if (loaded.cached) this.#hit(key, 'disk')
      else this.#miss(key)
      return loaded.value
    } catch (error) {
      this.#miss(key)
      throw error
    }
  }

  /** Whether a tag of the load was invalidated, by any process, since the load began. */
  #invalidatedSince(flight: Flight): boolean {
    return flight.tags.length > 0 && this.#tagsStaleSafe(flight.tags, flight.createdAt)
  }

  /** A load of `key` in progress began before a change of the key: it must not store, and
   *  callers after the change must not join it. */
  #supersede(key: string): void {
    const flight = this.#flights.get(key)
    if (flight === undefined) return
    flight.superseded = true
    this.#flights.delete(key)
  }

  /** Runs a change of `key` in call order (KeyOrder), superseding a load in progress. */
  #change<T>(key: string, change: () => Promise<T>, hidden = false): Promise<T> {
    this.#supersede(key)
    return this.#order.change(key, change, hidden)
  }

  /** Serializes a value for writing, at call time (bad input rejects before anything is
   *  queued or written); its creation time is now, or when its load began. */
  #prepare(value: unknown, ttl: number | undefined, tags: readonly string[], grace: number, field = 'value', createdAt?: number): Write {
    const started = performance.now()
    const serialized = serialize(value, this.options.serializer, field)
    validateValueSize(serialized.bytes.length, this.options.maxValueSize, field)
    const at = createdAt ?? this.#clock.createdAt(tags)
    return { serialized, createdAt: at, expiresAt: expiryOf(ttl ?? this.options.defaultTtl, at), tags, grace, spent: performance.now() - started }
  }

  /** The value as every reader of its entry will get it (see serializers.ts `readBack`). */
  #readBack(serialized: Serialized): unknown {
    try {
      return readBack(serialized, this.options.serializer)
    } catch (cause) {
      throw new LarderError('ERR_SERIALIZE', `Cannot store value: the custom serializer cannot read back what it wrote (${(cause as Error).message})`, { field: 'value', cause })
    }
  }

  /**
   * One entry written at its turn (KeyOrder), shared by set, setMany, getOrSet and increment:
   * into the memory tier as the serializer gives it back, then to the files. A dropped write
   * (failOpen) still serves this process from memory: better than a miss, and the process's
   * own view stays consistent with what it just wrote.
   */
  async #write(key: string, write: Write): Promise<void> {
    const started = performance.now()
    const { serialized, createdAt, expiresAt, tags, grace } = write
    const entry: TierEntry = { value: undefined, createdAt, expiresAt, tags, grace, size: serialized.bytes.length }
    if (this.#memory !== undefined) {
      entry.value = 'value' in write ? write.value : this.#readBack(serialized)
      this.#memory.set(key, entry)
    }
    try {
      await this.#track(this.#files.set(key, { ...entry, serialized }))
      this.emit('set', key)
      this.#autoPrune.afterWrite()
    } catch (error) {
      try {
        this.#writeFailed(error)
      } catch (unavailable) {
        this.#memory?.delete(key) // the caller hears it was not stored
        throw unavailable
      }
    } finally {
      this.#setLatency.record(write.spent + performance.now() - started)
    }
  }

  async #remove(key: string): Promise<boolean> {
    this.#memory?.delete(key)
    try {
      const deleted = await this.#files.delete(key)
      if (deleted) {
        this.#counts.deletes++
        this.emit('delete', key)
      }
      return deleted
    } catch (error) {
      this.#writeFailed(error)
      return false
    }
  }

  #hit(key: string, tier: 'memory' | 'disk'): void {
    this.#counts.hits++
    if (this.#hitListeners > 0) this.emit('hit', key, tier)
  }

  #miss(key: string): void {
    this.#counts.misses++
    this.emit('miss', key)
  }

  /** A read that failed on the disk: a miss, or ERR_UNAVAILABLE with failOpen false. */
  #readFailed(error: unknown): void {
    if (isLarderError(error)) throw error
    this.#diskTrouble(error)
  }

  /** A write that failed on the disk: a counted drop, or ERR_UNAVAILABLE with failOpen false. */
  #writeFailed(error: unknown): void {
    if (isLarderError(error)) throw error
    this.#counts.dropped++
    this.#diskTrouble(error)
  }

  #diskTrouble(error: unknown): void {
    const open = isBreakerOpen(error)
    if (!open) this.#counts.errors++
    const reason = error instanceof Error ? error.message : String(error)
    const unavailable = new LarderError('ERR_UNAVAILABLE', open ? 'Cache disk unavailable: circuit breaker is open' : `Cache disk unavailable: ${reason}`, { cause: error })
    // An 'error' event with no listener would throw: only emit to someone who listens.
    if (!open && this.listenerCount('error') > 0) this.emit('error', unavailable)
    if (!this.options.failOpen) throw unavailable
  }

  /**
   * A bookkeeping step on the disk (running totals, hit counts, merged touches, activity
   * records read back): refused while the breaker is open, so a failing disk is left alone, and
   * its failure is counted by the breaker like any operation's. Its successes are not: the
   * breaker's rates stay those of the application's own calls. Sync, so it serves the exit hook.
   */
  #bookkeeping<T>(step: () => T): T {
    if (this.#breaker.state === 'open') throw Object.assign(new Error('Breaker is open'), { code: 'EOPENBREAKER' })
    try {
      return step()
    } catch (error) {
      this.#bookkeepingFailed(error)
      throw error
    }
  }

  /** Counts a failed bookkeeping or maintenance step in the breaker, as opossum counts any
   *  failure: an operation run through it that failed (it judges whether it is a disk's). A
   *  synchronous throw is counted at once, before the caller reads the breaker's state. */
  #bookkeepingFailed(error: unknown): void {
    this.#breaker.run(() => {
      throw error
    }).catch(() => {})
  }

  /** Maintenance errors that are not LarderErrors are disk trouble: ERR_UNAVAILABLE (at once,
   *  without touching the disk, while the breaker is open). */
  async #diskOperation<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (error) {
      if (isLarderError(error)) throw error
      if (isBreakerOpen(error)) throw new LarderError('ERR_UNAVAILABLE', 'Cache disk unavailable: circuit breaker is open', { cause: error })
      this.#counts.errors++
      throw new LarderError('ERR_UNAVAILABLE', `Cache maintenance failed: ${(error as Error).message}`, { cause: error })
    }
  }

  /** Writes the running totals, hit counts and merged touches this process holds, through
   *  the breaker (not while it is open; a failure is counted). Sync: runs at exit too. */
  #flushCounters(): void {
    // A failing disk or an open breaker: the next full scan corrects the totals.
    for (const flush of [() => this.#lastUse.flush(), () => this.#totals.flush(), () => this.#hitLog?.flush()]) {
      try {
        this.#bookkeeping(flush)
      } catch {
        // skipped or counted
      }
    }
  }

  /** Leaves this instance's counters and breaker state for `activity()`. Sync: runs at exit too. */
  #recordActivity(): void {
    try {
      this.#activity.record(this.#counts, this.#breaker.snapshot().state)
    } catch {
      // the disk is failing: this run goes unrecorded
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new LarderError('ERR_CLOSED', 'The cache is closed', { field: 'cache' })
  }

  #assertWritable(): void {
    this.#assertOpen()
    if (this.options.readOnly) throw new LarderError('ERR_READ_ONLY', 'The cache was opened with readOnly: true; it writes nothing', { field: 'readOnly' })
  }
}

/** Waits for `promises` (which never reject), or `ms`, whichever comes first. */
async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return
  let timer: NodeJS.Timeout | undefined
  const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  await Promise.race([Promise.all(promises), waited])
  clearTimeout(timer)
}
