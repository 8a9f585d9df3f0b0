import type { Stats } from 'node:fs'
import path from 'node:path'
import { asideOf } from '../store/take-aside.js'
import { Readable } from 'node:stream'
import { isLarderError, LarderError } from '../errors.js'
import { Compression, compressionIds, SYNC_CODEC_LIMIT } from '../format/compression.js'
import { checkNamespace, keyOf, namespaceIdOf } from '../crypto/entry-keys.js'
import { activeKeyOf } from '../crypto/keys.js'
import { KeyError, reportedReason } from '../crypto/seal.js'
import { CorruptEntryError, decodeEntry, FLAG_FRAMED, type DecodedEntry, type EntryHead } from '../format/entry-format.js'
import { decodePayload, decodePayloadSync, encodeEntryBytes, encodePlainEntryBytes, impossibleLength } from '../format/payload.js'
import { Codec, deserialize } from '../format/serializers.js'
import type { HitLog } from '../maintenance/hit-log.js'
import type { LastUse } from '../maintenance/last-use.js'
import { toEntryInfo, type EntryInfo } from '../maintenance/listing.js'
import type { CompressLater } from '../maintenance/compress-later.js'
import type { RunningTotals } from '../maintenance/totals.js'
import { zstdAvailable, type ResolvedOptions } from '../options.js'
import type { DiskBreaker } from '../resilience/disk-breaker.js'
import type { ActivityCounters } from '../stats/activity-log.js'
import { createFileSync, discardTemp, openTempFd, type OpenedTemp } from '../store/atomic-write.js'
import { CreateCost } from '../store/create-cost.js'
import { disk, errorCode, ifRoom, isNoSpace } from '../store/disk.js'
import {
  LARGE,
  lstatEntry,
  readEntryFileUpTo,
  readPlainEntryFile,
  readSmallEntryFile,
  removeFile,
  removeIfUnchanged,
  UNSURE,
  writeEntryFile,
} from '../store/entry-files.js'
import { completeCacheTag, refuseForeignRoot, refuseNonDirectory } from '../store/cache-root.js'
import { CACHEDIR_TAG, PARTITION_NAME, removeTrash, trashName, type Layout } from '../store/layout.js'
import { entryState } from '../store/liveness.js'
import { checkOpenedEntry, collect, createEntryStream, openEntry, readOpenedEntry, type OpenedEntry } from '../store/stream-reader.js'
import { writeEntryStream, type StreamSource } from '../store/stream-writer.js'
import type { ChangeClock } from '../store/change-clock.js'
import type { TagClock } from '../store/tag-clock.js'
import { HeardRemovals, type HeardSnapshot } from './heard-removals.js'
import { MAX_REFUSED, RefusedChanges } from './refused-changes.js'
import { EXPIRED, MISS, type StoredEntry, type Tier, type TierEntry, type TierRead } from './tier.js'
import { oldestKey } from '../oldest-key.js'

/** A damaged file found by a read: counted, reported and removed (except reason 'key' with
 *  a missing key: see crypto/seal.ts KeyError). */
export interface CorruptReport {
  key: string | undefined
  file: string
  /** What is wrong; `'key'` when an encrypted entry cannot be opened with this cache's keys
   *  (its key is not listed, or authentication failed), told apart by `detail`. */
  reason: string
  /** For reason 'key': which of the two (never anything of a key). */
  detail?: string
}

export interface FileTierParts {
  layout: Layout
  options: ResolvedOptions
  breaker: DiskBreaker
  tags: TagClock
  totals: RunningTotals
  hitLog: HitLog | undefined
  /** Told of every write, once it is on disk, so other processes' memory tiers see it. */
  changes: ChangeClock
  /** Records disk hits on entries' mtimes (undefined: a read-only instance touches nothing). */
  lastUse: LastUse | undefined
  /** The instance's counters: this tier adds bytes read and written, sets, expired and corrupt. */
  counts: ActivityCounters
  corrupt(report: CorruptReport): void
  /** A disk failure met by a stream after getStream handed it out (outside any breaker call):
   *  counted and reported as a failed read is; answers with the error the stream fails with. */
  streamFailed(error: unknown): unknown
  /** Deletes a clear's trash directory off the main thread (a maintenance worker). */
  removeTrash(trash: string): Promise<void>
  /** Compresses large values after their set (undefined: a read-only instance). */
  compressLater: CompressLater | undefined
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
/**
 * `key`'s entry as a read finds it: small files read whole and verified (`whole`), larger ones
 * opened with their head and trailer parsed but not yet verified (`opened`, whose handle the
 * caller owns and closes on every path). Either way, what the entry says of itself and the
 * inode of the file judged, so that only that file is ever removed.
 */
type Probe = {
  head: EntryHead
  /** Bytes of the entry file. */
  size: number
  storedLength: number
  logicalLength: number
  /** The grace (ms) the trailer records (see store/liveness.ts). */
  grace: number
  ino: number
  mtimeMs: number
} & ({ whole: VerifiedEntry; opened?: undefined } | { whole?: undefined; opened: OpenedEntry })
type Freshness = 'fresh' | 'stale' | 'gone' | 'expired'
/** How #probe reads: whole up to SYNC_IO_LIMIT, synchronously (get, has, …); whole up to
 *  WHOLE_STREAM_LIMIT, the larger through one thread-pool read (getStream); or just opened. */
type ProbeRead = 'small' | 'whole' | 'open'
/**
 * getStream reads an entry file of up to this size whole, in one read, and verifies it before
 * handing out a byte: a 1 MiB artifact costs one thread-pool round trip instead of five (open,
 * head, trailer, payload, close). The memory is what streaming it held anyway: the stream
 * reader's last read takes up to two blocks of 1 MiB with the trailer.
 */
const WHOLE_STREAM_LIMIT = 2 * 1024 * 1024 + 64 * 1024

/** Values from this size (serialized) have their temp file created while they compress
 *  (FileTier.set): the size from which DEFLATE takes longer than a thread-pool round trip. */
const EARLY_TEMP_FROM = 32 * 1024

/**
 * The tier of entry files: one file per key under `<dir>/v1/<ns>/<pp>/<hash>`, each verified
 * by its checksum before any byte of it is used. Every disk step runs through the breaker;
 * failures are thrown for the facade to judge, while a file that is not a valid entry is a
 * miss, counted and removed (only if it is still the file judged).
 *
 * get: read (sync ≤ 64 KiB) → verify checksum → expiry and tags → decompress → deserialize.
 * set: compress when it pays (a big value's temp file created meanwhile) → encode with
 * checksum → atomic write.
 */
/** More than an entry file holds besides its value's bytes (head with an 8 KiB key and 64
 *  tags, frame headers and seals of a value up to maxValueSize, trailer). */
const ENTRY_OVERHEAD_BOUND = 256 * 1024

/** See FileTier's #foundScore. */
const FOUND_SCORE_MISS = 5
const FOUND_SCORE_MAX = 20
const FOUND_SCORE_OPEN_FIRST = 10

/** How often reads try a refused clear of the files again (between the breaker's closings). */
const CLEAR_RETRY_MS = 5_000

export class FileTier implements Tier {
  readonly name = 'file'
  readonly #p: FileTierParts
  readonly #layout: Layout
  /** Temp files of streams being written, removed by the exit hook if the process dies. */
  readonly #temps = new Set<string>()
  /** Clears' trash directories being deleted (#deleteTrash). */
  readonly #trashes = new Set<Promise<void>>()
  /** Clears moving partitions into a trash (clear()), which close() waits for with their trash. */
  readonly #clears = new Set<Promise<void>>()
  /** See ended(). */
  #ended = false
  /** Entry writes begun and not yet done (see setBytes). */
  #writing = 0
  /** How dear a temp file's create has been lately: whether writes in flight overlap theirs. */
  readonly #createCost = new CreateCost()
  /**
   * How often get's plain reads have been finding a file: each find adds 1 and each miss takes
   * FOUND_SCORE_MISS (to 0..FOUND_SCORE_MAX); at FOUND_SCORE_OPEN_FIRST or more the next read
   * opens first (readPlainEntryFile's `likelyThere`). An open-first read saves ~1 µs on a find
   * and costs ~5 µs on a miss (a thrown ENOENT), so the weights make it the choice only where
   * more than ~5 in 6 reads find a file.
   */
  #foundScore = 0
  /** Changes the disk refused, whose older entries must not be read (see refused()). */
  readonly #refused = new RefusedChanges()
  /** The time of a clear of the files the disk refused (clearRefused), until a clear goes
   *  through; when one was last tried again. */
  #clearRefusedAt: number | undefined
  #clearTriedAt = 0
  /** Keys whose entry older than the refused clear is gone (read as ever since). */
  readonly #clearSettled = new Set<string>()
  /** A read-only instance's: removals heard from other instances, which its reads honour
   *  instead of carrying them out (see heardRemoved). */
  readonly #heard = new HeardRemovals()
  /** See closed(). */
  #closed = false

  constructor(parts: FileTierParts) {
    this.#p = parts
    this.#layout = parts.layout
    parts.breaker.whenClosed(() => void this.#settleAll())
  }

  /**
   * Refuses a directory others control (`ERR_UNSAFE_DIR`, see OwnedTree.trustProblem) and an
   * existing directory of someone's own files (`ERR_INVALID_OPTION`, store/cache-root.ts), then
   * creates the namespace directory (owner-only unless shared, an older tree's modes set
   * right) and marks the tree as a cache (`CACHEDIR.TAG`, created only if absent, or completed
   * where a killed opener cut it short).
   */
  async prepare(): Promise<void> {
    const { root, namespaceDir, tree } = this.#layout
    await this.#p.breaker.run(() => {
      const found = refuseNonDirectory(root) // first: a path through a file is the user's mistake, not a failing disk
      const problem = tree.trustProblem(namespaceDir)
      if (problem !== undefined) throw new LarderError('ERR_UNSAFE_DIR', problem, { field: 'dir' })
      refuseForeignRoot(root, found)
      tree.dirSync(namespaceDir)
      tree.tightenSync(namespaceDir)
      const tag = path.join(root, 'CACHEDIR.TAG')
      if (!createFileSync(tree, tag, Buffer.from(CACHEDIR_TAG))) completeCacheTag(tag) // one a killed opener cut short
    })
  }

  /** A read-only instance's check at open: it creates nothing, but refuses a directory others
   *  control as prepare does (`ERR_UNSAFE_DIR`): reading is what the check protects; and a
   *  `dir` that is not a directory (ERR_INVALID_OPTION). A disk that cannot be looked at is
   *  left to the reads (misses). */
  checkTrust(): void {
    const { root, namespaceDir, tree } = this.#layout
    try {
      refuseNonDirectory(root)
    } catch (error) {
      if (isLarderError(error)) throw error
    }
    let problem: string | undefined
    try {
      problem = tree.trustProblem(namespaceDir)
    } catch {
      return
    }
    if (problem !== undefined) throw new LarderError('ERR_UNSAFE_DIR', problem, { field: 'dir' })
  }

  // ── reads ─────────────────────────────────────────────────────────────────

  /**
   * Reads `key`. `grace` > 0 also returns a value expired less than `grace` ago, marked stale
   * (and kept on disk). Throws disk failures, and `ERR_TOO_LARGE` for a value over
   * `maxValueSize` (read with getStream). A hit is a new object, the caller's to keep.
   * `countExpired` false: an expired or invalidated entry is not counted (a read that looks
   * again for what it counted already: getOrSet waiting for another instance's lock).
   */
  get(key: string, grace: number, countExpired = true): TierRead | Promise<TierRead> {
    if (this.#isRefused(key)) return this.#afterRefused(key, () => this.get(key, grace, countExpired), MISS)
    // Not an async function: the plain path's answer comes at once, not as a promise (the
    // breaker's runAtOnce); anything else as the breaker's promise (an async function
    // returning a promise adds a promise and two turns of the microtask queue to every get).
    const file = this.#fileOf(key)
    return this.#p.breaker.runAtOnce(() => this.#plainGet(file, key) ?? this.#judgedGet(file, key, grace, countExpired))
  }

  /**
   * get's common case on this thread, without a promise: no file (a miss), or a small
   * regular file (read without an fstat: readPlainEntryFile) that is a live entry of `key`
   * whose payload decodes here. Anything else (undefined) is
   * left to #judgedGet, which reads the file again and judges it: a large, expired, stale,
   * damaged or foreign file, another key's entry, a value over maxValueSize, one to inflate
   * in the thread pool. So this path only ever answers as #judgedGet would, and every
   * judgement (what is removed, counted or reported) is made in one place. Disk failures
   * are thrown, for the breaker, as there.
   */
  #plainGet(file: string, key: string): TierRead | undefined {
    // The mtime only decides whether a hit touches the file at once (LastUse.used): not
    // wanted for a file whose last use is already being recorded, nor when none is, nor of
    // an entry created since touchAfter ago (whose file was used since).
    const lastUse = this.#p.lastUse
    const now = Date.now()
    const mtimeBefore = lastUse === undefined || lastUse.remembers(file) ? undefined : lastUse.unusedBefore(now)
    const read = readPlainEntryFile(file, this.#foundScore >= FOUND_SCORE_OPEN_FIRST, mtimeBefore)
    this.#foundScore =
      read === undefined ? Math.max(0, this.#foundScore - FOUND_SCORE_MISS) : Math.min(FOUND_SCORE_MAX, this.#foundScore + 1)
    if (read === undefined) return MISS
    if (read === LARGE || read === UNSURE) return undefined
    const { options } = this.#p
    let entry: DecodedEntry
    let bytes: Buffer | undefined
    try {
      entry = decodeEntry(read.bytes)
      if (entry.key !== key) return undefined
      checkNamespace(entry, options.namespace)
      if ((entry.compression as Compression) === Compression.Zstd && !zstdAvailable()) return undefined
      if (entryState(entry, now, this.#p.tags) !== 'live') return undefined
      if (this.#heard.any && this.#heard.hides(key, entry.createdAt)) return undefined
      if (this.#p.tags.owed.covers(entry.tags, entry.createdAt)) return undefined
      if (impossibleLength(entry) !== undefined || entry.logicalLength > options.maxValueSize) return undefined
      bytes = decodePayloadSync(entry, options)
      if (bytes === undefined) return undefined
    } catch (error) {
      if (error instanceof CorruptEntryError) return undefined
      throw error
    }
    let value: unknown
    try {
      value = deserialize(entry.codec, bytes, options.serializer)
    } catch {
      return undefined
    }
    this.#p.counts.bytesRead += read.bytes.length
    this.#used(file, read.mtimeMs, now)
    const { createdAt, expiresAt, tags, grace } = entry
    return { found: true, stale: false, value, createdAt, expiresAt, tags, grace, size: bytes.length }
  }

  /** get's whole path: every kind of file judged (see #plainGet). */
  async #judgedGet(file: string, key: string, grace: number, countExpired: boolean): Promise<TierRead> {
    const found = await this.#probe(file, key)
    if (found === undefined) return MISS
    try {
      const freshness = await this.#freshness(found, file, grace, key, countExpired)
      if (freshness === 'gone') return MISS
      if (freshness === 'expired') return EXPIRED
      await this.#boundForGet(found, key)
      const entry = await this.#verifiedValue(found)
      if (freshness === 'fresh') this.#used(file, found.mtimeMs)
      return { found: true, stale: freshness === 'stale', ...entry }
    } catch (error) {
      return (await this.#corruptOrThrow(error, file, key, found.ino)) ?? MISS
    } finally {
      await found.opened?.handle.close()
    }
  }

  /** Whether a fresh entry exists (see freshSince). */
  async has(key: string): Promise<boolean> {
    return typeof (await this.freshSince(key)) === 'number'
  }

  /** When the fresh entry of `key` was created (its createdAt), or undefined when there is
   *  none ('expired': none, but an expired or invalidated one, counted in `expired`, which a
   *  tier below asked next does not count again): metadata (and, up to 64 KiB, the checksum),
   *  no decoding. */
  async freshSince(key: string): Promise<number | 'expired' | undefined> {
    if (this.#isRefused(key)) return this.#afterRefused(key, () => this.freshSince(key), undefined)
    const file = this.#fileOf(key)
    return this.#p.breaker.run(async () => {
      const found = await this.#probe(file, key)
      if (found === undefined) return undefined
      try {
        this.#checkLengths(found)
        const freshness = await this.#freshness(found, file, 0, key)
        if (freshness === 'expired') return freshness
        return freshness === 'fresh' ? found.head.createdAt : undefined
      } catch (error) {
        return await this.#corruptOrThrow(error, file, key, found.ino)
      } finally {
        await found.opened?.handle.close()
      }
    })
  }

  /** The value as a stream (see `Larder.getStream`), or undefined on a miss ('expired': an
   *  expired or invalidated entry, counted, see freshSince); with `verifyFirst`, a file
   *  streamed from is checked whole first (a damaged one: a miss). */
  async getStream(key: string, verifyFirst = false): Promise<Readable | 'expired' | undefined> {
    if (this.#isRefused(key)) return this.#afterRefused(key, () => this.getStream(key, verifyFirst), undefined)
    const file = this.#fileOf(key)
    // A stream made after the breaker timed the call out reaches no one: it is destroyed, so
    // its file is closed (a stream is read only when consumed, so nothing else would close it).
    const release = (late: Readable | 'expired' | undefined): void => {
      if (late !== 'expired') late?.destroy()
    }
    // verifyFirst reads the whole entry, of any size, before the first byte is handed out: as
    // streams are, never timed out (breaker.timeout answered a large one's slow healthy read
    // with a miss counted as a failing disk, and a few opened the breaker over every call).
    const run = (read: () => Promise<Readable | 'expired' | undefined>): Promise<Readable | 'expired' | undefined> =>
      verifyFirst ? this.#p.breaker.runChange(read) : this.#p.breaker.runOwning(read, release)
    return run(async () => {
      // A file of up to WHOLE_STREAM_LIMIT (a 1 MiB artifact) is read whole in one read and
      // verified before its first byte is handed out; a larger one is streamed from the file.
      let found = await this.#probe(file, key, 'whole')
      if (found === undefined) return undefined
      // A whole file whose value is larger than that (a compressed one, say) is streamed from
      // the file like a large one, never inflated whole.
      if (found.whole !== undefined && found.logicalLength > Math.min(WHOLE_STREAM_LIMIT, this.#p.options.maxValueSize)) {
        found = await this.#probe(file, key, 'open')
        if (found === undefined) return undefined
      }
      let handedOver = false
      try {
        this.#checkLengths(found)
        const freshness = await this.#freshness(found, file, 0, key)
        if (freshness !== 'fresh') return freshness === 'expired' ? freshness : undefined
        this.#used(file, found.mtimeMs)
        if (found.whole !== undefined) {
          // Verified whole before a single byte is handed out.
          return Readable.from([await decodePayload(found.whole, this.#p.options)], { objectMode: false })
        }
        // The head now, the rest as the stream reads it: a consumer that stops early (a HEAD
        // of `larder serve` reads an artifact's first MiB) did not have the rest read.
        this.#p.counts.bytesRead += found.head.payloadOffset
        // Read and checked once through (the same open file, which is never changed in
        // place: a rewrite is a rename), then streamed and checked again as it goes.
        if (verifyFirst) {
          await checkOpenedEntry(found.opened, this.#p.options.encryption)
          this.#p.counts.bytesRead += found.size - found.head.payloadOffset
        }
        const { ino } = found
        const stream = createEntryStream(
          found.opened,
          (error) => {
            this.#reportCorrupt(file, key, error)
            void this.#discard(file, error.ino ?? ino).then(
              (size) => this.#removed(size),
              () => {},
            )
          },
          this.#p.options.encryption,
          (error) => {
            // The breaker hears it as it hears a failing read (it counts disk errors only).
            void this.#p.breaker.run(() => Promise.reject(error as Error)).catch(() => {})
            return this.#p.streamFailed(error)
          },
          (bytes) => (this.#p.counts.bytesRead += bytes),
        )
        handedOver = true
        return stream
      } catch (error) {
        return await this.#corruptOrThrow(error, file, key, found.ino)
      } finally {
        if (!handedOver) await found.opened?.handle.close()
      }
    })
  }

  /** What is known of `key`'s entry without decoding its value (see `Larder.info`), or
   *  undefined ('expired': an expired or invalidated entry, counted, see freshSince). */
  async info(key: string): Promise<EntryInfo | 'expired' | undefined> {
    if (this.#isRefused(key)) return this.#afterRefused(key, () => this.info(key), undefined)
    const file = this.#fileOf(key)
    return this.#p.breaker.run(async () => {
      const found = await this.#probe(file, key)
      if (found === undefined) return undefined
      try {
        this.#checkLengths(found)
        const freshness = await this.#freshness(found, file, 0, key)
        if (freshness !== 'fresh') return freshness === 'expired' ? freshness : undefined
        return toEntryInfo(found.head, found.size, found.logicalLength, found.mtimeMs)
      } catch (error) {
        return await this.#corruptOrThrow(error, file, key, found.ino)
      } finally {
        await found.opened?.handle.close()
      }
    })
  }

  // ── writes ────────────────────────────────────────────────────────────────

  /** Writes `entry` atomically: compressed when it pays, checksummed. Throws disk failures. */
  async set(key: string, entry: StoredEntry): Promise<void> {
    const { bytes, early, later } = await this.encode(key, entry)
    await this.setBytes(key, bytes, early, later)
  }

  /**
   * `entry`'s file bytes (encodeEntryBytes). A value of `compressLater` bytes or more is
   * written uncompressed, and compressed by a maintenance worker once it is on disk (`later`:
   * its creation time, handed to setBytes, which queues it: maintenance/compress-later.ts).
   * Otherwise, for a value the main thread compresses (32 KiB up to the synchronous codec
   * limit), a temp file is created through the thread pool meanwhile: the create is the
   * kernel's work (an inode: tens of µs in a fresh tree, 300-400 µs on an ext4 that has just
   * deleted thousands of files), the compression 100-450 µs of the main thread's, and one
   * sequential set used to pay both in turn. Not for a smaller value (its compression is
   * cheaper than the pool's round trip), nor `durable` (every step of that goes to the pool),
   * nor while the breaker is not closed (it decides whether the disk is touched at all).
   * Issue 14's W4 set. The caller hands all three to setBytes.
   */
  async encode(
    key: string,
    entry: StoredEntry,
  ): Promise<{ bytes: Buffer; early: Promise<OpenedTemp> | undefined; later: number | undefined }> {
    if (this.#p.compressLater?.takes(entry.serialized.bytes.length) === true) {
      return { bytes: encodePlainEntryBytes(key, entry, this.#p.options), early: undefined, later: entry.createdAt }
    }
    const early = this.#tempAhead(key, entry)
    try {
      return { bytes: await encodeEntryBytes(key, entry, this.#p.options), early, later: undefined }
    } catch (error) {
      if (early !== undefined) void discardTemp(this.#layout.tree, early)
      throw error
    }
  }

  #tempAhead(key: string, entry: StoredEntry): Promise<OpenedTemp> | undefined {
    const { options } = this.#p
    const length = entry.serialized.bytes.length
    if (length < EARLY_TEMP_FROM || length > SYNC_CODEC_LIMIT || length < options.compressThreshold) return undefined
    if (options.compression === 'none' || options.durable || this.#p.breaker.state !== 'closed') return undefined
    const early = openTempFd(this.#layout.tree, this.#fileOf(key))
    early.catch(() => {}) // awaited in setBytes (a failure counts there) or discarded
    return early
  }

  /** Writes an entry file's bytes (encodeEntryBytes, or a value the Redis tier verified)
   *  atomically under `key`'s name, into `early` when a temp file was created ahead (set);
   *  `later`: the bytes are a value written uncompressed, to be compressed once on disk
   *  (encode). Throws disk failures. */
  async setBytes(key: string, file: Buffer, early?: Promise<OpenedTemp>, later?: number): Promise<void> {
    const target = this.#fileOf(key)
    // A small entry is written synchronously, which wins alone but cannot overlap: with 16
    // sets in flight they run one after another. Writes arriving in the same turn of the
    // event loop all wait one microtask, then see one another: their records after go to the
    // change log together, and where creating a file is dear (create-cost.ts) they create
    // their temp files through the thread pool, where those creates overlap (writeEntryFile).
    this.#writing++
    let previous: Stats | undefined
    let handedOver = early === undefined
    let together: boolean
    try {
      // eslint-disable-next-line @typescript-eslint/await-thenable -- the point is the one-microtask yield described above
      await undefined
      together = this.#writing > 1
      const { durable } = this.#p.options
      const overlap = together && (durable || this.#createCost.overlaps())
      previous = await this.#p.breaker.runChange(() =>
        this.#alone(target, () => {
          const before = lstatEntry(target)
          this.#p.changes.announce(key)
          handedOver = true
          return writeEntryFile(this.#layout.tree, target, file, { durable, overlap, early, cost: this.#createCost }).then(() => before)
        }),
      )
    } catch (error) {
      if (later !== undefined) this.#p.compressLater?.unreserve(file.length)
      throw error
    } finally {
      this.#writing--
      // the breaker refused the write, or the lstat failed: the temp made ahead is not used
      if (!handedOver) void discardTemp(this.#layout.tree, early!)
    }
    // among writes in flight, the records after them go to the change log together
    if (together) await this.#p.changes.bumpSoon(key)
    else this.#p.changes.bump(key)
    this.#p.totals.written(file.length, previous?.isFile() ? previous.size : undefined)
    this.#p.counts.bytesWritten += file.length
    if (later !== undefined) this.#p.compressLater?.written(target, later, file.length)
  }

  /**
   * A write or removal of `key` made at `at` that the disk refused (failOpen counted it as
   * dropped; or the caller was told): the entry it was to replace is still on disk, and its
   * older value must not be read again. It is removed now if the disk lets it (a full disk
   * still unlinks), else when the breaker closes again or at the next read of the key, which
   * is a miss until then (RefusedChanges).
   */
  refused(key: string, at: number): void {
    if (this.#p.options.readOnly) return this.heardRemoved(key, at) // removes nothing
    this.#refused.remember(key, at)
    void this.#settle(key)
  }

  /** A change of `key` made at `at` is on disk (a write, or a removal): what was refused
   *  before it is settled. */
  changed(key: string, at: number): void {
    if (this.#refused.size !== 0) this.#refused.settled(key, at)
  }

  /**
   * A clear of the namespace's files made at `at` that the disk refused (failOpen counted it
   * as dropped): its entries are still on disk, and none created before `at` may be read
   * again. Until a clear goes through (tried again when the breaker closes, and at most every
   * CLEAR_RETRY_MS as keys are read), a read of any key first removes its entry if it is older
   * than `at` (a miss while the disk refuses that too), as for a refused change of the key.
   */
  clearRefused(at: number): void {
    if (this.#p.options.readOnly) return this.heardCleared(at) // removes nothing
    this.#clearRefusedAt = Math.max(this.#clearRefusedAt ?? at, at)
    this.#clearTriedAt = Date.now()
    this.#clearSettled.clear()
  }

  /**
   * A read-only instance heard that another instance changed or removed `key` at `at`. It
   * removes nothing and writes nothing in its directory (not even the change log): its reads
   * take the entry of `key` created before `at` for a miss, left in place for a writer, and
   * read one created since as ever (HeardRemovals).
   */
  heardRemoved(key: string, at: number): void {
    this.#heard.removed(key, at)
  }

  /** The removals heard (a read-only instance's), for the walks in the workers that must
   *  judge entries as these reads do (`entries()`, `usage()`); undefined when none. */
  heardRemovals(): HeardSnapshot | undefined {
    return this.#heard.snapshot()
  }

  /** A read-only instance heard that another instance removed the keys matching `pattern` at
   *  `at` (its prune by pattern): as heardRemoved, for every key the pattern matches. */
  heardRemovedMatching(pattern: string, at: number): void {
    this.#heard.removedMatching(pattern, at)
  }

  /** A read-only instance heard a clear of the files made elsewhere at `at`: as heardRemoved,
   *  for every key (the partitions are not moved, the totals not restarted). */
  heardCleared(at: number): void {
    this.#heard.cleared(at)
  }

  /** Tries a refused clear again (see clearRefused); resolves to whether none is left. */
  async #retryClear(): Promise<boolean> {
    if (this.#clearRefusedAt === undefined) return true
    this.#clearTriedAt = Date.now()
    try {
      await this.clear()
    } catch {
      return false
    }
    return this.#clearRefusedAt === undefined
  }

  /** Removes the entry older than `key`'s refused change, or a refused clear; resolves to
   *  whether none is left to remove (false: the disk still refuses). */
  async #settle(key: string): Promise<boolean> {
    const change = this.#refused.at(key)
    const clear = this.#clearRefusedAt
    if (clear !== undefined && Date.now() - this.#clearTriedAt >= CLEAR_RETRY_MS) void this.#retryClear()
    if (change === undefined && clear === undefined) return true
    const at = Math.max(change ?? -Infinity, clear ?? -Infinity)
    try {
      await this.dropIfOlder(key, at, true)
    } catch {
      return false
    }
    if (change !== undefined) this.#refused.settled(key, change)
    if (clear !== undefined && this.#clearRefusedAt === clear) {
      this.#clearSettled.add(key)
      if (this.#clearSettled.size > MAX_REFUSED) this.#clearSettled.delete(oldestKey(this.#clearSettled)!)
    }
    return this.#refused.at(key) === undefined
  }

  /** Whether `key` has a refused change not settled yet, or a clear was refused (one map
   *  lookup, and only when any change was refused: reads of a healthy disk pay two checks). */
  #isRefused(key: string): boolean {
    return (
      (this.#clearRefusedAt !== undefined && !this.#clearSettled.has(key)) ||
      (this.#refused.size !== 0 && this.#refused.at(key) !== undefined)
    )
  }

  /** A read of a key with a refused change: the read once its older entry is gone, else `none`. */
  async #afterRefused<T>(key: string, read: () => T | Promise<T>, none: T): Promise<T> {
    return (await this.#settle(key)) ? read() : none
  }

  /** Close: the changes the disk refused, tried once more whatever the breaker says (see
   *  DiskBreaker.lastChance); what the disk still refuses stays as it is. */
  async settleAtClose(): Promise<void> {
    if (this.#p.options.readOnly) return
    if (this.#clearRefusedAt === undefined && this.#refused.size === 0 && !this.#p.tags.holdsUnwritten()) return
    this.#p.breaker.lastChance()
    await this.#settleAll()
  }

  /** The breaker closed: every refused change settled, in the order they came, until the disk
   *  refuses again. */
  async #settleAll(): Promise<void> {
    if (!(await this.#retryClear())) return
    try {
      await this.#p.breaker.runQuiet(() => Promise.resolve().then(() => this.#p.tags.writeUnwritten()))
    } catch {
      return // still refused: the stamps stay held
    }
    for (const key of this.#refused.keys()) if (!(await this.#settle(key))) return
  }

  /** Removes `key`'s entry if it was created before `at` (another instance changed the
   *  key then): a newer one stays. Throws disk failures. `quiet`: larder's own removal of a
   *  refused change's older entry, unheard by a closed breaker (DiskBreaker.runQuiet). */
  async dropIfOlder(key: string, at: number, quiet = false): Promise<void> {
    const file = this.#fileOf(key)
    const drop = async (): Promise<number | undefined> => {
      const found = await this.#probe(file, key, 'small', true)
      if (found === undefined) return undefined
      await found.opened?.handle.close()
      if ((found.whole ?? found.opened.head).createdAt >= at) return undefined
      this.#p.changes.announce(key)
      return this.#discard(file, found.ino)
    }
    const removed = await (quiet ? this.#p.breaker.runQuiet(drop) : this.#p.breaker.runChange(drop))
    if (removed !== undefined) {
      this.#p.changes.bump(key)
      this.#removed(removed)
    }
  }

  /** Streams `source` into `key`'s entry with bounded memory (see `Larder.setStream`).
   *  Aborting `signal` stops pulling the source, removes the temp file and rejects with the
   *  signal's reason. */
  async setStream(key: string, source: StreamSource, meta: StreamMeta, signal?: AbortSignal): Promise<void> {
    const file = this.#fileOf(key)
    let previous: number | undefined
    const { options } = this.#p
    // As long as its source: the breaker's half-open trial ends once its head is written.
    const result = await this.#p.breaker.runStream((begun) =>
      writeEntryStream(
        this.#layout.tree,
        file,
        { key, codec: Codec.Stream, ...meta, namespaceId: namespaceIdOf(options.namespace) },
        source,
        {
          signal,
          sealing: options.encryption && { key: activeKeyOf(options.encryption), keyId: options.encryption.activeId },
          compression: compressionIds[options.compression],
          level: options.compressionLevel,
          threshold: options.compressThreshold,
          adaptive: options.streamCompression === 'adaptive',
          durable: options.durable,
          trackTemp: (temp, live) => (live ? this.#temps.add(temp) : this.#temps.delete(temp)),
          begun,
          beforeRename: () => {
            const before = lstatEntry(file)
            previous = before?.isFile() ? before.size : undefined
            this.#p.changes.announce(key)
          },
        },
      ),
    )
    this.#p.changes.bump(key)
    this.#p.totals.written(result.fileBytes, previous)
    this.#p.counts.bytesWritten += result.fileBytes
  }

  /** Removes `key`'s entry; true if a live one was there. Throws disk failures. */
  async delete(key: string): Promise<boolean> {
    const file = this.#fileOf(key)
    const removed = await this.#p.breaker.runChange(() =>
      this.#alone(file, async () => {
        // Another key's entry that shares the hash is not ours to delete: probe checks the key.
        let found = await this.#probe(file, key, 'small', true)
        if (found === undefined) {
          // A removal elsewhere may hold the entry aside for a moment, to put it back
          // (store/take-aside.ts): it goes from there, and the name is looked at again for one
          // put back meanwhile, which must not outlive this delete.
          const aside = removeAside(asideOf(file))
          found = await this.#probe(file, key, 'small', true)
          if (found === undefined) return aside === undefined ? undefined : { size: aside, live: false }
          this.#removed(aside)
        }
        if (found.opened !== undefined) await found.opened.handle.close()
        const head = found.whole ?? found.opened.head
        // An expired or invalidated entry is removed too, but it was not there to delete.
        const live = entryState(head, Date.now(), this.#p.tags) === 'live'
        this.#p.changes.announce(key)
        const size = removeFile(file)
        if (size !== undefined) {
          // A removal or a rekey elsewhere may hold an older inode of the key aside, to put it
          // (or its rewrite) back once its own checks pass: it goes from there too, so the put
          // back finds it gone and withdraws what it linked (take-aside.ts putBack, rekey's
          // swapIfSame); the name is looked at again for one put back before that.
          const aside = removeAside(asideOf(file))
          if (aside !== undefined) {
            this.#removed(aside)
            const back = await this.#probe(file, key, 'small', true)
            if (back !== undefined) {
              await back.opened?.handle.close()
              this.#removed(removeFile(file))
            }
          }
          return { size, live }
        }
        // Gone between the look and the unlink: taken aside by a removal or a rekey, which puts
        // it (or its rewrite) back at the name: removed from the aside name, and the name looked
        // at again for what was put back meanwhile.
        const aside = removeAside(asideOf(file))
        const back = await this.#probe(file, key, 'small', true)
        if (back !== undefined) {
          await back.opened?.handle.close()
          this.#removed(aside)
          return { size: removeFile(file), live }
        }
        return { size: aside, live }
      }),
    )
    this.#p.changes.bump(key)
    this.#removed(removed?.size)
    return removed?.size !== undefined && removed.live
  }

  /**
   * Removes every entry of the namespace, for every process sharing the directory. Each
   * partition is moved (one rename: its entries vanish at once) into a new trash directory
   * beside the namespaces, which is then deleted; writers racing it recreate their partition.
   * `tags/` and `meta/` stay: an invalidation outlives a clear (an old entry restored later is
   * still stale), and so do the budget, activity records and hit logs. The running totals
   * start a new epoch at zero, so no process's earlier counts add up any more. Nothing is
   * followed: a link where `v1/`, the namespace or a partition belongs is removed, not entered.
   */
  async clear(): Promise<void> {
    if (this.#ended) return // heard on the bus as the cache closed: see ended()
    const clearing = this.#clearFiles()
    this.#clears.add(clearing)
    try {
      await clearing
    } finally {
      this.#clears.delete(clearing)
    }
  }

  async #clearFiles(): Promise<void> {
    const { tree, namespaceDir } = this.#layout
    const startedAt = this.#clearRefusedAt ?? -Infinity // a refused clear this one stands for
    await this.#p.breaker.runChange(async () => {
      tree.dirSync(namespaceDir)
      const partitions = disk.readdirSync(namespaceDir).filter((name) => PARTITION_NAME.test(name))
      // The running totals start again from zero before the partitions go, not after: other
      // processes keep writing meanwhile (a partition moved is made again by their next write),
      // and a new epoch after the moves (and the trash's removal, seconds for a large cache)
      // dropped the deltas they flushed for entries that stay, so their totals read low and
      // budgets went unenforced. Counted from the start, a write into a partition about to go
      // counts one entry too many until the next scan, which counts what is there.
      // On a full disk the totals' few bytes may not fit: they are written again once the
      // entries are gone, for a clear is how an operator frees a full cache disk.
      const totalsWritten =
        ifRoom(() => {
          this.#p.totals.cleared()
          return true
        }) ?? false
      if (partitions.length > 0) {
        this.#p.changes.announce()
        let trash = this.#newTrash()
        for (const name of partitions) {
          // Checked again before each move (one lstat while it is the one checked): the moves
          // go through the thread pool, one after another, and through a link put in place of
          // `v1/` or the namespace meanwhile they would move, and the trash's removal delete,
          // the directories it leads to outside the cache.
          tree.dirSync(namespaceDir)
          const from = path.join(namespaceDir, name)
          const found = disk.lstatSync(from, { throwIfNoEntry: false })
          if (found === undefined) continue
          if (!found.isDirectory()) {
            tree.removeForeignSync(from, found, 'where a partition belongs')
            continue
          }
          let gone = false // moved into the trash, or by another clear
          for (let attempt = 0; trash !== undefined && !gone; attempt++) {
            try {
              await disk.rename(from, path.join(trash, name))
              gone = true
            } catch (error) {
              if (isNoSpace(error)) break // no room for the trash to grow: as below
              if (errorCode(error) !== 'ENOENT') throw error
              if (disk.lstatSync(from, { throwIfNoEntry: false }) === undefined) {
                gone = true // another clear took it
              } else {
                // The trash is gone, not the partition: swept by a prune elsewhere whose
                // tempMaxAge this clear outlasted (a trash's age is its name's), and the
                // partition stayed, its entries outliving the clear. It goes into a new trash,
                // once; then, as on a full disk, where it is.
                trash = attempt === 0 ? this.#newTrash() : undefined
              }
            }
          }
          if (gone) continue
          // A full disk, which a clear is how an operator frees: the partition (a real
          // directory, looked at above) is removed where it is, one entry at a time, without
          // following anything inside it.
          await disk.rm(from, { recursive: true, force: true })
        }
        if (trash !== undefined) this.#deleteTrash(trash)
      }
      if (!totalsWritten) {
        // A full disk: the partitions moved aside free nothing until their trash is deleted,
        // and on tmpfs, whose directories take no block, the trash is made on a full disk too.
        await this.trashDeleted()
        this.#p.totals.cleared()
      }
      // Every entry is gone: the totals' zero no longer waits for this clear (a clear killed or
      // failed before here leaves its base marked, and the next instance to see it scans).
      ifRoom(() => this.#p.totals.clearEnded())
    })
    this.#refused.forgetAll() // the entries they left are gone with every other
    if (this.#clearRefusedAt !== undefined && this.#clearRefusedAt <= startedAt) {
      this.#clearRefusedAt = undefined
      this.#clearSettled.clear()
    }
    this.#p.changes.bump()
  }

  /** A new trash directory for a clear's partitions; undefined on a full disk (no block for a
   *  new directory: the partitions are then removed where they are). */
  #newTrash(): string | undefined {
    const { tree, versionDir } = this.#layout
    const trash = path.join(versionDir, trashName())
    try {
      disk.mkdirSync(trash, tree.dirMode) // a new name: never an existing directory, nor through a link
      return trash
    } catch (error) {
      if (!isNoSpace(error)) throw error
      return undefined
    }
  }

  /** Resolves once the trash of every clear so far is deleted (or could not be: left for
   *  prune's sweep of old trash). */
  async trashDeleted(): Promise<void> {
    while (this.#trashes.size > 0) await Promise.all(this.#trashes)
  }

  /**
   * The cache is closing (its last wait for the disk): resolves once every clear in progress
   * (one heard on the bus runs outside the call order close() waits for) has moved its
   * partitions and its trash is deleted. A clear begun after this changes nothing: heard in
   * the moments before the bus unsubscribes, it would go on deleting a trash after close()
   * resolved (a worker pool started again for it), under a caller that removes the directory
   * then (ENOTEMPTY). It is as good as a message that came after the unsubscribe.
   */
  async ended(): Promise<void> {
    this.#ended = true
    while (this.#clears.size > 0 || this.#trashes.size > 0) {
      await Promise.all([...this.#clears, ...this.#trashes].map((done) => done.catch(() => {})))
    }
  }

  /** Deletes `trash` in a maintenance worker, outside the clear's change: the entries are gone
   *  for every reader once the partitions are moved, so no call waits on the deletion, and
   *  `clear()` resolves once it is done (a clear frees the disk). A worker that cannot run it
   *  (closed) leaves it to be deleted here, in this thread, as before. */
  #deleteTrash(trash: string): void {
    const deleting = this.#p
      .removeTrash(trash)
      .catch(() => removeTrash(trash))
      .catch(() => {}) // left for prune's sweep (tempMaxAge)
      .finally(() => this.#trashes.delete(deleting))
    this.#trashes.add(deleting)
  }

  /** `tags` invalidated at `at`, which the disk refused to record: this instance's clock holds
   *  them (its reads count them) until the breaker closes again and they are written. */
  holdUnwritten(tags: readonly string[], at: number): void {
    this.#p.tags.holdUnwritten(tags, at)
  }

  /** Records that `tags` are invalid as of `at`, for every process. Throws disk failures. */
  async invalidateTags(tags: readonly string[], at: number): Promise<void> {
    await this.#p.breaker.runChange(() => {
      this.#p.tags.invalidate(tags, at)
      this.#p.tags.writeUnwritten() // the disk takes stamps again: those it refused before too
    })
  }

  /** Removes the temp files of streams still being written. Sync: runs at exit. */
  removeTempsSync(): void {
    for (const temp of this.#temps) {
      if (!this.#layout.tree.isRealSync(path.dirname(temp))) continue // never through a planted link
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
   * Finds `key`'s entry. Small files (up to SYNC_IO_LIMIT, or WHOLE_STREAM_LIMIT with `how`
   * 'whole') are read whole and verified; larger ones are opened and only their head and
   * trailer parsed, the caller owning the open handle ('open' forces that path). undefined for a miss, a hash collision, or a corrupt file
   * (counted, and removed if it is still the file judged).
   */
  async #probe(file: string, key: string, how: ProbeRead = 'small', toRemove = false): Promise<Probe | undefined> {
    let found: Probe
    let ino: number | undefined
    try {
      const read = how === 'open' ? LARGE : how === 'whole' ? await readEntryFileUpTo(file, WHOLE_STREAM_LIMIT) : readSmallEntryFile(file)
      if (read === undefined) return undefined
      if (read === LARGE) {
        const opened = await openEntry(file)
        if (opened === undefined) return undefined
        const { head, size, trailer, mtimeMs } = opened
        found = {
          head,
          size,
          storedLength: trailer.storedLength,
          logicalLength: trailer.logicalLength,
          grace: trailer.grace,
          ino: opened.ino,
          mtimeMs,
          opened,
        }
      } else {
        ino = read.ino
        this.#p.counts.bytesRead += read.bytes.length
        const whole = Object.assign(decodeEntry(read.bytes), { ino: read.ino, mtimeMs: read.mtimeMs })
        found = {
          head: whole,
          size: read.bytes.length,
          storedLength: whole.storedLength,
          logicalLength: whole.logicalLength,
          grace: whole.grace,
          ino: read.ino,
          mtimeMs: read.mtimeMs,
          whole,
        }
      }
    } catch (error) {
      return await this.#corruptOrThrow(error, file, key, ino)
    }
    if (found.head.key !== key) {
      await found.opened?.handle.close()
      // Another key with the same 64-bit hash: a miss, and its entry is left alone. A key that
      // does not hash to this name at all is an entry swapped or copied here: corrupt.
      if (this.#misplaced(found.head.key, file)) return await this.#corruptOrThrow(MISPLACED(), file, key, found.ino)
      return undefined
    }
    try {
      checkNamespace(found.head, this.#p.options.namespace)
      // A missing key: a miss, judged before anything is read. Not for a removal: an entry
      // sealed under a key this instance lacks (another process's, mid-rotation) is still the
      // key's, named in its clear head, and a delete must not leave it to the processes that
      // can read it.
      if (!toRemove) keyOf(found.head, this.#p.options.encryption)
    } catch (error) {
      // A large entry's head is judged before its checksum: one flipped bit of its key
      // fingerprint reads as "sealed under a key we lack", which stays on disk (and is counted
      // at every read) for good. Its checksum tells the two apart: a damaged entry is removed.
      let judged = error
      if (error instanceof KeyError && error.missing && found.opened !== undefined) {
        try {
          await checkOpenedEntry(found.opened)
        } catch (damage) {
          judged = damage
        }
      }
      await found.opened?.handle.close()
      return await this.#corruptOrThrow(judged, file, key, found.ino)
    }
    if ((found.head.compression as Compression) === Compression.Zstd && !zstdAvailable()) {
      // Written by a Node with zstd (22.15+), read by one without: a miss for this process, but
      // a valid entry for the others sharing the directory, so it stays. Only if its checksum
      // says so: one flipped bit turns "none" into "zstd", and a damaged entry is removed.
      if (found.opened !== undefined) {
        try {
          await checkOpenedEntry(found.opened)
        } catch (error) {
          await found.opened.handle.close()
          return await this.#corruptOrThrow(error, file, key, found.ino)
        }
      }
      await found.opened?.handle.close()
      return undefined
    }
    return found
  }

  /** Whether an entry holding `storedKey` does not belong under `file`'s name. */
  #misplaced(storedKey: string, file: string): boolean {
    return this.#layout.hashKey(storedKey) !== path.basename(file)
  }

  /** Throws CorruptEntryError when the entry's lengths cannot be true (see impossibleLength). */
  #checkLengths(found: Probe): void {
    const impossible = impossibleLength({
      flags: found.head.flags,
      compression: found.head.compression,
      storedLength: found.storedLength,
      logicalLength: found.logicalLength,
    })
    if (impossible !== undefined) throw new CorruptEntryError(impossible, found.ino)
  }

  /**
   * Bounds a `get` before anything is allocated for the value: a length the entry cannot hold
   * is corrupt; one over maxValueSize is refused with ERR_TOO_LARGE (the entry is fine, and
   * getStream serves it: this is the caller's choice of API, not a fault of the disk or entry).
   */
  async #boundForGet(found: Probe, key: string): Promise<void> {
    this.#checkLengths(found)
    const max = this.#p.options.maxValueSize
    if (found.logicalLength > max) {
      // The length is the trailer's, not yet checked: a damaged one (a flipped bit) must be a
      // corrupt miss, not a refusal thrown at the caller on every read. So a file no larger
      // than maxValueSize (and an entry's own bytes: head, key, tags, frame headers, trailer)
      // is checked whole first (one pass, bounded memory; about what a get of a value that
      // fits costs). A larger file holds a value at least as large (a payload is stored
      // compressed only when that makes it smaller): truly too large, no pass. A sealed one is
      // authenticated too: one edited and re-checksummed is a corrupt miss, not a refusal.
      if (found.opened !== undefined && found.size <= max + ENTRY_OVERHEAD_BOUND)
        await checkOpenedEntry(found.opened, this.#p.options.encryption)
      throw new LarderError(
        'ERR_TOO_LARGE',
        `Value of key ${JSON.stringify(key.length > 200 ? key.slice(0, 200) + '…' : key)} is ${found.logicalLength} bytes, more than maxValueSize (${max}) allows get() to hold: read it with getStream()`,
        { field: 'key' },
      )
    }
  }

  /**
   * The value of an entry bounded by #boundForGet, verified to its last byte, with the metadata
   * its checksum covers. Small files were verified whole by #probe; a large unframed one is read
   * whole through its handle (its size is bounded by its bounded value's); a large framed one
   * streams through the verifying reader into one buffer of its logical length. A payload that
   * does not decode, or a value the serializer cannot read back, is corrupt.
   */
  async #verifiedValue(found: Probe): Promise<TierEntry> {
    let entry: EntryHead
    let bytes: Buffer
    if (found.whole !== undefined) {
      entry = found.whole
      bytes = await decodePayload(found.whole, this.#p.options)
    } else if ((found.head.flags & FLAG_FRAMED) !== 0) {
      this.#p.counts.bytesRead += found.size
      entry = found.head // every byte of it is hashed and checked before collect() returns
      bytes = await collect(
        createEntryStream(found.opened, () => {}, this.#p.options.encryption),
        found.logicalLength,
      )
    } else {
      this.#p.counts.bytesRead += found.size
      const whole = await readOpenedEntry(found.opened)
      // Verified now, but read after the head that was judged: it must still be that entry.
      if (whole.key !== found.head.key) throw new CorruptEntryError('entry changed while it was read', found.ino)
      entry = whole
      bytes = await decodePayload(whole, this.#p.options)
    }
    let value: unknown
    try {
      value = deserialize(entry.codec, bytes, this.#p.options.serializer)
    } catch (error) {
      if (isLarderError(error, 'ERR_DESERIALIZE')) throw error
      throw new CorruptEntryError(`payload does not deserialize (${(error as Error).message})`, found.ino)
    }
    return { value, createdAt: entry.createdAt, expiresAt: entry.expiresAt, tags: entry.tags, grace: found.grace, size: bytes.length }
  }

  /**
   * 'fresh', 'stale' (expired less than `grace` ago: served only by getOrSet's stale-if-error),
   * 'expired' (a miss: expired or invalidated, counted, and removed if still the same file when
   * it is dead, and left on disk while the grace it records lasts; see store/liveness.ts), or
   * 'gone' (a miss this instance must not serve: a removal heard, stamps owed). `counted`
   * false: an 'expired' one is not counted (see get).
   */
  async #freshness(found: Probe, file: string, grace: number, key: string, counted = true): Promise<Freshness> {
    // An entry a removal heard by a read-only instance replaced: a miss, left in place.
    if (this.#heard.any && this.#heard.hides(key, found.head.createdAt)) return 'gone'
    const state = entryState(found.head, Date.now(), this.#p.tags, found.grace, grace)
    // Tagged, and made before a read of Redis's stamps failed: one not read may have
    // invalidated it. A miss, left in place until they are read (store/owed-stamps.ts).
    if ((state === 'live' || state === 'stale') && this.#p.tags.owed.covers(found.head.tags, found.head.createdAt)) return 'gone'
    if (state === 'live') return 'fresh'
    if (state === 'stale') return 'stale'
    if (counted) this.#p.counts.expired++
    // Removed lazily, by the reader that found it, unless a newer entry replaced it meanwhile.
    if (state === 'dead') this.#removed(await this.#discard(file, found.ino).catch(() => undefined))
    return 'expired'
  }

  /**
   * Turns "this file is not a valid entry" (a CorruptEntryError) into a counted, reported miss
   * (returns undefined), removing the file only if it is still the one judged: the inode the
   * judgement names, or `ino`; with neither known, it is left for maintenance. An entry sealed
   * under a key this cache does not hold stays (another process may hold it: a rotation in
   * progress). Rethrows anything else: disk failures for the breaker, LarderErrors for the caller.
   */
  async #corruptOrThrow(error: unknown, file: string, key: string | undefined, ino: number | undefined): Promise<undefined> {
    if (!(error instanceof CorruptEntryError)) throw error
    this.#reportCorrupt(file, key, error)
    if (error instanceof KeyError && error.missing) return undefined
    const judged = error.ino ?? ino
    if (judged !== undefined) this.#removed(await this.#discard(file, judged).catch(() => undefined))
    return undefined
  }

  #reportCorrupt(file: string, key: string | undefined, error: CorruptEntryError): void {
    this.#p.counts.corrupt++
    this.#p.corrupt({ key, file, ...reportedReason(error) })
  }

  /** Runs a change of `file` (its size measured, then replaced or removed) with no rewrite of
   *  compress-later's swapped in meanwhile (maintenance/rewrite-guard.ts). */
  #alone<T>(file: string, change: () => Promise<T>): Promise<T> {
    // Without a task, no rewrite can be on its way: files are handed to one after they are
    // written, and the changes of one key follow one another (KeyOrder). The hot path of
    // small sets, which start none, pays one property read.
    const guard = this.#p.compressLater?.guardWhileRunning()
    if (guard === undefined) return change()
    const partition = guard.enter(file)
    let changed: Promise<T>
    try {
      changed = change()
    } catch (error) {
      guard.leave(partition)
      throw error
    }
    return changed.finally(() => guard.leave(partition))
  }

  /** Removes a file a read judged expired or corrupt (see removeIfUnchanged); a read-only
   *  instance removes nothing and leaves it for a writer or a prune, and neither does a closed
   *  one (see closed()). */
  #discard(file: string, ino: number | undefined): Promise<number | undefined> {
    return this.#p.options.readOnly || this.#closed ? Promise.resolve(undefined) : removeIfUnchanged(file, ino)
  }

  /** The cache is closing: nothing is written after close() resolves, yet a stream getStream
   *  handed out before it is read when its consumer reads it, and may meet a damaged entry
   *  then (its removal, and the running totals' flush that would follow, would be writes
   *  after close). It still fails with ERR_CORRUPT; the file is left for the next reader. */
  closed(): void {
    this.#closed = true
  }

  /** Bytes of an entry file just removed by this process, for the running totals. */
  #removed(size: number | undefined): void {
    if (size !== undefined) this.#p.totals.removed(size)
  }

  /** A disk hit: record the use on the file's mtime (LRU, `maxAge`; throttled and merged, see
   *  maintenance/last-use.ts) and count the hit for LFU. */
  #used(file: string, mtimeMs: number | undefined, now?: number): void {
    this.#p.lastUse?.used(file, mtimeMs, now)
    if (this.#p.options.evictionPolicy === 'lfu') this.#p.hitLog?.hit(path.basename(file))
  }
}

/** Removes what a removal elsewhere holds aside (a file: its size), if anything. Never
 *  anything else planted at that name (a directory stays). */
function removeAside(aside: string): number | undefined {
  // Almost always nothing there: one lstat, not the checks of the directories above it
  // (a file or FIFO at the partition's name answers ENOTDIR: nothing there either, not a
  // failing disk).
  const found = lstatEntry(aside)
  if (found === undefined || !found.isFile()) return undefined
  try {
    return removeFile(aside)
  } catch (error) {
    const code = errorCode(error)
    if (code === 'EISDIR' || code === 'EPERM') return undefined
    throw error
  }
}
