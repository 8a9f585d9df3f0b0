import path from 'node:path'
import { Readable } from 'node:stream'
import { isLarderError } from '../errors.js'
import { Compression, compressionIds } from '../format/compression.js'
import { CorruptEntryError, decodeEntry, decodeTrailer, encodeEntry, encodeTags, FLAG_FRAMED, TRAILER_BYTES, type DecodedEntry } from '../format/entry-format.js'
import { decodePayload, encodePayload } from '../format/payload.js'
import { Codec, deserialize } from '../format/serializers.js'
import type { HitLog } from '../maintenance/hit-log.js'
import type { LastUse } from '../maintenance/last-use.js'
import { toEntryInfo, type EntryInfo } from '../maintenance/listing.js'
import type { RunningTotals } from '../maintenance/totals.js'
import type { ResolvedOptions } from '../options.js'
import type { DiskBreaker } from '../resilience/disk-breaker.js'
import type { ActivityCounters } from '../stats/activity-log.js'
import { disk, errorCode } from '../store/disk.js'
import { readEntryFile, removeFile, removeIfUnchanged, SYNC_IO_LIMIT, writeEntryFile } from '../store/entry-files.js'
import { CACHEDIR_TAG, type Layout } from '../store/layout.js'
import { createEntryStream, openEntry, type OpenedEntry } from '../store/stream-reader.js'
import { writeEntryStream, type StreamSource } from '../store/stream-writer.js'
import type { TagClock } from '../store/tag-clock.js'
import { MISS, type StoredEntry, type Tier, type TierRead } from './tier.js'

/** A damaged file found by a read: counted, reported and removed. */
export interface CorruptReport {
  key: string | undefined
  file: string
  reason: string
}

export interface FileTierParts {
  layout: Layout
  options: ResolvedOptions
  breaker: DiskBreaker
  tags: TagClock
  totals: RunningTotals
  hitLog: HitLog | undefined
  /** Records disk hits on entries' mtimes (undefined: a read-only instance touches nothing). */
  lastUse: LastUse | undefined
  /** The instance's counters: this tier adds bytes read and written, sets, expired and corrupt. */
  counts: ActivityCounters
  corrupt(report: CorruptReport): void
}

/** The metadata of a streamed entry (its value arrives as a stream). */
export interface StreamMeta {
  createdAt: number
  expiresAt: number
  tags: readonly string[]
}

const MISPLACED = (): CorruptEntryError => new CorruptEntryError('an entry of another key under this name (swapped or misplaced)')
/** A whole entry read and checksum-verified, with the inode it was read from. */
type VerifiedEntry = DecodedEntry & { ino: number; mtimeMs: number }
type Probe = { whole: VerifiedEntry; opened?: undefined; ino: number } | { whole?: undefined; opened: OpenedEntry; ino: number }
type Freshness = 'fresh' | 'stale' | 'gone'

/**
 * The tier of entry files: one file per key under `<dir>/v1/<ns>/<pp>/<hash>`, each verified
 * by its checksum before any byte of it is used. Every disk step runs through the breaker;
 * failures are thrown for the facade to judge, while a file that is not a valid entry is a
 * miss, counted and removed (only if it is still the file judged).
 *
 * get: read (sync ≤ 64 KiB) → verify checksum → expiry and tags → decompress → deserialize.
 * set: compress when it pays → encode with checksum → atomic write.
 */
export class FileTier implements Tier {
  readonly name = 'file'
  readonly #p: FileTierParts
  readonly #layout: Layout
  /** Temp files of streams being written, removed by the exit hook if the process dies. */
  readonly #temps = new Set<string>()

  constructor(parts: FileTierParts) {
    this.#p = parts
    this.#layout = parts.layout
  }

  /** Creates the namespace directory and marks the tree as a cache (`CACHEDIR.TAG`). */
  async prepare(): Promise<void> {
    const { root, namespaceDir } = this.#layout
    await this.#p.breaker.run(async () => {
      await disk.mkdir(namespaceDir, { recursive: true })
      try {
        disk.writeFileSync(path.join(root, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' })
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error
      }
    })
  }

  // ── reads ─────────────────────────────────────────────────────────────────

  /**
   * Reads `key`. `grace` > 0 also returns a value expired less than `grace` ago, marked stale
   * (and kept on disk). Throws disk failures.
   */
  async get(key: string, grace: number): Promise<TierRead> {
    const file = this.#fileOf(key)
    return this.#p.breaker.run(async (): Promise<TierRead> => {
      const decoded = await this.#readDecoded(file, key)
      if (decoded === undefined) return MISS
      const freshness = await this.#freshness(decoded, file, grace, decoded.ino)
      if (freshness === 'gone') return MISS
      const value = await this.#decodeValue(decoded, file, key)
      if (value === MISS) return MISS
      if (freshness === 'fresh') this.#used(file, decoded.mtimeMs)
      return { found: true, stale: freshness === 'stale', value, createdAt: decoded.createdAt, expiresAt: decoded.expiresAt, tags: decoded.tags, size: decoded.logicalLength }
    })
  }

  /** Whether a fresh entry exists: metadata (and, up to 64 KiB, the checksum), no decoding. */
  async has(key: string): Promise<boolean> {
    const file = this.#fileOf(key)
    return this.#p.breaker.run(async () => {
      const found = await this.#probe(file, key)
      if (found === undefined) return false
      if (found.opened !== undefined) await found.opened.handle.close()
      const entry = found.whole ?? found.opened!.head
      return (await this.#freshness(entry, file, 0, found.ino)) === 'fresh'
    })
  }

  /** The value as a stream (see `Larder.getStream`), or undefined on a miss. */
  async getStream(key: string): Promise<Readable | undefined> {
    const file = this.#fileOf(key)
    return this.#p.breaker.run(async () => {
      const found = await this.#probe(file, key)
      if (found === undefined) return undefined
      let whole = found.whole
      if (whole === undefined) {
        const entry = found.opened!
        const fresh = (await this.#freshness(entry.head, file, 0, entry.ino)) === 'fresh'
        // Streamed entries stream; a large value stored by set() was held in memory when
        // written, so it is read whole and verified like any other set() value.
        if (fresh && ((entry.head.flags & FLAG_FRAMED) !== 0 || entry.head.compression === Compression.None)) {
          this.#p.counts.bytesRead += entry.size
          this.#used(file, entry.mtimeMs)
          return createEntryStream(entry, (error) => {
            this.#reportCorrupt(file, key, error.message)
            void this.#discard(file, entry.ino).then((size) => this.#removed(size), () => {})
          })
        }
        await entry.handle.close()
        if (!fresh) return undefined
        whole = await this.#readDecoded(file, key)
        if (whole === undefined) return undefined
      }
      // The whole entry was verified before a single byte is handed out.
      if ((await this.#freshness(whole, file, 0, whole.ino)) !== 'fresh') return undefined
      this.#used(file, whole.mtimeMs)
      const bytes = await decodePayload(whole).catch((error: unknown) =>
        this.#corruptOrThrow(new CorruptEntryError(`payload does not decompress (${(error as Error).message})`), file, key, whole.ino))
      return bytes === undefined ? undefined : Readable.from([bytes], { objectMode: false })
    })
  }

  /** What is known of `key`'s entry without decoding its value (see `Larder.info`). */
  async info(key: string): Promise<EntryInfo | undefined> {
    const file = this.#fileOf(key)
    return this.#p.breaker.run(async () => {
      const found = await this.#probe(file, key)
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
        return await this.#corruptOrThrow(error, file, key, ino)
      } finally {
        await handle.close()
      }
      if ((await this.#freshness(head, file, 0, ino)) !== 'fresh') return undefined
      return toEntryInfo(head, size, logicalLength, mtimeMs)
    })
  }

  // ── writes ────────────────────────────────────────────────────────────────

  /** Writes `entry` atomically: compressed when it pays, checksummed. Throws disk failures. */
  async set(key: string, entry: StoredEntry): Promise<void> {
    const { codec, bytes } = entry.serialized
    const { compression, payload } = await encodePayload(bytes, this.#p.options)
    const { createdAt, expiresAt, tags } = entry
    const file = encodeEntry({ key, codec, compression, createdAt, expiresAt, tags }, Buffer.from(key), encodeTags(tags), payload, bytes.length)
    const target = this.#fileOf(key)
    const previous = await this.#p.breaker.run(() => {
      const before = disk.lstatSync(target, { throwIfNoEntry: false })
      return writeEntryFile(target, file, this.#p.options.durable).then(() => before)
    })
    this.#p.totals.written(file.length, previous?.isFile() ? previous.size : undefined)
    this.#p.counts.sets++
    this.#p.counts.bytesWritten += file.length
  }

  /** Streams `source` into `key`'s entry with bounded memory (see `Larder.setStream`). */
  async setStream(key: string, source: StreamSource, meta: StreamMeta): Promise<void> {
    const file = this.#fileOf(key)
    let previous: number | undefined
    const { options } = this.#p
    const result = await this.#p.breaker.run(() =>
      writeEntryStream(file, { key, codec: Codec.Stream, ...meta }, source, {
        compression: compressionIds[options.compression],
        level: options.compressionLevel,
        threshold: options.compressThreshold,
        adaptive: options.streamCompression === 'adaptive',
        durable: options.durable,
        trackTemp: (temp, live) => (live ? this.#temps.add(temp) : this.#temps.delete(temp)),
        beforeRename: () => {
          const before = disk.lstatSync(file, { throwIfNoEntry: false })
          previous = before?.isFile() ? before.size : undefined
        },
      }),
    )
    this.#p.totals.written(result.fileBytes, previous)
    this.#p.counts.sets++
    this.#p.counts.bytesWritten += result.fileBytes
  }

  /** Removes `key`'s entry; true if a live one was there. Throws disk failures. */
  async delete(key: string): Promise<boolean> {
    const file = this.#fileOf(key)
    const removed = await this.#p.breaker.run(async () => {
      // Another key's entry that shares the hash is not ours to delete: probe checks the key.
      const found = await this.#probe(file, key)
      if (found === undefined) return undefined
      if (found.opened !== undefined) await found.opened.handle.close()
      const head = found.whole ?? found.opened.head
      // An expired or invalidated entry is removed too, but it was not there to delete.
      const live = !((head.expiresAt !== 0 && head.expiresAt <= Date.now()) || this.#p.tags.isStale(head.tags, head.createdAt))
      return { size: removeFile(file), live }
    })
    this.#removed(removed?.size)
    return removed?.size !== undefined && removed.live
  }

  /** Removes every entry of the namespace, for every process sharing the directory. */
  async clear(): Promise<void> {
    const target = this.#layout.namespaceDir
    const trash = path.join(path.dirname(target), `.trash-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`)
    await this.#p.breaker.run(async () => {
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
  }

  /** Records that `tags` are invalid as of `at`, for every process. Throws disk failures. */
  async invalidateTags(tags: readonly string[], at: number): Promise<void> {
    await this.#p.breaker.run(() => this.#p.tags.invalidate(tags, at))
  }

  /** Removes the temp files of streams still being written. Sync: runs at exit. */
  removeTempsSync(): void {
    for (const temp of this.#temps) {
      try {
        disk.unlinkSync(temp)
      } catch {
        // already gone
      }
    }
  }

  // ── internals ─────────────────────────────────────────────────────────────

  #fileOf(key: string): string {
    return this.#layout.entryPath(this.#layout.hashKey(key))
  }

  /**
   * Finds `key`'s entry. Small files are read whole and verified (the synchronous path); large
   * ones are opened and only their head parsed, the caller owning the open handle.
   * undefined for a miss, a hash collision, or a corrupt file (counted and removed).
   */
  async #probe(file: string, key: string): Promise<Probe | undefined> {
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
    this.#p.counts.bytesRead += read.bytes.length
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
  async #freshness(entry: { createdAt: number; expiresAt: number; tags: readonly string[] }, file: string, grace: number, ino: number): Promise<Freshness> {
    const now = Date.now()
    const tags = this.#p.tags
    const expired = entry.expiresAt !== 0 && entry.expiresAt <= now
    if (!expired && !tags.isStale(entry.tags, entry.createdAt)) return 'fresh'
    if (expired && grace > 0 && now - entry.expiresAt < grace && !tags.isStale(entry.tags, entry.createdAt)) return 'stale'
    this.#p.counts.expired++
    // Removed lazily, by the reader that found it, unless a newer entry replaced it meanwhile.
    this.#removed(await this.#discard(file, ino).catch(() => undefined))
    return 'gone'
  }

  /** Decompresses and deserializes a verified entry. A payload that does not decode is as
   *  corrupt as one that fails its checksum. */
  async #decodeValue(entry: VerifiedEntry, file: string, key: string): Promise<unknown> {
    let bytes: Buffer
    try {
      bytes = await decodePayload(entry)
    } catch (error) {
      return (await this.#corruptOrThrow(new CorruptEntryError(`payload does not decompress (${(error as Error).message})`), file, key, entry.ino)) ?? MISS
    }
    try {
      return deserialize(entry.codec, bytes, this.#p.options.serializer)
    } catch (error) {
      if (isLarderError(error, 'ERR_DESERIALIZE')) throw error
      return (await this.#corruptOrThrow(new CorruptEntryError(`payload does not deserialize (${(error as Error).message})`), file, key, entry.ino)) ?? MISS
    }
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
    this.#removed(await this.#discard(file, ino).catch(() => undefined))
    return undefined
  }

  #reportCorrupt(file: string, key: string | undefined, reason: string): void {
    this.#p.counts.corrupt++
    this.#p.corrupt({ key, file, reason })
  }

  /** Removes a file a read judged expired or corrupt (see removeIfUnchanged); a read-only
   *  instance removes nothing and leaves it for a writer or a prune. */
  #discard(file: string, ino: number | undefined): Promise<number | undefined> {
    return this.#p.options.readOnly ? Promise.resolve(undefined) : removeIfUnchanged(file, ino)
  }

  /** Bytes of an entry file just removed by this process, for the running totals. */
  #removed(size: number | undefined): void {
    if (size !== undefined) this.#p.totals.removed(size)
  }

  /** A disk hit: record the use on the file's mtime (LRU, `maxAge`; throttled and merged, see
   *  maintenance/last-use.ts) and count the hit for LFU. */
  #used(file: string, mtimeMs: number): void {
    this.#p.lastUse?.used(file, mtimeMs)
    this.#p.hitLog?.hit(path.basename(file))
  }
}
