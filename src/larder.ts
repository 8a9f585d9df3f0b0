import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import type { Readable } from 'node:stream'
import type { EntriesOptions, GetOrSetOptions, GetStreamOptions, SetManyItem, SetOptions, SetValueOptions } from './call-options.js'
import { LarderError } from './errors.js'
import { layerOptions, type LayeredOptions, type OptionSource } from './config/layered-options.js'
import { CacheParts } from './facade/cache-parts.js'
import type { LarderEvents } from './facade/events.js'
import { incrementInOrder } from './facade/increment.js'
import { entryBatches, memoryAnswer, removeMatching, taggedKeys } from './facade/adapter-hooks.js'
import { keysBeyondDir, shownByDir } from './facade/tagged-keys.js'
import * as operatorCalls from './facade/operator-calls.js'
import { rekeyTiers } from './facade/rekey.js'
import { answerOf } from './tiers/memory-tier.js'
import type { TierRead } from './tiers/tier.js'
import { optionsSnapshot, reconfigure, type ConfigChange, type ReconfigureState } from './facade/reconfigure.js'
import { assembleStats, type Stats } from './facade/stats.js'
import { warm, type WarmReport } from './facade/warm.js'
import { loadHasher } from './format/checksum.js'
import { loadRedisClient } from './redis/connection.js'
import type { EntryInfo } from './maintenance/listing.js'
import type {
  PruneOptions,
  PruneReport,
  RekeyOptions,
  RekeyReport,
  UsageReport,
  VerifyOptions,
  VerifyReport,
  WalkOptions,
} from './maintenance/maintainer.js'
import type { LarderOptions, ResolvedOptions } from './options.js'
import { MAX_TAGS } from './options.js'
import type { ActivityReport } from './stats/activity-log.js'
import type { TierName } from './stats/counters.js'
import type { StreamSource } from './store/stream-writer.js'
import {
  validateCallOptions,
  validateClearOptions,
  validateDelta,
  validateEntriesOptions,
  validateGetOrSet,
  validateGetStreamOptions,
  validateKey,
  validateKeys,
  validatePruneOptions,
  validateSetManyItems,
  validateSource,
  validateTags,
  validateTtl,
  validateReadAt,
  validateRekeyOptions,
  validateVerifyOptions,
  validateWalkOptions,
  validateWarm,
} from './validate.js'

export type { ConfigChange, LarderEvents, OptionSource, Stats, WarmReport }

const SET_OPTIONS = ['ttl', 'tags'] as const
const SET_VALUE_OPTIONS = ['ttl', 'tags', 'readAt'] as const

/**
 * A persistent cache in a directory (and, with `redis`, a shared tier). Create one with
 * `Larder.open()`.
 *
 * The facade: it validates arguments, applies `failOpen` and answers with the parts it is
 * composed of (facade/cache-parts.ts): the tier stack owns the read and write paths, the
 * counted reads and ordered writes count, time and emit events, and getOrSet's loads are
 * shared. A failing disk or Redis turns reads into misses and writes into counted drops (or
 * `ERR_UNAVAILABLE` with `failOpen: false`).
 */
export class Larder extends EventEmitter<LarderEvents> {
  /** Opens (creating if needed) the cache directory. Rejects only for invalid options (naming
   *  their source: see README, Configuration), or with `ERR_UNAVAILABLE` when the directory
   *  cannot be used and `failOpen` is false. With `config`, the environment and the config
   *  file are read too; with `profile`, its presets apply. */
  static async open(options?: LarderOptions): Promise<Larder> {
    const layered = await layerOptions(options)
    try {
      await loadHasher()
      if (layered.resolved.redis !== undefined) await loadRedisClient()
      const cache = new Larder(layered)
      await cache.#p.open()
      return cache
    } catch (error) {
      if (layered.tempDir !== undefined) fs.rmSync(layered.tempDir, { recursive: true, force: true })
      throw error
    }
  }

  readonly #p: CacheParts
  readonly #config: ReconfigureState
  #options: Readonly<ResolvedOptions> | undefined
  readonly #tempDir: string | undefined
  // The memory-hit path's parts, held here so that a hit costs no extra lookups.
  readonly #memory: CacheParts['memory']
  readonly #order: CacheParts['order']
  readonly #reads: CacheParts['reads']
  #closed = false
  #closing: Promise<void> | undefined

  private constructor(layered: LayeredOptions) {
    super()
    this.#p = new CacheParts(layered.resolved, this)
    this.#config = { parts: this.#p, live: layered.resolved, input: layered.input, sources: layered.sources }
    this.#tempDir = layered.tempDir
    this.#memory = this.#p.memory
    this.#order = this.#p.order
    this.#reads = this.#p.reads
  }

  /** The options the cache runs with: every default filled in, sizes in bytes, durations in
   *  ms; after `configure()`, the new values. A frozen snapshot (change options with
   *  `configure()`). Never holds an encryption key. */
  get options(): Readonly<ResolvedOptions> {
    return (this.#options ??= optionsSnapshot(this.#config.live))
  }

  /** Where each option's value came from, by its path in the option table (`'maxSize'`,
   *  `'memory.maxEntries'`): `'default'`, `'call'`, `'env:LARDER_MAX_SIZE'`,
   *  `'file:/abs/larder.config.json'`, `'profile:test'` or `'configure'`. */
  get optionSources(): Readonly<Record<string, OptionSource>> {
    return Object.freeze({ ...this.#config.sources })
  }

  /** The cache directory (absolute), or false (`dir: false`). */
  get dir(): string | false {
    return this.#config.live.dir
  }

  /** Changes options while the cache runs (see facade/reconfigure.ts and README,
   *  Configuration): validated as a whole with the running ones, so a bad partial or a change
   *  of an option fixed at open (`dir`, `namespace`, `serializer`…) rejects with
   *  `ERR_INVALID_OPTION` naming the field and changes nothing; otherwise applied at once.
   *  Resolves to what changed, also emitted as `'configure'`. */
  // eslint-disable-next-line @typescript-eslint/require-await -- public API: a mistake arrives as a rejection, like every other method's
  async configure(partial: Partial<LarderOptions>): Promise<ConfigChange[]> {
    this.#assertOpen()
    const changes = reconfigure(this.#config, partial)
    if (changes.length > 0) {
      this.#options = undefined
      this.emit('configure', changes)
    }
    return changes
  }

  // ── reads ─────────────────────────────────────────────────────────────────

  /** The value for `key`, or `undefined` on a miss. Never rejects for disk trouble unless `failOpen` is false. */
  get(key: string): Promise<unknown> {
    // The memory tier first, before validation: every key in it was validated when stored,
    // and a hit must cost little more than the lookup, so it is answered without an async
    // function's frame (one resolved promise, as its return would be; a 'hit' listener that
    // throws still rejects, never throws; the promise is the entry's own, made at its first hit:
    // memory-tier.ts answerOf). While a change is in flight it must wait for the
    // changes of its key called before it (CountedReads.read); a closed cache rejects below.
    if (this.#memoryAnswers() && typeof key === 'string') {
      try {
        const memory = this.#reads.fromMemory(key)
        if (memory.found) return answerOf(memory)
      } catch (error) {
        return rejected(error)
      }
      return this.#get(key, false)
    }
    return this.#get(key, true)
  }

  /** For larder's adapters only (facade/adapter-hooks.ts): get()'s answer when the memory tier
   *  gives it at once, else undefined (then call get()). Spares a host library's hot read the
   *  adapter's own promise around get()'s. */
  [memoryAnswer](key: string): Promise<unknown> | undefined {
    return this.#memoryAnswers() ? this.#reads.answerAtOnce(key) : undefined
  }

  /** For larder's adapters only (facade/adapter-hooks.ts): the keys of entries carrying any of
   *  `tags` that a listing of the directory does not show: the memory tier's, then Redis's,
   *  less those the directory holds live under the tags. */
  [taggedKeys](tags: readonly string[]): AsyncIterable<string> {
    this.#assertOpen()
    const files = this.#p.disk?.files
    return keysBeyondDir(this.#memory?.keysTagged(tags) ?? [], this.#p.shared?.tier, tags, this.#p.failures, (key) =>
      shownByDir(files, key, tags, (listed) => this.#p.stack.servable(listed)),
    )
  }

  /** For larder's adapters and CLI only (facade/adapter-hooks.ts): entries() a batch of
   *  partitions at a time, memory bounded by a few batches (entries() holds them all). */
  [entryBatches](options?: EntriesOptions): AsyncIterable<EntryInfo[]> {
    this.#assertOpen()
    const { filters, walk } = validateEntriesOptions(options)
    return operatorCalls.entryBatches(this.#p, filters, walk)
  }

  /** For larder's CLI only (facade/adapter-hooks.ts): prune() of what `pattern` or `tags`
   *  select and nothing else (`larder rm`); the report's `matched` and `expired` count what
   *  went. */
  async [removeMatching](options: Pick<PruneOptions, 'pattern' | 'tags' | 'signal' | 'onProgress'>): Promise<PruneReport> {
    this.#assertOpen()
    this.#assertWritable()
    const unbounded = Number.MAX_SAFE_INTEGER
    const valid = validatePruneOptions({ ...options, maxSize: unbounded, maxEntries: unbounded })
    return operatorCalls.prune(this.#p, { ...valid, onlyMatching: true })
  }

  /** Whether a get may be answered by the memory tier at once: there is one, the cache is
   *  open, and no change is in flight that a read would have to wait for. */
  #memoryAnswers(): boolean {
    return this.#memory !== undefined && !this.#closed && this.#order.idle
  }

  /** get() past the memory tier's hit path (`askMemory`: it has not been asked yet). Not an
   *  async function: a read the tiers answer at once (the file tier's plain hit) costs one
   *  promise, this one, instead of one or two per layer; whatever throws, rejects. */
  #get(key: string, askMemory: boolean): Promise<unknown> {
    let found: TierRead | Promise<TierRead>
    try {
      this.#assertOpen()
      found = this.#reads.read(validateKey(key), 0, askMemory)
    } catch (error) {
      return rejected(error)
    }
    return found instanceof Promise ? found.then(valueOf) : Promise.resolve(valueOf(found))
  }

  /** Whether a fresh entry exists for `key`. Checks the entry's metadata (and, for entries
   *  up to 64 KiB, its checksum) without decompressing or deserializing the value. Counts no
   *  hit or miss. */
  async has(key: string): Promise<boolean> {
    this.#assertOpen()
    const k = validateKey(key)
    return this.#order.afterChanges(k, () => this.#p.stack.has(k))
  }

  /** Values for `keys`, in key order (`undefined` for each miss); a hit or miss per key.
   *  At most BATCH_PARALLELISM entries are read at once. */
  async getMany(keys: readonly string[]): Promise<unknown[]> {
    this.#assertOpen()
    return this.#reads.many(validateKeys(keys))
  }

  /**
   * The value for `key`; on a miss, calls `loader` once however many callers ask at the same
   * time (singleflight), stores its result and returns it (as the serializer gives it back,
   * like every later read). A failing loader rejects every waiting caller and caches nothing;
   * with `grace`, a value expired less than `grace` ago is returned instead, and the entry
   * the loader stores is kept that long past its expiry for this purpose. A loader that
   * resolves to `undefined` caches nothing. With `lock` (and `redis`), of many instances
   * asking at once one calls its loader and the others wait (bounded) for its value.
   *
   * The entry is as old as the moment its loader started: a set, delete or clear of the key,
   * or an invalidation of its tags, made while the loader runs wins over what it returns.
   * The callers already waiting receive the loaded value once; later callers do not.
   */
  async getOrSet<T>(key: string, loader: () => T | Promise<T>, options?: GetOrSetOptions): Promise<T> {
    this.#assertWritable()
    const k = validateKey(key)
    return this.#p.getOrSet.run(k, loader, validateGetOrSet(loader, options)) as Promise<T>
  }

  /**
   * The value as a stream with bounded memory, or `undefined` on a miss. For a streamed
   * entry these are the bytes that were written; for a `set` value, its serialized bytes.
   * Every byte is checked: if the checksum fails at the end, the stream errors with
   * `ERR_CORRUPT` instead of ending, and the entry is removed. The value's last bytes are
   * handed out only once the checksum has passed, so a damaged entry never reaches its full
   * length either. With `verifyFirst`, every byte is checked before the first is handed out
   * (the file is read twice), and a damaged entry is a miss.
   */
  async getStream(key: string, options?: GetStreamOptions): Promise<Readable | undefined> {
    this.#assertOpen()
    const { verifyFirst = false } = validateGetStreamOptions(options)
    return this.#reads.stream(validateKey(key), verifyFirst)
  }

  // ── writes ────────────────────────────────────────────────────────────────

  /** Stores `value` under `key`. Bad input rejects with a LarderError and writes nothing. */
  set(key: string, value: unknown, options?: SetValueOptions): Promise<void> {
    // Not an async function: the change's own promise is returned as it is, without a promise
    // of the call's that would adopt it (one more promise and two microtask turns per set);
    // bad input still arrives as a rejection, never a throw.
    try {
      this.#assertWritable()
      const k = validateKey(key)
      const o = validateCallOptions<SetValueOptions>(options, SET_VALUE_OPTIONS)
      const writes = this.#p.writes
      const write = writes.prepare(
        value,
        validateTtl(o.ttl),
        validateTags(o.tags),
        0,
        'value',
        validateReadAt(o.readAt, this.#p.clock.latest),
      )
      return writes.change(k, () => writes.write(k, write))
    } catch (error) {
      return rejected(error)
    }
  }

  /** A time for `set`'s `readAt`, taken before reading a value from its source: later than
   *  every change this instance made or heard of, so an invalidation made here just before
   *  it (even in the same millisecond) does not make the value stale, and one made after does. */
  now(): number {
    return this.#p.clock.stamp()
  }

  /** Stores several entries. Every item is validated and serialized before any is written;
   *  an error names the item (`items[1].ttl`). At most BATCH_PARALLELISM are written at once. */
  async setMany(items: readonly SetManyItem[]): Promise<void> {
    this.#assertWritable()
    return this.#p.writes.writeMany(validateSetManyItems(items))
  }

  /**
   * Stores a stream (a Readable, any (async) iterable of Uint8Array/string chunks, or one
   * Uint8Array) with bounded memory, in the file tier only (a stream never goes to Redis; the
   * key's older value there is removed). The entry appears atomically once the whole stream is
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
    return this.#p.writes.stream(k, this.#p.files('setStream'), input, ttl, tags)
  }

  /** Removes `key`; true if a live entry was there (an expired one is removed too, but was not there). */
  async delete(key: string): Promise<boolean> {
    this.#assertWritable()
    const k = validateKey(key)
    const at = this.#p.clock.stamp() // at call time, as a set's creation time (OrderedWrites.remove)
    return this.#p.writes.change(k, () => this.#p.writes.remove(k, at))
  }

  /** Removes each key; resolves to how many entries were there. At most BATCH_PARALLELISM
   *  are removed at once. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    this.#assertWritable()
    return this.#p.writes.removeMany(validateKeys(keys))
  }

  /** Removes every entry of this namespace, for every process sharing the directory (and,
   *  with Redis, every instance): what was set before the call, in every tier, or in `tier`
   *  only; a set called after it is kept. */
  async clear(options?: { tier?: TierName }): Promise<void> {
    this.#assertWritable()
    return this.#p.writes.clear(validateClearOptions(options, Object.keys(this.#p.counters.tiers) as TierName[]))
  }

  /** Resolves once the writes queued for Redis (write-back, and changes made while Redis was
   *  out of reach), those of every buffered change called before it included, have been sent,
   *  or dropped; at once when none are queued. While Redis cannot
   *  be reached (its breaker open) it does not wait for its return: it resolves, the writes
   *  staying queued, or with `failOpen: false` rejects with `ERR_UNAVAILABLE`. */
  async flush(): Promise<void> {
    this.#assertOpen()
    await this.#p.order.visibleSettled() // a set called just before, not awaited, is queued first
    const sent = (await this.#p.writeBack?.flush()) ?? true
    if (!sent && !this.#config.live.failOpen)
      throw new LarderError('ERR_UNAVAILABLE', 'Shared tier (Redis) unavailable: the writes queued for it are still queued')
  }

  /** Makes each key local: a key the shared tier has is promoted; the keys found nowhere are
   *  loaded by `loader(keys)` (in batches) and stored. */
  async warm(keys: readonly string[], options?: { loader?: (keys: string[]) => unknown; concurrency?: number }): Promise<WarmReport> {
    this.#assertWritable()
    return warm(this.#p, validateWarm(keys, options))
  }

  /** Makes every entry carrying any of `tags` stale, in every process sharing the directory
   *  (and, with Redis, every instance, including those that start later). Costs one small file
   *  write per tag, however many entries carry it. */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    this.#assertWritable()
    // `tags` is this call's one argument, not an option left out: undefined (no list at all) is
    // refused as null is, not taken for no tags, which would invalidate nothing without a word.
    const valid = validateTags(tags ?? null, 'tags', Infinity)
    if (valid.length === 0) return
    this.#p.loads.supersedeTagged(valid) // a load in progress that carries one of them began before
    const at = this.#p.clock.invalidation()
    // Tracked as a write, so close() waits for it: a close() called while the batches were
    // being stamped let the rest resolve unwritten, and their entries were served again.
    return this.#p.inFlight.track(this.#stampTags(valid, at))
  }

  /** invalidateTags' stamps, in batches of an entry's most tags: one bus message, one Redis
   *  call each, all stamped `at`. */
  async #stampTags(tags: readonly string[], at: number): Promise<void> {
    for (let i = 0; i < tags.length; i += MAX_TAGS) await this.#p.tags.invalidate(tags.slice(i, i + MAX_TAGS), at)
  }

  /**
   * Adds `delta` to the number under `key` (a missing key counts as 0) and returns the
   * result. Calls in one instance take effect in call order, so no update is lost; calls in
   * several processes or instances at once can lose updates (a read, then a write). The entry
   * keeps its expiry, tags and grace. A result that is not finite is refused
   * (`ERR_INVALID_VALUE`), and a `raw` cache cannot store numbers (`ERR_INVALID_OPTION`).
   * Counts no hit or miss.
   */
  async increment(key: string, delta = 1): Promise<number> {
    this.#assertWritable()
    const k = validateKey(key)
    validateDelta(delta)
    return incrementInOrder(this.#p, k, delta)
  }

  /** `increment(key, -delta)`. */
  async decrement(key: string, delta = 1): Promise<number> {
    this.#assertOpen()
    return this.increment(key, -validateDelta(delta))
  }

  // ── maintenance ───────────────────────────────────────────────────────────

  /**
   * Reclaims space in worker threads: removes expired and tag-invalidated entries, corrupt
   * files, stray temp files older than `maintenance.tempMaxAge`, entries matching the filters
   * (`maxAge`: not used within; `olderThan`: created before; `tags`; `pattern`, a glob over
   * keys such as `'user:*'`), then evicts by `evictionPolicy` down to `maxSize`/`maxEntries`
   * (or, if the configured budget is exceeded, to its low-water mark). `dryRun` reports what
   * would go and removes nothing (allowed on a `readOnly` cache, where it writes nothing at
   * all and takes no lock: its report is then approximate while a prune runs beside it). Cancel with `signal`: rejects with `ERR_ABORTED`, whose
   * `report` holds the work done. Progress arrives as `progress` events and `onProgress`.
   * With `redis`, `pattern` also removes the matching keys from Redis (`sharedRemoved`), and
   * every instance on the bus drops its local copies. Without a directory (`dir: false`, with
   * `redis`): Redis's part alone (`pattern`, and the entries no instance will serve again);
   * the budgets, the other filters and a dry run are refused (`ERR_INVALID_OPTION`).
   */
  async prune(options?: PruneOptions): Promise<PruneReport> {
    this.#assertOpen()
    const valid = validatePruneOptions(options)
    // A dry run writes nothing, so a readOnly cache may preview a prune (without the lock).
    if (valid.dryRun !== true) this.#assertWritable()
    return operatorCalls.prune(this.#p, valid)
  }

  /** Re-checks every entry's checksum in worker threads (every byte, no decompression). With
   *  `repair` (default true) corrupt entries and stale temp files are removed and the running
   *  totals corrected. Cancel with `signal` (`ERR_ABORTED`). */
  async verify(options?: VerifyOptions): Promise<VerifyReport> {
    this.#assertOpen()
    const valid = validateVerifyOptions(options)
    if (valid.repair !== false) this.#assertWritable()
    return operatorCalls.verify(this.#p, valid)
  }

  /**
   * Rewrites, in worker threads, every entry not sealed under `encryption.activeKey` (sealed
   * under another listed key, or not encrypted) sealed under it; each rewrite atomic and only
   * if the entry is unchanged since read. Entries under keys not listed are left and counted.
   * With `redis`, the values Redis holds for this namespace too (`report.redis`). Needs the
   * `encryption` option. Cancel with `signal` (`ERR_ABORTED`).
   */
  async rekey(options?: RekeyOptions): Promise<RekeyReport> {
    this.#assertOpen()
    const valid = validateRekeyOptions(options)
    this.#assertWritable()
    return this.#p.failures.operation(() => rekeyTiers(this.#p, valid))
  }

  // ── lifecycle and introspection ───────────────────────────────────────────

  /** What every process did with this cache, recorded as each instance closed (or its process
   *  exited): hits, misses, sets and the rest summed, and the breaker state the most recent one
   *  left with. This instance counts once it closes; `stats()` has its live counters. */
  async activity(): Promise<ActivityReport> {
    this.#assertOpen()
    return operatorCalls.activity(this.#p)
  }

  /** What is known of `key`'s entry without decoding its value: sizes, times, tags, codec.
   *  `undefined` on a miss (expired and invalidated entries included). Small entries are
   *  verified whole; a large one's head is read. Counts no hit or miss and refreshes nothing. */
  async info(key: string): Promise<EntryInfo | undefined> {
    this.#assertOpen()
    return operatorCalls.info(this.#p, validateKey(key))
  }

  /** Every live entry (or those matching `prefix`, `pattern` and `tags`), described as `info()`
   *  does, read in worker threads from entry heads; in no particular order. Removes nothing.
   *  Cancel with `signal` (`ERR_ABORTED`); progress as for prune. The array holds the whole
   *  listing at once (a few hundred bytes an entry): keep it to caches of a size that fits in
   *  memory, or narrow it with the filters. */
  async entries(options?: EntriesOptions): Promise<EntryInfo[]> {
    this.#assertOpen()
    const { filters, walk } = validateEntriesOptions(options)
    return operatorCalls.entries(this.#p, filters, walk)
  }

  /** Entries, stored and logical bytes, expired entries still on disk, damaged files, oldest
   *  and newest entry, and sizes by age: a full read-only walk of the entry heads in worker
   *  threads (`stats()` gives entries and bytes without one). */
  async usage(options?: WalkOptions): Promise<UsageReport> {
    this.#assertOpen()
    return operatorCalls.usage(this.#p, validateWalkOptions(options))
  }

  /** Counters since this instance opened (or `resetStats()`), latency percentiles, breaker
   *  state, the entries and bytes on disk (from the running totals: a few small files, never
   *  a scan), and each tier's own figures (`tiers`). */
  // eslint-disable-next-line @typescript-eslint/require-await -- public API: a closed cache's ERR_CLOSED arrives as a rejection, like every other method's
  async stats(): Promise<Stats> {
    this.#assertOpen()
    return assembleStats(this.#p)
  }

  /** Zeroes the counters, per-tier figures and latencies `stats()` reports (what `activity()`
   *  records at close is this instance's whole run, reset or not). */
  resetStats(): void {
    this.#assertOpen()
    this.#p.counters.reset()
    this.#p.disk?.compressLater?.resetCounts()
  }

  /** Waits for writes in flight, invalidateTags included (up to CLOSE_WAIT_MS; streams still running then are aborted:
   *  not stored, their temp files removed, counted as dropped), sends the writes queued for
   *  Redis (write-back; as long again at most), stops maintenance (after an automatic prune in
   *  progress finishes; the worker pool ends), flushes the running totals, closes the Redis
   *  connections larder opened, and releases the breakers' timers and the exit hook. Nothing
   *  is written after it resolves. Any later call rejects with `ERR_CLOSED`. Idempotent: a second call resolves with the first, once it is done. */
  close(): Promise<void> {
    // Every caller waits for the one closing (a signal handler and a shutdown hook both
    // calling it): a second call must not resolve while the first is still writing.
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#closed = true
    await this.#p.close()
    // The test profile's directory: made by open() for this cache alone.
    if (this.#tempDir !== undefined) fs.rmSync(this.#tempDir, { recursive: true, force: true })
  }

  /** Removes listeners, as EventEmitter does, but keeps knowing who listens for 'hit'. */
  override removeAllListeners(...event: Parameters<EventEmitter<LarderEvents>['removeAllListeners']>): this {
    super.removeAllListeners(...event)
    this.#p.hitListeners.watch()
    return this
  }

  #assertOpen(): void {
    if (this.#closed) throw new LarderError('ERR_CLOSED', 'The cache is closed', { field: 'cache' })
  }

  #assertWritable(): void {
    this.#assertOpen()
    if (this.#config.live.readOnly)
      throw new LarderError('ERR_READ_ONLY', 'The cache was opened with readOnly: true; it writes nothing', { field: 'readOnly' })
  }
}

/** What get() answers for a read: the value, or undefined for a miss. */
function valueOf(found: TierRead): unknown {
  return found.found ? found.value : undefined
}

/** `error` as an async function would report it: a rejected promise. */
// eslint-disable-next-line @typescript-eslint/require-await -- an async function is the one way to reject with any thrown value
async function rejected(error: unknown): Promise<never> {
  throw error
}
