import { EventEmitter } from 'node:events'
import path from 'node:path'
import { Readable } from 'node:stream'
import { onExit } from 'signal-exit'
import { LarderError, isLarderError } from './errors.js'
import { loadHasher } from './format/checksum.js'
import {
  Compression, compressAsync, compressionIds, compressSync, decompressAsync, decompressSync,
  PROBE_BYTES, SYNC_CODEC_LIMIT, worthCompressing,
} from './format/compression.js'
import { CorruptEntryError, decodeEntry, decodeTrailer, encodeEntry, encodeTags, FLAG_FRAMED, TRAILER_BYTES, type DecodedEntry } from './format/entry-format.js'
import { decodeFramedPayload } from './format/frames.js'
import { Codec, deserialize, serialize, type Serialized } from './format/serializers.js'
import { parseDuration, parseSize, resolveOptions, type Duration, type LarderOptions, type ResolvedOptions } from './options.js'
import { DiskBreaker, isBreakerOpen, type BreakerSnapshot, type BreakerState } from './resilience/disk-breaker.js'
import { disk, errorCode } from './store/disk.js'
import { readEntryFile, removeFile, removeIfUnchanged, SYNC_IO_LIMIT, writeEntryFile } from './store/entry-files.js'
import { CACHEDIR_TAG, Layout } from './store/layout.js'
import { createEntryStream, openEntry, type OpenedEntry } from './store/stream-reader.js'
import { SourceError, writeEntryStream, type StreamSource } from './store/stream-writer.js'
import { TagClock } from './store/tag-clock.js'
import { recordBudget } from './maintenance/budget-record.js'
import { worthALook } from './maintenance/crowding.js'
import { HitLog } from './maintenance/hit-log.js'
import type { PruneFilters } from './maintenance/worker.js'
import { Maintainer, type MaintenanceProgress, type PruneOptions, type PruneReport, type UsageReport, type VerifyOptions, type VerifyReport, type WalkOptions } from './maintenance/maintainer.js'
import { toEntryInfo, type EntryInfo, type ListFilters } from './maintenance/listing.js'
import { MaintenancePool } from './maintenance/pool.js'
import { RunningTotals } from './maintenance/totals.js'
import { ActivityLog, type ActivityCounters, type ActivityReport } from './stats/activity-log.js'
import { LatencyWindow, type LatencySummary } from './stats/latency-window.js'
import { MemoryTier, type MemoryEntry } from './tiers/memory-tier.js'
import { validateCallOptions, validateKey, validateKeys, validateTags, validateTtl } from './validate.js'

export interface SetOptions {
  /** Time to live: milliseconds or a duration string; 0 = never expires. Default: the cache's `defaultTtl`. */
  ttl?: Duration
  /** Tags for `invalidateTags` (table names, say). */
  tags?: readonly string[]
}

export interface GetOrSetOptions extends SetOptions {
  /** Stale-if-error: if the loader fails, a value that expired less than this long ago is returned. */
  grace?: Duration
}

export interface SetManyItem extends SetOptions {
  key: string
  value: unknown
}

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
  corrupt: [info: { key: string | undefined; file: string; reason: string }]
  breaker: [state: BreakerState]
  /** Progress of a prune or verify (scan, evict and verify phases). */
  progress: [progress: MaintenanceProgress]
  /** An automatic prune (interval or over-budget write) finished. */
  prune: [report: PruneReport]
}

type Lookup =
  | { found: false }
  | { found: true; stale: boolean; value: unknown; createdAt: number; expiresAt: number; tags: readonly string[]; size: number }

const MISS: Lookup = { found: false }
const MISPLACED = (): CorruptEntryError => new CorruptEntryError('an entry of another key under this name (swapped or misplaced)')
/** A whole entry read and checksum-verified, with the inode it was read from. */
type VerifiedEntry = DecodedEntry & { ino: number; mtimeMs: number }
const SET_OPTIONS = ['ttl', 'tags'] as const
const PRUNE_OPTIONS = ['maxSize', 'maxEntries', 'maxAge', 'olderThan', 'tags', 'pattern', 'dryRun', 'listKeys', 'signal', 'onProgress'] as const
const VERIFY_OPTIONS = ['repair', 'signal', 'onProgress'] as const
const ENTRIES_OPTIONS = ['prefix', 'pattern', 'tags', 'signal', 'onProgress'] as const
const USAGE_OPTIONS = ['signal', 'onProgress'] as const

/** Which entries `entries()` lists: all of them, or those matching every filter given. */
export interface EntriesOptions extends WalkOptions {
  /** Keys starting with this. */
  prefix?: string
  /** Keys matching this glob (`*`, `?`, `[abc]`, `{a,b}`), e.g. `'user:*'`. */
  pattern?: string
  /** Entries carrying any of these tags. */
  tags?: readonly string[]
}
const GET_OR_SET_OPTIONS = ['ttl', 'tags', 'grace'] as const
/** Accepts a Readable, an async iterable, a sync iterable of chunks, or one Uint8Array. */
function toAsyncSource(source: unknown): StreamSource {
  const s = source as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown } | null
  if (source instanceof Uint8Array) return (async function* () { yield source })()
  if (typeof s?.[Symbol.asyncIterator] === 'function') return source as StreamSource
  if (typeof source !== 'string' && typeof s?.[Symbol.iterator] === 'function') {
    return (async function* () { yield* source as Iterable<Uint8Array | string> })()
  }
  throw new LarderError('ERR_INVALID_VALUE', 'Invalid source: expected a Readable, an (async) iterable of Uint8Array chunks, or a Uint8Array', { field: 'source' })
}

function validateSignalAndProgress(o: { signal?: unknown; onProgress?: unknown }): void {
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid signal: expected an AbortSignal', { field: 'signal' })
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid onProgress: expected a function', { field: 'onProgress' })
  }
}

/** Keep compressed output only if it saves at least this share of the bytes. */
const KEEP_COMPRESSED_RATIO = 0.9

/**
 * A persistent cache in a directory. Create one with `Larder.open()`.
 *
 * set: validate → serialize → compress → checksum → atomic write.
 * get: (memory tier) → read → verify → expiry and tags → decompress → deserialize.
 * Every disk step runs through one circuit breaker; a failing disk turns reads into misses
 * and writes into counted drops (or `ERR_UNAVAILABLE` with `failOpen: false`).
 */
export class Larder extends EventEmitter<LarderEvents> {
  /** Opens (creating if needed) the cache directory. Rejects only for invalid options, or
   *  with `ERR_UNAVAILABLE` when the directory cannot be used and `failOpen` is false. */
  static async open(options?: LarderOptions): Promise<Larder> {
    const resolved = resolveOptions(options)
    await loadHasher()
    const cache = new Larder(resolved)
    await cache.#prepareDirectory()
    if (worthALook() && (cache.#totals.crowded() || cache.#activity.crowded())) {
      await cache.#maintainer.foldBookkeeping().catch(() => {}) // a failing disk: next time
    }
    return cache
  }

  /** The resolved options (defaults filled in). */
  readonly options: Readonly<ResolvedOptions>
  readonly #layout: Layout
  readonly #tags: TagClock
  readonly #breaker: DiskBreaker
  readonly #memory: MemoryTier | undefined
  readonly #compression: Compression
  readonly #flights = new Map<string, Promise<unknown>>()
  readonly #keyLocks = new Map<string, Promise<unknown>>()
  readonly #temps = new Set<string>()
  readonly #getLatency = new LatencyWindow()
  /** Gets tried on the memory tier, to time one in 16 of its hits. */
  #memoryGets = 0
  /** 'hit' listeners: emit() gathers its arguments into an array even with none, and a
   *  memory hit is cheap enough to notice, so hits emit only when someone listens. */
  #hitListeners = 0
  readonly #setLatency = new LatencyWindow()
  readonly #counts = { hits: 0, misses: 0, memoryHits: 0, sets: 0, deletes: 0, expired: 0, corrupt: 0, errors: 0, dropped: 0, bytesWritten: 0, bytesRead: 0 }
  readonly #totals: RunningTotals
  readonly #hitLog: HitLog | undefined
  readonly #activity: ActivityLog
  readonly #pool: MaintenancePool
  readonly #maintainer: Maintainer
  /** The automatic prune running now, if any, and how to stop it at close. */
  #autoPrune: Promise<void> | undefined
  readonly #autoAbort = new AbortController()
  #interval: NodeJS.Timeout | undefined
  readonly #budgeted: boolean
  #removeExitHook: (() => void) | undefined
  #closed = false
  #lastStamp = 0

  private constructor(options: ResolvedOptions) {
    super()
    const events = this as EventEmitter
    events.on('newListener', (event: string) => {
      if (event === 'hit') this.#hitListeners++
    })
    events.on('removeListener', (event: string) => {
      if (event === 'hit') this.#hitListeners--
    })
    this.options = Object.freeze(options)
    this.#layout = new Layout(options.dir, options.namespace)
    this.#tags = new TagClock(this.#layout)
    this.#compression = compressionIds[options.compression]
    this.#memory = options.memory === false ? undefined : new MemoryTier(options.memory)
    this.#breaker = new DiskBreaker(options.breaker, (state) => this.emit('breaker', state))
    this.#totals = new RunningTotals(this.#layout)
    this.#hitLog = options.evictionPolicy === 'lfu' ? new HitLog(this.#layout) : undefined
    this.#activity = new ActivityLog(this.#layout.activityDir)
    this.#pool = new MaintenancePool(options.maintenance.workers)
    this.#maintainer = new Maintainer({
      layout: this.#layout, options, totals: this.#totals, pool: this.#pool,
      flushHits: () => this.#hitLog?.flush(),
      compactActivity: () => this.#activity.compact(),
      progress: (p) => this.emit('progress', p),
    })
    this.#budgeted = options.maintenance.auto && (options.maxSize !== undefined || options.maxEntries !== undefined)
    if (options.maintenance.auto && options.maintenance.interval > 0) {
      this.#interval = setInterval(() => this.#startAutoPrune(), options.maintenance.interval)
      this.#interval.unref()
    }
    // Held for the cache's lifetime: removes our in-flight temp files on exit, and keeps
    // signal-exit's handlers installed, which makes each write-file-atomic call ~4× cheaper
    // (it would otherwise install and remove ~15 signal handlers per write).
    this.#removeExitHook = onExit(() => {
      this.#flushCounters()
      this.#recordActivity()
      for (const temp of this.#temps) {
        try {
          disk.unlinkSync(temp)
        } catch {
          // already gone
        }
      }
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
    // and a hit must cost little more than the lookup (it is timed one time in 16).
    if (this.#memory !== undefined && typeof key === 'string') {
      const sampled = (++this.#memoryGets & 15) === 0
      const started = sampled ? performance.now() : 0
      const memory = this.#fromMemory(key)
      if (memory !== undefined) {
        if (sampled) this.#getLatency.record(performance.now() - started)
        return memory.value
      }
    }
    const k = validateKey(key)
    const started = performance.now()
    const found = await this.#lookup(k, 0)
    this.#getLatency.record(performance.now() - started)
    return found.found ? found.value : undefined
  }

  /** Whether a fresh entry exists for `key`. Checks the entry's metadata (and, for entries
   *  up to 64 KiB, its checksum) without decompressing or deserializing the value. */
  async has(key: string): Promise<boolean> {
    this.#assertOpen()
    const k = validateKey(key)
    if (this.#fromMemory(k, false) !== undefined) return true
    const file = this.#layout.entryPath(this.#layout.hashKey(k))
    try {
      return await this.#breaker.run(async () => {
        const found = await this.#probe(file, k)
        if (found === undefined) return false
        if (found.opened !== undefined) await found.opened.handle.close()
        const entry = found.whole ?? found.opened!.head
        return (await this.#freshness(entry, file, 0, found.ino)) === 'fresh'
      })
    } catch (error) {
      this.#readFailed(error)
      return false
    }
  }

  /** Values for `keys`, in key order (`undefined` for each miss). */
  async getMany(keys: readonly string[]): Promise<unknown[]> {
    this.#assertOpen()
    const valid = validateKeys(keys)
    return Promise.all(valid.map((k) => this.get(k)))
  }

  /**
   * The value for `key`; on a miss, calls `loader` once however many callers ask at the same
   * time (singleflight), stores its result and returns it. A failing loader rejects every
   * waiting caller and caches nothing; with `grace`, a value expired less than `grace` ago
   * is returned instead. A loader that resolves to `undefined` caches nothing.
   */
  async getOrSet<T>(key: string, loader: () => T | Promise<T>, options?: GetOrSetOptions): Promise<T> {
    this.#assertOpen()
    const k = validateKey(key)
    if (typeof loader !== 'function') throw new LarderError('ERR_INVALID_VALUE', 'Invalid loader: expected a function', { field: 'loader' })
    const o = validateCallOptions<GetOrSetOptions>(options, GET_OR_SET_OPTIONS)
    const ttl = validateTtl(o.ttl)
    const tags = validateTags(o.tags)
    const grace = validateTtl(o.grace, 'grace') ?? 0
    const memory = this.#fromMemory(k)
    if (memory !== undefined) return memory.value as T
    const inFlight = this.#flights.get(k)
    if (inFlight !== undefined) return inFlight as Promise<T>
    const flight = (async (): Promise<T> => {
      const found = await this.#lookup(k, grace)
      if (found.found && !found.stale) return found.value as T
      let value: T
      try {
        value = await loader()
      } catch (error) {
        if (found.found) return found.value as T // stale-if-error
        throw error
      }
      if (value !== undefined) await this.#store(k, value, ttl, tags)
      return value
    })()
    this.#flights.set(k, flight)
    try {
      return await flight
    } finally {
      this.#flights.delete(k)
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
    const file = this.#layout.entryPath(this.#layout.hashKey(k))
    let stream: Readable | undefined
    try {
      stream = await this.#breaker.run(async () => {
        const found = await this.#probe(file, k)
        if (found === undefined) return undefined
        let whole = found.whole
        if (whole === undefined) {
          const entry = found.opened!
          const fresh = (await this.#freshness(entry.head, file, 0, entry.ino)) === 'fresh'
          // Streamed entries stream; a large value stored by set() was held in memory when
          // written, so it is read whole and verified like any other set() value.
          if (fresh && ((entry.head.flags & FLAG_FRAMED) !== 0 || entry.head.compression === Compression.None)) {
            this.#counts.bytesRead += entry.size
            this.#used(file, entry.mtimeMs)
            return createEntryStream(entry, (error) => {
              this.#reportCorrupt(file, k, error.message)
              void removeIfUnchanged(file, entry.ino).then((size) => this.#removed(size), () => {})
            })
          }
          await entry.handle.close()
          if (!fresh) return undefined
          whole = await this.#readDecoded(file, k)
          if (whole === undefined) return undefined
        }
        // The whole entry was verified before a single byte is handed out.
        if ((await this.#freshness(whole, file, 0, whole.ino)) !== 'fresh') return undefined
        this.#used(file, whole.mtimeMs)
        const bytes = await this.#payloadBytes(whole).catch((error: unknown) =>
          this.#corruptOrThrow(new CorruptEntryError(`payload does not decompress (${(error as Error).message})`), file, k, whole.ino))
        return bytes === undefined ? undefined : Readable.from([bytes], { objectMode: false })
      })
    } catch (error) {
      this.#readFailed(error)
    }
    if (stream === undefined) this.#miss(k)
    else this.#hit(k, 'disk')
    return stream
  }

  // ── writes ────────────────────────────────────────────────────────────────

  /** Stores `value` under `key`. Bad input rejects with a LarderError and writes nothing. */
  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    this.#assertOpen()
    const k = validateKey(key)
    const o = validateCallOptions<SetOptions>(options, SET_OPTIONS)
    await this.#store(k, value, validateTtl(o.ttl), validateTags(o.tags))
  }

  /** Stores several entries. Every item is validated and serialized before any is written. */
  async setMany(items: readonly SetManyItem[]): Promise<void> {
    this.#assertOpen()
    if (!Array.isArray(items)) throw new LarderError('ERR_INVALID_VALUE', 'Invalid items: expected an array of { key, value, ttl?, tags? }', { field: 'items' })
    const prepared = items.map((item: unknown, i) => {
      if (item === null || typeof item !== 'object') throw new LarderError('ERR_INVALID_VALUE', `Invalid items[${i}]: expected { key, value, ttl?, tags? }`, { field: `items[${i}]` })
      const o = validateCallOptions<SetManyItem>(item, ['key', 'value', 'ttl', 'tags'], `items[${i}]`)
      const k = validateKey(o.key, `items[${i}].key`)
      const serialized = serialize(o.value, this.options.serializer)
      return { k, value: o.value, serialized, ttl: validateTtl(o.ttl, `items[${i}].ttl`), tags: validateTags(o.tags, `items[${i}].tags`) }
    })
    for (const p of prepared) await this.#store(p.k, p.value, p.ttl, p.tags, p.serialized)
  }

  /**
   * Stores a stream (a Readable, any (async) iterable of Uint8Array/string chunks, or one
   * Uint8Array) with
   * bounded memory. The entry appears atomically once the whole stream is written. An error
   * from the source rejects with that error and stores nothing.
   */
  async setStream(key: string, source: StreamSource | Iterable<Uint8Array | string> | Uint8Array, options?: SetOptions): Promise<void> {
    this.#assertOpen()
    const k = validateKey(key)
    const o = validateCallOptions<SetOptions>(options, SET_OPTIONS)
    const ttl = validateTtl(o.ttl)
    const tags = validateTags(o.tags)
    const input = toAsyncSource(source)
    const started = performance.now()
    const createdAt = this.#createdAt(tags)
    const expiresAt = this.#expiry(ttl, createdAt)
    const file = this.#layout.entryPath(this.#layout.hashKey(k))
    this.#memory?.delete(k)
    try {
      let previous: number | undefined
      const result = await this.#breaker.run(() =>
        writeEntryStream(file, { key: k, codec: Codec.Stream, createdAt, expiresAt, tags }, input, {
          compression: this.#compression,
          level: this.options.compressionLevel,
          threshold: this.options.compressThreshold,
          adaptive: this.options.streamCompression === 'adaptive',
          durable: this.options.durable,
          trackTemp: (temp, live) => (live ? this.#temps.add(temp) : this.#temps.delete(temp)),
          beforeRename: () => {
            const before = disk.lstatSync(file, { throwIfNoEntry: false })
            previous = before?.isFile() ? before.size : undefined
          },
        }),
      )
      this.#totals.written(result.fileBytes, previous)
      this.#counts.sets++
      this.#counts.bytesWritten += result.fileBytes
      this.#setLatency.record(performance.now() - started)
      this.emit('set', k)
      this.#checkBudget()
    } catch (error) {
      if (error instanceof SourceError) throw error.original
      if (input instanceof Readable && !input.destroyed) input.destroy()
      this.#writeFailed(error)
    }
  }

  /** Removes `key`; true if a live entry was there (an expired one is removed too, but was not there). */
  async delete(key: string): Promise<boolean> {
    this.#assertOpen()
    return this.#remove(validateKey(key))
  }

  /** Removes each key; resolves to how many entries were there. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    this.#assertOpen()
    const valid = validateKeys(keys)
    let removed = 0
    for (const k of valid) if (await this.#remove(k)) removed++
    return removed
  }

  /** Removes every entry of this namespace, for every process sharing the directory. */
  async clear(): Promise<void> {
    this.#assertOpen()
    this.#memory?.clear()
    const target = this.#layout.namespaceDir
    const trash = path.join(path.dirname(target), `.trash-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`)
    try {
      await this.#breaker.run(async () => {
        // One rename makes every entry vanish at once; writers that race it recreate their
        // partition. The old tree is then deleted at leisure.
        try {
          await disk.rename(target, trash)
        } catch (error) {
          if (errorCode(error) === 'ENOENT') return
          throw error
        }
        await disk.rm(trash, { recursive: true, force: true })
      })
    } catch (error) {
      this.#writeFailed(error)
    }
  }

  /**
   * Makes every entry carrying any of `tags` stale, in every process sharing the directory.
   * Costs one small file write per tag, however many entries carry it.
   */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    this.#assertOpen()
    const valid = validateTags(tags)
    if (valid.length === 0) return
    const at = this.#stamp()
    try {
      await this.#breaker.run(() => this.#tags.invalidate(valid, at))
    } catch (error) {
      this.#writeFailed(error)
    }
  }

  /** Adds `delta` to the number under `key` (a missing key counts as 0) and returns the
   *  result. Calls in one process are serialized per key, so no update is lost. The entry
   *  keeps its expiry and tags. */
  async increment(key: string, delta = 1): Promise<number> {
    this.#assertOpen()
    const k = validateKey(key)
    if (typeof delta !== 'number' || !Number.isFinite(delta)) {
      throw new LarderError('ERR_INVALID_VALUE', `Invalid delta: expected a finite number, got ${String(delta)}`, { field: 'delta' })
    }
    return this.#withKeyLock(k, async () => {
      const memory = this.#fromMemory(k)
      const found: Lookup = memory !== undefined ? { found: true, stale: false, ...memory } : await this.#lookup(k, 0)
      let current = 0
      let expiresAt: number | undefined
      let tags: readonly string[] = []
      if (found.found) {
        if (typeof found.value !== 'number') {
          throw new LarderError('ERR_INVALID_VALUE', `Cannot increment key ${JSON.stringify(k)}: its value is a ${typeof found.value}, not a number`, { field: 'key' })
        }
        current = found.value
        expiresAt = found.expiresAt
        tags = found.tags
      }
      const next = current + delta
      await this.#store(k, next, undefined, tags, undefined, expiresAt)
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
    this.#assertOpen()
    const o = validateCallOptions<PruneOptions>(options, PRUNE_OPTIONS)
    const valid: PruneOptions & PruneFilters & { maxSize?: number } = { ...o, maxSize: undefined, maxAge: undefined, olderThan: undefined, tags: undefined }
    if (o.maxSize !== undefined) valid.maxSize = parseSize(o.maxSize, 'maxSize', 'ERR_INVALID_VALUE')
    if (o.maxEntries !== undefined && (typeof o.maxEntries !== 'number' || !Number.isSafeInteger(o.maxEntries) || o.maxEntries < 0)) {
      throw new LarderError('ERR_INVALID_VALUE', `Invalid maxEntries: expected a non-negative integer, got ${String(o.maxEntries)}`, { field: 'maxEntries' })
    }
    if (o.maxAge !== undefined) valid.maxAge = parseDuration(o.maxAge, 'maxAge', 'ERR_INVALID_TTL')
    if (o.olderThan !== undefined) {
      const at = o.olderThan instanceof Date ? o.olderThan.getTime() : o.olderThan
      if (typeof at !== 'number' || !Number.isFinite(at)) {
        throw new LarderError('ERR_INVALID_VALUE', `Invalid olderThan: expected a Date or ms since the epoch, got ${String(o.olderThan)}`, { field: 'olderThan' })
      }
      valid.olderThan = at
    }
    if (o.tags !== undefined) valid.tags = [...validateTags(o.tags)]
    if (o.pattern !== undefined && (typeof o.pattern !== 'string' || o.pattern === '')) {
      throw new LarderError('ERR_INVALID_VALUE', 'Invalid pattern: expected a non-empty glob string such as "user:*"', { field: 'pattern' })
    }
    validateSignalAndProgress(o)
    return this.#diskOperation(() => this.#maintainer.prune(valid))
  }

  /**
   * Re-checks every entry's checksum in worker threads (every byte, no decompression). With
   * `repair` (default true) corrupt entries and stale temp files are removed and the running
   * totals corrected. Cancel with `signal` (`ERR_ABORTED`).
   */
  async verify(options?: VerifyOptions): Promise<VerifyReport> {
    this.#assertOpen()
    const o = validateCallOptions<VerifyOptions>(options, VERIFY_OPTIONS)
    if (o.repair !== undefined && typeof o.repair !== 'boolean') {
      throw new LarderError('ERR_INVALID_VALUE', `Invalid repair: expected a boolean, got ${String(o.repair)}`, { field: 'repair' })
    }
    validateSignalAndProgress(o)
    return this.#diskOperation(() => this.#maintainer.verify(o))
  }

  // ── lifecycle and introspection ───────────────────────────────────────────

  /**
   * What every process did with this cache, recorded as each instance closed (or its process
   * exited): hits, misses, sets and the rest summed, and the breaker state the most recent one
   * left with. This instance counts once it closes; `stats()` has its live counters.
   */
  async activity(): Promise<ActivityReport> {
    this.#assertOpen()
    return this.#diskOperation(async () => this.#activity.read())
  }

  /**
   * What is known of `key`'s entry without decoding its value: sizes, times, tags, codec.
   * `undefined` on a miss (expired and invalidated entries included). Small entries are
   * verified whole; a large one's head is read. Counts no hit or miss and refreshes nothing.
   */
  async info(key: string): Promise<EntryInfo | undefined> {
    this.#assertOpen()
    const k = validateKey(key)
    const file = this.#layout.entryPath(this.#layout.hashKey(k))
    try {
      return await this.#breaker.run(async () => {
        const found = await this.#probe(file, k)
        if (found === undefined) return undefined
        if (found.whole !== undefined) {
          const e = found.whole
          if ((await this.#freshness(e, file, 0, e.ino)) !== 'fresh') return undefined
          return toEntryInfo(e, e.payloadOffset + e.storedLength + TRAILER_BYTES, e.logicalLength, e.mtimeMs)
        }
        const { head, handle, size, mtimeMs, ino } = found.opened
        let logicalLength: number
        try {
          const trailer = Buffer.allocUnsafe(TRAILER_BYTES)
          await handle.read(trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES)
          logicalLength = decodeTrailer(trailer, size, head.payloadOffset).logicalLength
        } catch (error) {
          return await this.#corruptOrThrow(error, file, k, ino)
        } finally {
          await handle.close()
        }
        if ((await this.#freshness(head, file, 0, ino)) !== 'fresh') return undefined
        return toEntryInfo(head, size, logicalLength, mtimeMs)
      })
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
    const o = validateCallOptions<EntriesOptions>(options, ENTRIES_OPTIONS)
    const filters: ListFilters = {}
    for (const field of ['prefix', 'pattern'] as const) {
      const value = o[field]
      if (value === undefined) continue
      if (typeof value !== 'string' || value === '') {
        throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: expected a non-empty string`, { field })
      }
      filters[field] = value
    }
    if (o.tags !== undefined) filters.tags = [...validateTags(o.tags)]
    validateSignalAndProgress(o)
    return this.#diskOperation(() => this.#maintainer.list(filters, o))
  }

  /**
   * Entries, stored and logical bytes, expired entries still on disk, damaged files, oldest
   * and newest entry, and sizes by age: a full read-only walk of the entry heads in worker
   * threads (`stats()` gives entries and bytes without one).
   */
  async usage(options?: WalkOptions): Promise<UsageReport> {
    this.#assertOpen()
    const o = validateCallOptions<WalkOptions>(options, USAGE_OPTIONS)
    validateSignalAndProgress(o)
    return this.#diskOperation(() => this.#maintainer.usage(o))
  }

  /** Counters since this instance opened, latency percentiles, breaker state, and the entries
   *  and bytes on disk (from the running totals: a few small files, never a scan). */
  async stats(): Promise<Stats> {
    this.#assertOpen()
    const c = this.#counts
    const reads = c.hits + c.misses
    let totals: { entries: number; bytes: number; scannedAt?: number | undefined }
    try {
      totals = this.#totals.read()
    } catch {
      totals = this.#totals.estimate() // the disk is failing: the last known figures
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

  /** Stops maintenance (after an automatic prune in progress finishes; the worker pool ends), flushes the
   *  running totals, and releases the breaker's timers and the exit hook. Any later call rejects with `ERR_CLOSED`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#interval)
    // A short-lived process (a build step) that pushed the cache over budget should leave it
    // within budget: let a running automatic prune finish rather than cancel it.
    await this.#autoPrune
    this.#flushCounters()
    this.#recordActivity()
    this.#totals.stop()
    this.#hitLog?.stop()
    await this.#pool.destroy()
    this.#breaker.shutdown()
    this.#memory?.clear()
    this.#removeExitHook?.()
    this.#removeExitHook = undefined
  }

  // ── internals ─────────────────────────────────────────────────────────────

  /** Maintenance errors that are not LarderErrors are disk trouble: ERR_UNAVAILABLE. */
  async #diskOperation<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (error) {
      if (isLarderError(error)) throw error
      this.#counts.errors++
      throw new LarderError('ERR_UNAVAILABLE', `Cache maintenance failed: ${(error as Error).message}`, { cause: error })
    }
  }

  /** An over-budget write or the interval starts a prune in the background (one at a time;
   *  it stands aside if another process is pruning). */
  #startAutoPrune(): void {
    if (this.#autoPrune !== undefined || this.#closed) return
    this.#autoPrune = (async () => {
      // Another process pruning may have counted before our last writes: once it is done,
      // prune again if the totals are still over budget (a few tries, a quarter second apart).
      for (let attempt = 0; attempt < 40; attempt++) {
        if (attempt > 0) {
          await new Promise((resolve) => setTimeout(resolve, 250))
          if (!this.#overBudget(this.#totals.read())) return
        }
        const report = await this.#maintainer.prune({ signal: this.#autoAbort.signal }, true)
        if (!report.skipped) {
          this.emit('prune', report)
          return
        }
      }
    })()
      .catch((error: unknown) => {
        if (this.#autoAbort.signal.aborted) return
        if (this.listenerCount('error') > 0) this.emit('error', error as Error)
      })
      .finally(() => {
        this.#autoPrune = undefined
      })
  }

  /** After a write: start a prune if the totals now exceed a budget. */
  #checkBudget(): void {
    if (!this.#budgeted || this.#autoPrune !== undefined) return
    if (this.#overBudget(this.#totals.estimate())) this.#startAutoPrune()
  }

  #overBudget({ entries, bytes }: { entries: number; bytes: number }): boolean {
    const { maxSize, maxEntries } = this.options
    return (maxSize !== undefined && bytes > maxSize) || (maxEntries !== undefined && entries > maxEntries)
  }

  /** Writes the running totals and hit counts this process holds. Sync: runs at exit too. */
  #flushCounters(): void {
    try {
      this.#totals.flush()
      this.#hitLog?.flush()
    } catch {
      // the disk is failing; the next full scan corrects the totals
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

  /** Bytes of an entry file just removed by this process, for the running totals. */
  #removed(size: number | undefined): void {
    if (size !== undefined) this.#totals.removed(size)
  }

  /** A disk hit: refresh the file's mtime (its last use) if older than `touchAfter`, and count
   *  the hit for LFU. */
  #used(file: string, mtimeMs: number): void {
    const now = Date.now()
    if (now - mtimeMs >= this.options.maintenance.touchAfter) {
      try {
        const at = now / 1000
        disk.utimesSync(file, at, at)
      } catch {
        // gone or read-only: LRU order is a hint, not worth a failure
      }
    }
    this.#hitLog?.hit(path.basename(file))
  }

  #assertOpen(): void {
    if (this.#closed) throw new LarderError('ERR_CLOSED', 'The cache is closed', { field: 'cache' })
  }

  /** A creation/invalidation time: wall-clock ms, strictly increasing within the process, so a
   *  value set right after an invalidation is always newer than it. */
  #stamp(after = 0): number {
    const now = Date.now()
    const floor = after > this.#lastStamp ? after : this.#lastStamp
    this.#lastStamp = now > floor ? now : floor + 0.001
    return this.#lastStamp
  }

  /** A creation time for an entry carrying `tags`: after their latest invalidation, even one
   *  made by another process within the same millisecond. */
  #createdAt(tags: readonly string[]): number {
    if (tags.length === 0) return this.#stamp()
    let latest = 0
    try {
      latest = this.#tags.latest(tags)
    } catch {
      // The disk is failing; the write that follows will meet the same fault and be counted.
    }
    return this.#stamp(latest)
  }

  #expiry(ttl: number | undefined, createdAt: number): number {
    const t = ttl ?? this.options.defaultTtl
    return t === 0 ? 0 : Math.floor(createdAt) + t
  }

  async #prepareDirectory(): Promise<void> {
    const { root, namespaceDir } = this.#layout
    try {
      await this.#breaker.run(async () => {
        await disk.mkdir(namespaceDir, { recursive: true })
        try {
          disk.writeFileSync(path.join(root, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' })
        } catch (error) {
          if (errorCode(error) !== 'EEXIST') throw error
        }
      })
      const { maxSize, maxEntries, evictionPolicy } = this.options
      if (maxSize !== undefined || maxEntries !== undefined) recordBudget(this.#layout, { maxSize, maxEntries, evictionPolicy })
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

  /** A fresh memory-tier entry, counted as a hit; undefined when absent or not fresh. */
  #fromMemory(key: string, count = true): MemoryEntry | undefined {
    if (this.#memory === undefined) return undefined
    const entry = this.#memory.get(key)
    if (entry === undefined) return undefined
    if ((entry.expiresAt !== 0 && entry.expiresAt <= Date.now()) || this.#tagsStaleSafe(entry.tags, entry.createdAt)) {
      this.#memory.delete(key)
      return undefined
    }
    if (count) {
      this.#counts.memoryHits++
      this.#counts.hits++
      if (this.#hitLog !== undefined) this.#hitLog.hit(this.#layout.hashKey(key))
      if (this.#hitListeners > 0) this.emit('hit', key, 'memory')
    }
    return entry
  }

  /** Tag check for the memory tier, where a disk error must not throw: treat as stale. */
  #tagsStaleSafe(tags: readonly string[], createdAt: number): boolean {
    if (tags.length === 0) return false
    try {
      return this.#tags.isStale(tags, createdAt)
    } catch {
      return true
    }
  }

  /**
   * Reads `key` from disk. `grace` > 0 also returns a value expired less than `grace` ago,
   * marked stale (and kept on disk). Counts the hit or miss; never throws for disk trouble
   * while failOpen.
   */
  async #lookup(key: string, grace: number): Promise<Lookup> {
    const file = this.#layout.entryPath(this.#layout.hashKey(key))
    let result: Lookup = MISS
    try {
      result = await this.#breaker.run(async (): Promise<Lookup> => {
        const decoded = await this.#readDecoded(file, key)
        if (decoded === undefined) return MISS
        const freshness = await this.#freshness(decoded, file, grace, decoded.ino)
        if (freshness === 'gone') return MISS
        const value = await this.#decodeValue(decoded, file, key)
        if (value === MISS) return MISS
        if (freshness === 'fresh') this.#used(file, decoded.mtimeMs)
        return { found: true, stale: freshness === 'stale', value, createdAt: decoded.createdAt, expiresAt: decoded.expiresAt, tags: decoded.tags, size: decoded.logicalLength }
      })
    } catch (error) {
      this.#readFailed(error)
    }
    if (!result.found || result.stale) {
      this.#miss(key)
      return result
    }
    this.#hit(key, 'disk')
    this.#memory?.set(key, { value: result.value, createdAt: result.createdAt, expiresAt: result.expiresAt, tags: result.tags, size: result.size })
    return result
  }

  /**
   * Finds `key`'s entry. Small files are read whole and verified (the synchronous path); large
   * ones are opened and only their head parsed, the caller owning the open handle.
   * undefined for a miss, a hash collision, or a corrupt file (counted and removed).
   */
  async #probe(file: string, key: string): Promise<{ whole: VerifiedEntry; opened?: undefined; ino: number } | { whole?: undefined; opened: OpenedEntry; ino: number } | undefined> {
    const size = disk.lstatSync(file, { throwIfNoEntry: false })?.size
    if (size === undefined) return undefined
    if (size <= SYNC_IO_LIMIT) {
      const whole = await this.#readDecoded(file, key)
      return whole === undefined ? undefined : { whole, ino: whole.ino }
    }
    const opened = await openEntry(file).catch((error: unknown) => this.#corruptOrThrow(error, file, key, undefined))
    if (opened === undefined) return undefined
    if (opened.head.key !== key) {
      await opened.handle.close()
      if (this.#misplaced(opened.head.key, file)) return await this.#corruptOrThrow(MISPLACED(), file, key, opened.ino)
      return undefined
    }
    return { opened, ino: opened.ino }
  }

  /** Whether an entry holding `storedKey` does not belong under `file`'s name. */
  #misplaced(storedKey: string, file: string): boolean {
    return this.#layout.hashKey(storedKey) !== path.basename(file)
  }

  /** Reads and verifies a whole entry file; undefined for a miss, a collision or a corrupt
   *  file (which is counted and removed). Disk errors propagate to the breaker. */
  async #readDecoded(file: string, key: string): Promise<VerifiedEntry | undefined> {
    let read
    try {
      read = await readEntryFile(file)
    } catch (error) {
      return await this.#corruptOrThrow(error, file, key, undefined)
    }
    if (read === undefined) return undefined
    this.#counts.bytesRead += read.bytes.length
    let decoded: DecodedEntry
    try {
      decoded = decodeEntry(read.bytes)
    } catch (error) {
      return await this.#corruptOrThrow(error, file, key, read.ino)
    }
    if (decoded.key !== key) {
      // Another key with the same 64-bit hash: a miss, and its entry is left alone. A key that
      // does not hash to this name at all is an entry swapped or copied here: corrupt.
      if (this.#misplaced(decoded.key, file)) return await this.#corruptOrThrow(MISPLACED(), file, key, read.ino)
      return undefined
    }
    return Object.assign(decoded, { ino: read.ino, mtimeMs: read.mtimeMs })
  }

  /**
   * 'fresh', 'stale' (expired within grace: served only by getOrSet's stale-if-error), or
   * 'gone' (expired or tag-invalidated: counted and removed if still the same file).
   */
  async #freshness(entry: { createdAt: number; expiresAt: number; tags: readonly string[] }, file: string, grace: number, ino: number): Promise<'fresh' | 'stale' | 'gone'> {
    const now = Date.now()
    const expired = entry.expiresAt !== 0 && entry.expiresAt <= now
    if (!expired && !this.#tags.isStale(entry.tags, entry.createdAt)) return 'fresh'
    if (expired && grace > 0 && now - entry.expiresAt < grace && !this.#tags.isStale(entry.tags, entry.createdAt)) return 'stale'
    this.#counts.expired++
    // Removed lazily, by the reader that found it, unless a newer entry replaced it meanwhile.
    this.#removed(await removeIfUnchanged(file, ino).catch(() => undefined))
    return 'gone'
  }

  /** Decompresses and deserializes a verified entry. A payload that does not decode is as
   *  corrupt as one that fails its checksum. */
  async #decodeValue(entry: VerifiedEntry, file: string, key: string): Promise<unknown> {
    let bytes: Buffer
    try {
      bytes = await this.#payloadBytes(entry)
    } catch (error) {
      return (await this.#corruptOrThrow(new CorruptEntryError(`payload does not decompress (${(error as Error).message})`), file, key, entry.ino)) ?? MISS
    }
    try {
      return deserialize(entry.codec, bytes, this.options.serializer)
    } catch (error) {
      if (isLarderError(error, 'ERR_DESERIALIZE')) throw error
      return (await this.#corruptOrThrow(new CorruptEntryError(`payload does not deserialize (${(error as Error).message})`), file, key, entry.ino)) ?? MISS
    }
  }

  async #payloadBytes(entry: DecodedEntry): Promise<Buffer> {
    const { payload, compression, logicalLength } = entry
    if ((entry.flags & FLAG_FRAMED) !== 0) return decodeFramedPayload(payload, compression, logicalLength)
    if (compression === Compression.None) return payload
    return payload.length <= SYNC_CODEC_LIMIT && logicalLength <= SYNC_IO_LIMIT * 16
      ? decompressSync(compression, payload, logicalLength)
      : decompressAsync(compression, payload, logicalLength)
  }

  /**
   * Turns "this file is not a valid entry" into a counted, removed miss (returns undefined);
   * rethrows anything else (disk failures, for the breaker).
   */
  async #corruptOrThrow(error: unknown, file: string, key: string | undefined, ino: number | undefined): Promise<undefined> {
    const code = errorCode(error)
    // ELOOP: a symlink where an entry should be; EISDIR: a directory.
    if (!(error instanceof CorruptEntryError) && code !== 'ELOOP' && code !== 'EISDIR') throw error
    this.#reportCorrupt(file, key, error instanceof Error ? error.message : String(error))
    this.#removed(await removeIfUnchanged(file, ino).catch(() => undefined))
    return undefined
  }

  #reportCorrupt(file: string, key: string | undefined, reason: string): void {
    this.#counts.corrupt++
    this.emit('corrupt', { key, file, reason })
  }

  /**
   * The write path shared by set, setMany, getOrSet and increment: serialize (unless done),
   * compress when it pays, encode with checksum, write atomically, update the memory tier.
   */
  async #store(key: string, value: unknown, ttl: number | undefined, tags: readonly string[], serialized?: Serialized, keepExpiresAt?: number): Promise<void> {
    const started = performance.now()
    const { codec, bytes } = serialized ?? serialize(value, this.options.serializer)
    const createdAt = this.#createdAt(tags)
    const expiresAt = keepExpiresAt ?? this.#expiry(ttl, createdAt)
    let compression = Compression.None
    let payload = bytes
    if (this.#compression !== Compression.None && bytes.length >= this.options.compressThreshold) {
      // Probe big values first, so an already-compressed artifact costs one 64 KiB trial, not a full pass.
      if (bytes.length <= 2 * PROBE_BYTES || worthCompressing(bytes.subarray(0, PROBE_BYTES))) {
        const level = this.options.compressionLevel
        const compressed = bytes.length <= SYNC_CODEC_LIMIT ? compressSync(this.#compression, level, bytes) : await compressAsync(this.#compression, level, bytes)
        if (compressed.length < bytes.length * KEEP_COMPRESSED_RATIO) {
          compression = this.#compression
          payload = compressed
        }
      }
    }
    const file = encodeEntry({ key, codec, compression, createdAt, expiresAt, tags }, Buffer.from(key), encodeTags(tags), payload, bytes.length)
    const path_ = this.#layout.entryPath(this.#layout.hashKey(key))
    try {
      const previous = await this.#breaker.run(() => {
        const before = disk.lstatSync(path_, { throwIfNoEntry: false })
        return writeEntryFile(path_, file, this.options.durable).then(() => before)
      })
      this.#totals.written(file.length, previous?.isFile() ? previous.size : undefined)
      this.#counts.sets++
      this.#counts.bytesWritten += file.length
      this.emit('set', key)
      this.#checkBudget()
    } catch (error) {
      this.#writeFailed(error) // rethrows ERR_UNAVAILABLE when failOpen is false
    } finally {
      this.#setLatency.record(performance.now() - started)
    }
    // A dropped write still serves this process from memory: better than a miss, and the
    // process's own view stays consistent with what it just wrote.
    this.#memory?.set(key, { value, createdAt, expiresAt, tags, size: bytes.length })
  }

  async #remove(key: string): Promise<boolean> {
    this.#memory?.delete(key)
    const file = this.#layout.entryPath(this.#layout.hashKey(key))
    try {
      const removed = await this.#breaker.run(async () => {
        // Another key's entry that shares the hash is not ours to delete: probe checks the key.
        const found = await this.#probe(file, key)
        if (found === undefined) return undefined
        if (found.opened !== undefined) await found.opened.handle.close()
        const head = found.whole ?? found.opened.head
        // An expired or invalidated entry is removed too, but it was not there to delete.
        const live = !((head.expiresAt !== 0 && head.expiresAt <= Date.now()) || this.#tags.isStale(head.tags, head.createdAt))
        return { size: removeFile(file), live }
      })
      this.#removed(removed?.size)
      const deleted = removed?.size !== undefined && removed.live
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

  async #withKeyLock<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#keyLocks.get(key) ?? Promise.resolve()
    const run = previous.then(task, task)
    const settled = run.catch(() => {})
    this.#keyLocks.set(key, settled)
    try {
      return await run
    } finally {
      if (this.#keyLocks.get(key) === settled) this.#keyLocks.delete(key)
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
}
