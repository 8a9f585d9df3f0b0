import calculateSlot from 'cluster-key-slot'
import { isLarderError } from '../errors.js'
import { hasher } from '../format/checksum.js'
import { checkNamespace } from '../crypto/entry-keys.js'
import { KeyError, reportedReason } from '../crypto/seal.js'
import { CorruptEntryError, decodeEntry, decodeHead, MAGIC, type DecodedEntry } from '../format/entry-format.js'
import { decodePayloadAtOnce, impossibleLength } from '../format/payload.js'
import { deserialize } from '../format/serializers.js'
import { Glob } from '../maintenance/glob.js'
import { toEntryInfo, type EntryInfo } from '../maintenance/listing.js'
import type { Announcement } from '../bus/bus.js'
import type { ResolvedOptions, ResolvedRedisOptions } from '../options.js'
import type { DiskBreaker } from '../resilience/disk-breaker.js'
import type { RedisClient } from '../redis/connection.js'
import {
  DELETE_IF_LONGER,
  DELETE_IF_OLDER,
  DELETE_IF_SAME,
  REPLACE_IF_SAME,
  runScript,
  SET_IF_NEWER,
  UNLINK_IF_OLDER,
} from '../redis/scripts.js'
import { removeDeadEntries } from '../redis/dead-entries.js'
import { escapeGlob, Sweep } from '../redis/sweep.js'
import { isWrongType } from '../resilience/redis-failure.js'
import type { ActivityCounters } from '../stats/activity-log.js'
import { entryState, type TagStamps } from '../store/liveness.js'
import { justAfter } from '../store/creation-clock.js'
import type { CorruptReport } from './file-tier.js'
import type { TierEntry } from './tier.js'

/** A Redis read: a file-tier-shaped read, with the entry's bytes (to promote it as they are). */
export type RedisRead = { found: false } | ({ found: true; stale: boolean; bytes: Buffer } & TierEntry)

const MISS: RedisRead = Object.freeze({ found: false })

/** A deleted key holds a tombstone this long, so a write older than the delete that arrives
 *  late (a write-back batch, a slow instance) cannot bring the value back. */
export const TOMBSTONE_MS = 5 * 60_000
const TOMBSTONE_MAGIC = 0x5444524c // "LRDT"
/** An entry's first 4 bytes (DELETE_IF_LONGER leaves a value that begins so). */
const ENTRY_MAGIC = Buffer.alloc(4)
ENTRY_MAGIC.writeUInt32LE(MAGIC, 0)
const TOMBSTONE_BYTES = 16
/** Keys per UNLINK. */
const BATCH = 500

/** The tag stamps as a read of Redis judges its entries: those merged, and those a failed read
 *  of Redis's left owed (store/owed-stamps.ts), whose entries are misses left in Redis. */
export interface RedisTagStamps extends TagStamps {
  owes(tags: readonly string[], createdAt: number): boolean
}

export interface RedisTierParts {
  client: RedisClient
  options: Pick<ResolvedOptions, 'namespace' | 'serializer' | 'maxValueSize' | 'encryption' | 'readOnly'>
  redis: ResolvedRedisOptions
  breaker: DiskBreaker
  tags: RedisTagStamps
  counts: ActivityCounters
  corrupt(report: CorruptReport): void
}

/** The prefix of every key of a namespace: `<prefix><ns>:`, ns as the file layout names it
 *  (`default`, or `ns-<xxhash64>`), so no namespace can spell another's keys. */
export function namespacePrefix(prefix: string, namespace: string): string {
  return `${prefix}${namespace === '' ? 'default' : 'ns-' + hasher().h64ToString(namespace)}:`
}

/**
 * The shared tier: one Redis key per cache key, `<prefix><ns>:<key>`, holding the same
 * self-checking bytes as an entry file (header, payload, xxhash64; entry-format.ts). A read
 * verifies the checksum, the key the entry names and its liveness before any byte is used: a
 * corrupt, truncated or foreign value is a miss, counted and reported (`corrupt`) and deleted
 * (only if unchanged since). Entries over `redis.maxValueSize` are not stored here.
 *
 * Expiry is Redis's: an entry expires at its own expiry plus the grace it records
 * (`PXAT`, i.e. PEXPIREAT set with the value), or sooner with `redis.ttl`. Writes and deletes
 * carry the entry's creation time (a delete, its own) and never replace anything newer
 * (redis/scripts.ts). Every command runs through this tier's own breaker, whose timeout is
 * `commandTimeout`; failures are thrown for the stack to judge.
 */
export class RedisTier {
  readonly name = 'redis'
  readonly client: RedisClient
  /** `<prefix><ns>:`, the prefix of every key of this namespace. */
  readonly base: string
  readonly #p: RedisTierParts
  readonly #maxValueSize: number

  constructor(parts: RedisTierParts) {
    this.#p = parts
    this.client = parts.client
    this.base = namespacePrefix(parts.redis.prefix, parts.options.namespace)
    this.#maxValueSize = parts.redis.maxValueSize
  }

  keyOf(key: string): string {
    return this.base + key
  }

  /** Whether an entry file of `length` bytes may be stored here. */
  fits(length: number): boolean {
    return length <= this.#maxValueSize
  }

  /** Reads `key`; `grace` > 0 also returns a value expired less than `grace` ago, marked stale.
   *  `serialized`: the value as the serializer's bytes, not deserialized (getStream's). Not an
   *  async function: a value judged and decoded at once (the usual small one) is the reply's
   *  one handler away, with no async frame per step (every read below memory). */
  get(key: string, grace: number, serialized = false, countExpired = true): Promise<RedisRead> {
    // At most maxValueSize + 1 bytes, never the whole of a value planted under the key: a GET
    // of 200 MB outlasted commandTimeout, opened the breaker for every other read, and was
    // never judged, so every read of the key did it again. No key and an empty value both
    // answer empty: neither is an entry.
    return this.#run(() => this.client.getrangeBuffer(this.keyOf(key), 0, this.#maxValueSize)).then(
      (bytes) => {
        if (bytes.length === 0) return MISS
        if (!this.fits(bytes.length)) return this.#oversized(key, bytes)
        return this.#judge(key, bytes, grace, serialized, countExpired)
      },
      (error: unknown) => {
        if (!isWrongType(error)) throw error
        return this.#discard(key, { reason: 'a Redis value of another type than a string' }, '-1', Buffer.alloc(0))
      },
    )
  }

  /** What `info()` tells of the live entry Redis holds for `key` (verified whole, its value not
   *  decoded), or undefined; `usedAt` is when it was created (Redis keeps no last use). A read
   *  of its own: nothing counted, reported or removed (a get does that). */
  async info(key: string): Promise<EntryInfo | undefined> {
    const bytes = await this.#run(() => this.client.getrangeBuffer(this.keyOf(key), 0, this.#maxValueSize)).catch((error: unknown) => {
      if (isWrongType(error)) return Buffer.alloc(0)
      throw error
    })
    if (bytes.length === 0 || !this.fits(bytes.length) || isTombstone(bytes)) return undefined
    try {
      const entry = this.#verified(key, bytes)
      if (entryState(entry, Date.now(), this.#p.tags) !== 'live' || entry.logicalLength > this.#p.options.maxValueSize) return undefined
      if (this.#p.tags.owes(entry.tags, entry.createdAt)) return undefined
      return toEntryInfo(entry, bytes.length, entry.logicalLength, entry.createdAt)
    } catch (error) {
      if (error instanceof CorruptEntryError) return undefined
      throw error
    }
  }

  /** A value longer than this tier's maxValueSize under `key` (`head`: its first bytes). An
   *  entry's head (another instance's, with a larger maxValueSize) is a miss here, left for
   *  that instance; anything else is foreign: counted, reported, and deleted if Redis still
   *  holds a value that long. */
  async #oversized(key: string, head: Buffer): Promise<RedisRead> {
    if (head.readUInt32LE(0) === MAGIC) return MISS
    this.#p.counts.corrupt++
    const name = this.keyOf(key)
    this.#p.corrupt({
      key,
      file: `redis:${name}`,
      reason: `a Redis value over redis.maxValueSize (${this.#maxValueSize} bytes) that is not an entry`,
    })
    if (!this.#p.options.readOnly) {
      await this.#run(() => runScript(this.client, DELETE_IF_LONGER, [name], [String(this.#maxValueSize), ENTRY_MAGIC])).catch(() => {})
    }
    return MISS
  }

  /** Whether a live entry exists (verified like a read, not decoded; `countExpired`: see get). */
  async has(key: string, countExpired = true): Promise<boolean> {
    const read = await this.get(key, 0, false, countExpired)
    return read.found && !read.stale
  }

  /** When the entry Redis holds for `key` was created: its version (bytes 8–15), or undefined
   *  when it holds none (missing, a tombstone, or not ours). Reads 16 bytes. */
  async versionOf(key: string): Promise<number | undefined> {
    const head = await this.#run(() => this.client.getrangeBuffer(this.keyOf(key), 0, 15))
    if (head.length < 16 || head.readUInt32LE(0) !== MAGIC) return undefined
    return head.readDoubleLE(8)
  }

  /**
   * Stores an entry file's bytes under `key` unless Redis holds a newer version (the creation
   * time in each one's head: SET_IF_NEWER), and publishes
   * `announce` (its bus message) by the same script once it has run. Resolves to whether it was
   * stored (false when it does not fit, over maxValueSize, is already past its time here, or a
   * newer one was kept) and whether the message went out (not when nothing was sent to Redis).
   */
  set(key: string, bytes: Buffer, expiresAt: number, grace: number, announce?: Announcement): Promise<SetAnswer> {
    // Not an async function: one handler on the script's reply (every write-through set).
    try {
      const until = this.#expiry(expiresAt, grace)
      if (!this.fits(bytes.length) || until < 0) return Promise.resolve(NOT_STORED)
      const args: (string | Buffer)[] = [bytes, String(until)]
      if (announce !== undefined) args.push(announce.channel, announce.text)
      return this.#run(() => runScript(this.client, SET_IF_NEWER, [this.keyOf(key)], args)).then(
        announce === undefined ? answerOfSet : answerOfAnnouncedSet,
      )
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
  }

  /** Removes `key` (a tombstone stamped `at` takes its place for TOMBSTONE_MS); true if a
   *  live entry was there. */
  async delete(key: string, at: number): Promise<boolean> {
    return (await this.tombstone(key, at)) === 'removed'
  }

  /** `delete`, saying what Redis held: a live entry (removed), nothing live (none: nothing,
   *  a tombstone, or an entry expired or invalidated by a tag, which Redis keeps through its
   *  grace and until its expiry, removed too), or a newer version (kept: a tombstone stamped
   *  `at` is older than it). The script hands back the head of the entry it replaced (see
   *  DELETE_IF_OLDER), judged here as a read would judge it: one round trip. */
  async tombstone(key: string, at: number): Promise<'removed' | 'none' | 'newer'> {
    const tombstone = Buffer.alloc(TOMBSTONE_BYTES)
    tombstone.writeUInt32LE(TOMBSTONE_MAGIC, 0)
    tombstone.writeDoubleLE(at, 8)
    const result = await this.#run(() =>
      runScript(this.client, DELETE_IF_OLDER, [this.keyOf(key)], [tombstone, String(at), String(TOMBSTONE_MS)]),
    )
    if (result === -1) return 'newer'
    if (!Array.isArray(result)) return 'none'
    const [, created, expires, tags] = result as [number, string, string, string]
    const replaced = { createdAt: Number(created), expiresAt: Number(expires), tags: tags === '' ? [] : tags.split('\0') }
    // A head no entry of ours has (a damaged value) was no live entry.
    if (!(replaced.createdAt >= 0 && replaced.expiresAt >= 0)) return 'none'
    return entryState(replaced, Date.now(), this.#p.tags) === 'live' ? 'removed' : 'none'
  }

  /** A pass over this namespace's keys in Redis (see Sweep); `clear` and `clearBefore` given
   *  the same one scan again only what it has not seen. */
  sweep(): Sweep {
    return new Sweep(this.client, (command) => this.#run(command))
  }

  /** Removes every key of this namespace (entries, tombstones, locks; the tag stamps and their
   *  floor stay, as they do on disk: an invalidation outlives a clear). Resolves to how many went; rejects
   *  (after removing what it could) if the pass could not vouch it saw every key. */
  async clear(sweep = this.sweep()): Promise<number> {
    return this.#removeWhere(sweep)
  }

  /** A clear made at `at` that Redis missed (or not all of it: `sweep`), run now: removes the
   *  namespace's entries and tombstones older than `at`, keeping what was written since (and
   *  the locks and tag stamps). Resolves to how many went. */
  async clearBefore(at: number, sweep = this.sweep()): Promise<number> {
    return this.#unlinkOlder(at, sweep, () => true)
  }

  /** Removes the entries (and tombstones, the removal's own among them) whose keys match
   *  `pattern` (a key glob, maintenance/glob.ts) written at or before `at`, the removal's time:
   *  a write called after it, which may land before the pass reaches its key (a prune is in no
   *  key's order), stays, as it does in the local tiers. `removed` hears each page's keys once
   *  Redis has unlinked them. */
  async removeMatching(pattern: string, at: number, removed?: (keys: string[]) => void): Promise<number> {
    const glob = new Glob(pattern)
    return this.#unlinkOlder(justAfter(at), this.sweep(), (key) => glob.test(key), removed)
  }

  /** Unlinks the namespace's entries and tombstones whose keys `match` and that are older than
   *  `at`, each judged by its own script (one slot each), a SCAN page's at once. */
  async #unlinkOlder(at: number, sweep: Sweep, match: (key: string) => boolean, removed?: (keys: string[]) => void): Promise<number> {
    let count = 0
    const when = String(at)
    for await (const names of this.#pages(sweep)) {
      const entries = names.filter((name) => !name.startsWith(this.base + '\0') && match(name.slice(this.base.length)))
      const results = await Promise.all(entries.map((name) => this.#run(() => runScript(this.client, UNLINK_IF_OLDER, [name], [when]))))
      const gone = entries.filter((_, i) => results[i] === 1)
      count += gone.length
      if (gone.length > 0) removed?.(gone.map((name) => name.slice(this.base.length)))
    }
    return count
  }

  /**
   * SCAN MATCH over every master (each holds its own slots' keys; see Sweep), then UNLINK in
   * batches of one slot each, through the client (which follows a slot that moved). The MATCH
   * narrows by the namespace prefix only.
   */
  async #removeWhere(sweep: Sweep): Promise<number> {
    let count = 0
    for await (const found of this.#pages(sweep)) {
      // The stamps (`\0tags`) and their floor (`\0tagfloor`, the oldest folded): both stay.
      const keys = found.filter((name) => !name.startsWith(this.base + '\0tag'))
      for (const slot of this.#bySlot(keys)) count += await this.#run(() => this.client.unlink(...slot.map((i) => keys[i]!)))
    }
    return count
  }

  /** Removes the namespace's entries no instance will serve again (expired past their grace,
   *  or invalidated by a tag: redis/dead-entries.ts), a SCAN page at a time; resolves to how
   *  many went. A read-only instance removes nothing. An aborted `signal` ends the pass after
   *  the page in hand. */
  async removeDead(signal?: AbortSignal): Promise<number> {
    if (this.#p.options.readOnly) return 0
    const parts = { client: this.client, run: <T>(command: () => Promise<T>) => this.#run(command), stamps: this.#p.tags }
    let count = 0
    for await (const names of this.entryPages()) {
      count += await removeDeadEntries(names, parts)
      if (signal?.aborted === true) break
    }
    return count
  }

  /** The Redis names of this namespace's entries (values, and tombstones), a SCAN page at a
   *  time: larder's own keys, which start with NUL (locks, tag stamps), left out. Rejects at the
   *  end if the pass could not vouch it saw them all (Sweep); a name may come twice (SCAN's
   *  guarantee is at least once). */
  async *entryPages(): AsyncGenerator<string[]> {
    for await (const names of this.#pages(this.sweep())) yield names.filter((name) => !name.slice(this.base.length).startsWith('\0'))
  }

  async *#pages(sweep: Sweep): AsyncGenerator<string[]> {
    yield* sweep.pages(escapeGlob(this.base) + '*')
  }

  /** At most the first maxValueSize + 1 bytes Redis holds under the full name `name`,
   *  unverified (more than `fits` allows: not a value of ours; none: nothing there, or not a
   *  string). */
  async rawGet(name: string): Promise<Buffer> {
    try {
      return await this.#run(() => this.client.getrangeBuffer(name, 0, this.#maxValueSize))
    } catch (error) {
      if (isWrongType(error)) return Buffer.alloc(0)
      throw error
    }
  }

  /** `bytes` under the full name `name`, its expiry kept, if it still holds `old` (judged by
   *  length and checksum: REPLACE_IF_SAME). Whether it did. */
  async replaceIfSame(name: string, old: Buffer, bytes: Buffer): Promise<boolean> {
    const tail = old.subarray(Math.max(0, old.length - 8))
    return (await this.#run(() => runScript(this.client, REPLACE_IF_SAME, [name], [String(old.length), tail, bytes]))) === 1
  }

  /** Runs a command through this tier's breaker (which times it out at commandTimeout). */
  #run<T>(command: () => Promise<T>): Promise<T> {
    return this.#p.breaker.run(command)
  }

  /** When Redis should drop an entry: its expiry plus its grace, or sooner by `redis.ttl`; 0 =
   *  never; < 0 = already past. */
  #expiry(expiresAt: number, grace: number): number {
    const ttl = this.#p.redis.ttl
    let until = expiresAt === 0 ? 0 : expiresAt + grace
    // Past 2^53 ms (some 285,000 years) an expiry is never: PXAT refuses a time an int64 cannot
    // hold, and every refusal would count against the Redis breaker.
    if (until > Number.MAX_SAFE_INTEGER) until = 0
    if (until === 0 && ttl === 0) return 0 // never: no clock read
    const now = Date.now()
    if (ttl > 0 && (until === 0 || until > now + ttl)) until = now + ttl
    return until <= now ? -1 : Math.ceil(until)
  }

  /** Indexes of `keys` (full Redis names) grouped by slot, BATCH at most per group. On one
   *  server every key shares a group. */
  #bySlot(keys: readonly string[]): number[][] {
    const groups = new Map<number, number[][]>()
    const clustered = this.client.isCluster
    keys.forEach((key, i) => {
      const slot = clustered ? calculateSlot(key) : 0
      let lists = groups.get(slot)
      if (lists === undefined) groups.set(slot, (lists = [[]]))
      let last = lists[lists.length - 1]!
      if (last.length >= BATCH) lists.push((last = []))
      last.push(i)
    })
    return [...groups.values()].flat()
  }

  /** An entry this instance wrote that Redis may not have yet (write-back.ts's `held`),
   *  judged and decoded as a read of Redis would judge it (expiry, grace, tag stamps): its own
   *  bytes, not Redis's, so nothing is counted, reported or deleted. */
  async fromQueue(key: string, bytes: Buffer, grace: number): Promise<RedisRead> {
    try {
      const read = await this.#decode(key, bytes, grace)
      return typeof read === 'string' ? MISS : read
    } catch (error) {
      if (error instanceof CorruptEntryError || isPayloadFailure(error)) return MISS
      throw error
    }
  }

  /** Whether an entry this instance still holds queued for Redis (its own bytes) is live:
   *  judged by its head alone, as a delete of it must answer (see `fromQueue`). */
  queuedLive(bytes: Buffer): boolean {
    try {
      const head = decodeHead(bytes, bytes.length)
      return head !== undefined && entryState(head, Date.now(), this.#p.tags) === 'live'
    } catch {
      return false
    }
  }

  /** Verifies, judges and decodes a value Redis returned for `key` (`serialized`: see get):
   *  at once when its payload decodes at once. May throw what is not a damaged value. */
  #judge(key: string, bytes: Buffer, grace: number, serialized: boolean, countExpired: boolean): RedisRead | Promise<RedisRead> {
    if (isTombstone(bytes)) return MISS
    let read: Decoded | Promise<Decoded>
    try {
      read = this.#decode(key, bytes, grace, serialized)
    } catch (error) {
      return this.#refused(key, bytes, error)
    }
    if (!(read instanceof Promise)) return this.#judged(key, bytes, read, countExpired)
    return read.then(
      (decoded) => this.#judged(key, bytes, decoded, countExpired),
      (error: unknown) => this.#refused(key, bytes, error),
    )
  }

  /** A decoded read as get answers it: a value, or a miss (an expired one counted, unless the
   *  read counted it in the file tier already: `countExpired` false; a dead one removed). */
  #judged(key: string, bytes: Buffer, read: Decoded, countExpired: boolean): RedisRead | Promise<RedisRead> {
    if (typeof read !== 'string') return read
    if (countExpired) this.#p.counts.expired++
    // Past its grace, or invalidated by a tag (stamps only rise): never served again by any
    // instance, so it goes, if unchanged since, as a file tier's read removes a dead file.
    // Left, an entry without a ttl stayed in Redis for good (tag versioning grew Redis
    // without bound) and every read fetched and judged it again.
    if (read === 'dead') return this.#deleteIfSame(this.keyOf(key), String(bytes.length), tailOf(bytes)).then(() => MISS)
    return MISS
  }

  /** A value that failed to verify or decode: a counted, reported miss (removed unless it is
   *  sealed under a key this instance does not hold). Anything else is thrown on. */
  #refused(key: string, bytes: Buffer, error: unknown): RedisRead | Promise<RedisRead> {
    if (!(error instanceof CorruptEntryError) && !isPayloadFailure(error)) throw error
    if (error instanceof KeyError && error.missing) {
      // Sealed under a key this instance does not hold: a miss, left for those that do.
      this.#p.counts.corrupt++
      this.#p.corrupt({ key, file: `redis:${this.keyOf(key)}`, ...reportedReason(error) })
      return MISS
    }
    const tail = tailOf(bytes)
    const reason =
      error instanceof CorruptEntryError ? reportedReason(error) : { reason: error instanceof Error ? error.message : String(error) }
    return this.#discard(key, reason, String(bytes.length), tail)
  }

  /** `bytes` as `key`'s entry, verified (a CorruptEntryError otherwise), judged and decoded:
   *  'kept' (expired, in its recorded grace) or 'dead' (past it, or invalidated) if not to be
   *  served with `grace`. At once unless the payload decodes in the thread pool (framed, or
   *  too large to decompress inline). May throw. */
  #decode(key: string, bytes: Buffer, grace: number, serialized = false): Decoded | Promise<Decoded> {
    const entry = this.#verified(key, bytes)
    const state = entryState(entry, Date.now(), this.#p.tags, entry.grace, grace)
    if (state === 'kept' || state === 'dead') return state
    // Made before a read of the stamps failed, and tagged: a stamp not read may have
    // invalidated it. A miss, left in Redis (store/owed-stamps.ts).
    if (this.#p.tags.owes(entry.tags, entry.createdAt)) return MISS
    if (entry.logicalLength > this.#p.options.maxValueSize) return MISS // never stored by a cache with these bounds
    const payload = decodePayloadAtOnce(entry, this.#p.options)
    if (!(payload instanceof Promise)) return this.#decoded(entry, payload, state, bytes, serialized)
    return payload.then((later) => this.#decoded(entry, later, state, bytes, serialized))
  }

  /** The read of a verified, live (or stale) entry whose payload is `payload`. */
  #decoded(entry: DecodedEntry, payload: Buffer, state: 'live' | 'stale', bytes: Buffer, serialized: boolean): RedisRead {
    let value: unknown = payload
    if (!serialized) {
      try {
        value = deserialize(entry.codec, payload, this.#p.options.serializer)
      } catch (error) {
        if (isLarderError(error, 'ERR_DESERIALIZE')) throw error
        throw new CorruptEntryError(`payload does not deserialize (${(error as Error).message})`)
      }
    }
    const { createdAt, expiresAt, tags } = entry
    return { found: true, stale: state === 'stale', value, createdAt, expiresAt, tags, grace: entry.grace, size: payload.length, bytes }
  }

  /** `bytes` as an entry of `key` in this namespace, its checksum and lengths checked (a
   *  CorruptEntryError otherwise). */
  #verified(key: string, bytes: Buffer): DecodedEntry {
    const entry = decodeEntry(bytes)
    if (entry.key !== key) throw new CorruptEntryError('an entry of another key under this name')
    checkNamespace(entry, this.#p.options.namespace)
    const impossible = impossibleLength(entry)
    if (impossible !== undefined) throw new CorruptEntryError(impossible)
    return entry
  }

  /** A value under `key` that is not a good entry of it: counted, reported, and deleted if
   *  Redis still holds the same (`length`, `tail`: see DELETE_IF_SAME). A miss. */
  async #discard(key: string, reason: { reason: string; detail?: string }, length: string, tail: Buffer): Promise<RedisRead> {
    this.#p.counts.corrupt++
    const name = this.keyOf(key)
    this.#p.corrupt({ key, file: `redis:${name}`, ...reason })
    await this.#deleteIfSame(name, length, tail)
    return MISS
  }

  /** Deletes the value under the full name `name` if it still is `length` bytes ending in `tail`
   *  (DELETE_IF_SAME); a failure leaves it, for the next read. A readOnly instance removes
   *  nothing, in Redis as in its directory: the value is a miss here, left for a writer. */
  async #deleteIfSame(name: string, length: string, tail: Buffer): Promise<void> {
    if (this.#p.options.readOnly) return
    await this.#run(() => runScript(this.client, DELETE_IF_SAME, [name], [length, tail])).catch(() => {})
  }
}

/** The last 8 bytes of a value (an entry's checksum), or none. */
function tailOf(bytes: Buffer): Buffer {
  return bytes.length >= 8 ? bytes.subarray(bytes.length - 8) : Buffer.alloc(0)
}

/** A payload that fails to decode (zlib's errors): the value is damaged, not Redis. */
function isPayloadFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && code.startsWith('Z_')
}

/** Whether `bytes` are a tombstone (what a deleted key holds for TOMBSTONE_MS), not an entry. */
export function isTombstone(bytes: Buffer): boolean {
  return bytes.length === TOMBSTONE_BYTES && bytes.readUInt32LE(0) === TOMBSTONE_MAGIC
}

/** A Redis value verified and judged: a read, or why it is not served ('kept': expired within
 *  its recorded grace; 'dead': past it, or invalidated). */
type Decoded = RedisRead | 'kept' | 'dead'

/** What RedisTier.set answers: whether it stored, whether its message went out, and `kept`
 *  when Redis holds a newer value (or another of the same version), which the local copies of
 *  the write must not outlive. */
export interface SetAnswer {
  readonly stored: boolean
  readonly announced: boolean
  readonly kept?: true
}

const NOT_STORED: SetAnswer = Object.freeze({ stored: false, announced: false })
const STORED: SetAnswer = Object.freeze({ stored: true, announced: false })
const KEPT: SetAnswer = Object.freeze({ stored: false, announced: false, kept: true })
const STORED_ANNOUNCED: SetAnswer = Object.freeze({ stored: true, announced: true })
const KEPT_ANNOUNCED: SetAnswer = Object.freeze({ stored: false, announced: true, kept: true })

/** SET_IF_NEWER's reply (1: stored, 0: a newer value kept) as set's answer. */
const answerOfSet = (stored: unknown): SetAnswer => (stored === 1 ? STORED : KEPT)
const answerOfAnnouncedSet = (stored: unknown): SetAnswer => (stored === 1 ? STORED_ANNOUNCED : KEPT_ANNOUNCED)
