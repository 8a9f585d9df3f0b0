import { LRUCache } from 'lru-cache'
import type { Announcement } from '../bus/bus.js'
import { isLarderError } from '../errors.js'
import type { BusMessage, DistributiveOmit } from '../bus/messages.js'
import { Glob } from '../maintenance/glob.js'
import type { Failures } from '../facade/failures.js'
import { encodeEntryBytes } from '../format/payload.js'
import type { OpenedTemp } from '../store/atomic-write.js'
import { justAfter } from '../store/creation-clock.js'
import type { KeyOrder } from '../key-order.js'
import type { ResolvedOptions, WriteStrategy } from '../options.js'
import type { Counters, TierName } from '../stats/counters.js'
import type { FileTier } from './file-tier.js'
import type { MemoryTier } from './memory-tier.js'
import { PromotionGuard } from './promotion-guard.js'
import { RetrySoon } from '../resilience/retry-soon.js'
import type { RedisRead, RedisTier } from './redis-tier.js'
import type { Sweep } from '../redis/sweep.js'
import { MISS, type StoredEntry, type TierEntry, type TierRead } from './tier.js'
import type { QueuedWrite, WriteBackQueue } from './write-back.js'

export interface TierStackParts {
  memory: MemoryTier | undefined
  file: FileTier | undefined
  redis: RedisTier | undefined
  writeBack: WriteBackQueue | undefined
  /** Read at each write: configure() may change the strategy and codec. */
  options: Pick<
    ResolvedOptions,
    'compression' | 'compressionLevel' | 'compressThreshold' | 'writeStrategy' | 'namespace' | 'encryption' | 'failOpen' | 'readOnly'
  >
  order: KeyOrder
  failures: Failures
  counters: Counters
  /** A time after every time this instance gave before (deletes and clears are stamped). */
  stamp(): number
  /** The tag stamps being read again after missed messages, which reads below the memory tier
   *  wait for (facade/tag-invalidation.ts); undefined: none. */
  resyncing(): Promise<void> | undefined
  /** Whether the Redis breaker is open: what waits for Redis is sent when it closes. */
  redisOpen(): boolean
  /** Memory pressure is high (facade/pressure.ts): write-back's queue must not grow. */
  underPressure(): boolean
  /** The message as a write to Redis may publish itself (Bus.inline), or undefined: publish it. */
  announcement(message: Omit<Extract<BusMessage, { op: 'keys' }>, 'from'>): Announcement | undefined
  /** Tells the other instances (the bus); nothing without one. */
  publish(message: DistributiveOmit<Extract<BusMessage, { op: 'keys' | 'clear' | 'pattern' | 'all' }>, 'from'>): void
  /** A promotion to the file tier, for close() to wait for. */
  track(write: Promise<unknown>): void
  /** A promotion wrote an entry file: the budget is checked as after a set (a reader that only
   *  reads Redis through its directory filled it past maxSize without a prune). */
  promotedToFile(): void
  /** A change Redis missed was queued for its return (#defer): recorded in the directory, so
   *  a crash before Redis is back does not lose it (facade/owed-to-redis.ts). */
  deferred(): void
}

/** A read of the stack: what it found, and which tier answered. */
export type StackRead = TierRead & {
  /** 'memory': a change of this instance's still queued for Redis (write-back.ts's `held`). */
  tier?: TierName
  /** Nothing found because a tier's read failed (fail-open made it a miss): a caller about to
   *  write what it computed from the value (increment) must not take it for "not there". */
  failed?: true
}

/** A miss made by a failed read (see StackRead.failed). */
const FAILED_MISS: StackRead = Object.freeze({ found: false, failed: true })

/** What a write did with Redis: stored (or queued), and whether its bus message went with it. */
interface Sent {
  stored: boolean
  announced: boolean
  /** Redis kept a newer value (or another of the same version) instead. */
  kept?: boolean
}
const NOT_SENT: Sent = Object.freeze({ stored: false, announced: false })
const QUEUED: Sent = Object.freeze({ stored: true, announced: false })
/** Redis could not take it: queued to be sent when it can, its bus message after it. */
const DEFERRED: Sent = Object.freeze({ stored: false, announced: true })
/** Sent to Redis (#toRedis), which stored it or kept a newer value; announced by its script or not. */
const SENT: Sent = Object.freeze({ stored: true, announced: false })
const SENT_ANNOUNCED: Sent = Object.freeze({ stored: true, announced: true })
const SENT_KEPT: Sent = Object.freeze({ stored: true, announced: false, kept: true })
const SENT_KEPT_ANNOUNCED: Sent = Object.freeze({ stored: true, announced: true, kept: true })

/** A Redis read as the stack answers it: the entry without its bytes, named as Redis's when
 *  fresh. One literal of known shape, not a rest and a spread of the read (two copies into
 *  dictionary-mode objects, on every get answered by Redis). */
function answeredByRedis(read: Extract<RedisRead, { found: true }>): StackRead {
  const { stale, value, createdAt, expiresAt, tags, grace, size } = read
  return stale
    ? { found: true, stale, value, createdAt, expiresAt, tags, grace, size }
    : { found: true, stale, value, createdAt, expiresAt, tags, grace, size, tier: 'redis' }
}

/** How many listed entries servable() asks Redis about at once. */
const LIST_CHECKS = 256
/** Local entries re-validated against Redis since the last outage, remembered at most. */
const VALIDATED_MAX = 100_000

/**
 * The tiers in order, top first: memory, the entry files, Redis. The stack owns the read path
 * (top tier first; a hit in a lower tier is promoted into the tiers above it, keeping its own
 * expiry) and the write strategies:
 *
 * | strategy | set resolves when | memory, file | Redis |
 * | write-through | every tier has it | written | written, awaited |
 * | write-back | the local tiers have it | written | queued (write-back.ts) |
 * | cache-aside | Redis has it | not written, stale copies dropped | written, awaited |
 *
 * An entry too large for Redis (`redis.maxValueSize`) is written locally whatever the strategy.
 * Every change is published on the bus once Redis has it (write-back: once its batch is sent).
 *
 * The facade asks the memory tier itself on its fast path, counts hits and misses, and decides
 * what a failure means through `Failures`: a tier that fails is skipped (a read falls through,
 * a write is a counted drop), unless failOpen is false.
 *
 * **The outage rule.** An instance whose bus was down cannot know what it missed. So when its
 * subscription is (again) in place, at open too, `revalidate()` drops the memory tier, and a
 * file entry created before that moment is served only once Redis holds the same version of
 * its key (its creation time); otherwise (a newer entry, a tombstone, nothing) the local copy
 * is removed and the read goes on to Redis. A copy Redis could not be asked about is served
 * (reads fail open) but not promoted: the next read asks again. An invalidation by tag leaves
 * the version in Redis as it was, so the stamps Redis holds are read again too, and until they
 * are merged (bounded) reads below the memory tier wait (`resyncing`, facade/tag-invalidation.ts).
 */
export class TierStack {
  readonly memory: MemoryTier | undefined
  readonly file: FileTier | undefined
  readonly redis: RedisTier | undefined
  get strategy(): WriteStrategy {
    return this.#p.options.writeStrategy
  }

  readonly #p: TierStackParts
  /** File entries created before this must be re-validated against Redis (0: none). */
  #revalidateBefore = 0
  /** Made when the first local entry is found valid: lru-cache allocates its arrays for `max`
   *  up front (11–58 ms and 2.5 MB on the bench VM), and revalidate() runs at every open with
   *  a bus (the first subscription counts as a reconnect), so making it there cost every such
   *  open that, even with no file tier, where nothing is ever re-validated. */
  #validated: LRUCache<string, true> | undefined
  /** What other instances changed while a read was in flight (see promotion-guard.ts). */
  readonly #guard = new PromotionGuard()
  /** A clear of Redis that Redis missed (unreachable), or that a cluster's pass could not
   *  finish: its time, the tier named and what the pass saw, run when Redis is back
   *  (sendMissedClear), its bus message after it. */
  #missedClear: { at: number; tier: 'all' | 'redis'; sweep: Sweep; lost?: boolean } | undefined
  #sendingClear = false
  /** A missed clear that failed again while the breaker stayed closed (one timeout), which no
   *  recovery would send. */
  readonly #retryClear = new RetrySoon(() => void this.sendMissedClear())
  #stopped = false
  /** When a read of Redis last failed (performance.now()), 0: never. */
  #redisReadFailedAt = 0

  constructor(parts: TierStackParts) {
    this.#p = parts
    this.memory = parts.memory
    this.file = parts.file
    this.redis = parts.redis
  }

  // ── reads ─────────────────────────────────────────────────────────────────

  /**
   * Reads `key` below the memory tier: the files, then Redis. A fresh hit is promoted into the
   * tiers above it, unless a change that may have replaced it was called here or heard from
   * another instance while it was read (#mayPromote). `grace` > 0 also returns a value expired
   * less than `grace` ago, marked stale (never promoted). Never throws for a failing tier while
   * failOpen. `countExpired` false: an expired or invalidated entry found is not counted in
   * `expired` (a look again for a value, within a read that counted what it found).
   */
  lookup(key: string, grace: number, countExpired = true): StackRead | Promise<StackRead> {
    if (this.redis !== undefined || this.file === undefined) return this.#lookupShared(key, grace, countExpired)
    // The files alone (no Redis, so no outage rule, queue or resync): answered at once when
    // the file tier answers at once (its plain hit, or a miss), so get's common disk hit
    // makes one promise, get()'s own, instead of one or two per layer.
    const version = this.#p.order.ticket()
    const heard = this.#guard.ticket()
    const ticket = this.memory?.ticket
    if (this.memory !== undefined) this.#p.counters.tiers.memory!.misses++
    const started = performance.now()
    let read: TierRead | Promise<TierRead>
    try {
      read = this.file.get(key, grace, countExpired)
    } catch (error) {
      read = Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    if (!(read instanceof Promise)) return this.#fromFiles(key, read, false, started, version, heard, ticket)
    return read.then(
      (result) => this.#fromFiles(key, result, false, started, version, heard, ticket),
      (error: unknown) => {
        this.#p.failures.readFailed(error, 'file')
        return this.#fromFiles(key, MISS, true, started, version, heard, ticket)
      },
    )
  }

  /** lookup's answer from the files alone: counted, and a fresh hit promoted into memory
   *  (#mayPromote, with the tickets taken before the read). */
  #fromFiles(key: string, result: StackRead, failed: boolean, started: number, version: number, heard: number, ticket?: number): StackRead {
    this.#countFileRead(result, started)
    if (result.found && !result.stale && this.#mayPromote(key, result.createdAt, version, heard))
      if (this.memory?.set(key, result, ticket) === true) this.#p.counters.tiers.memory!.sets++
    return !result.found && failed ? FAILED_MISS : result
  }

  /** The file tier's read counted (timed from `started`, a hit or a miss) and, if a hit, named. */
  #countFileRead(result: StackRead, started: number): void {
    const counts = this.#p.counters.tiers.file!
    counts.get.record(performance.now() - started)
    if (result.found && !result.stale) {
      counts.hits++
      // The file tier's hit is a new object of its own: named in place, not spread into
      // another (a copy of every field on every disk hit).
      result.tier = 'file'
    } else counts.misses++
  }

  /** lookup with Redis below the files (or no files): the files (each copy older than the last
   *  outage checked against Redis), the write-back queue's own change, Redis. */
  async #lookupShared(key: string, grace: number, countExpired: boolean): Promise<StackRead> {
    const version = this.#p.order.ticket()
    const heard = this.#guard.ticket()
    const ticket = this.memory?.ticket
    const tiers = this.#p.counters.tiers
    if (this.memory !== undefined) tiers.memory!.misses++
    let result: StackRead = MISS
    /** A local copy the outage rule could not check (Redis did not answer): served, as reads
     *  fail open, but not promoted, or the memory tier would serve it after Redis is back. */
    let unchecked = false
    let failed = false
    const resyncing = this.#p.resyncing()
    if (resyncing !== undefined) await resyncing
    if (this.file !== undefined) {
      const started = performance.now()
      try {
        result = await this.file.get(key, grace, countExpired)
        // A copy in its grace period too: grace never serves a value another host replaced
        // or deleted while this one was cut off.
        if (result.found && this.#asksRedis(key, result.createdAt)) {
          const verdict = await this.#stillValid(key, result.createdAt)
          if (verdict === 'replaced') result = MISS
          unchecked = verdict === 'unchecked'
        }
      } catch (error) {
        this.#p.failures.readFailed(error, 'file')
        failed = true
      }
      this.#countFileRead(result, started)
    }
    let promote: Buffer | undefined
    const held = result.found && !result.stale ? undefined : this.#p.writeBack?.held(key)
    if (held !== undefined) {
      // This instance's own change, not in Redis yet: newer than what Redis holds (a change
      // heard from elsewhere since made the queue forget it), so Redis is not asked. Without a
      // directory it is the only copy here once the memory tier let the value go; a removal
      // (a tombstone) hides Redis's older value.
      const queued = held.bytes === undefined ? MISS : await this.redis!.fromQueue(key, held.bytes, grace)
      if (queued.found && (!queued.stale || !result.found)) {
        const { stale, value, createdAt, expiresAt, tags, grace: kept, size } = queued
        result = { found: true, stale, value, createdAt, expiresAt, tags, grace: kept, size, tier: 'memory' }
      }
    } else if (!(result.found && !result.stale) && this.redis !== undefined) {
      const failedBefore = this.#redisReadFailedAt
      // One read counts one `expired`: not again for Redis's copy of the entry the files had.
      const shared = await this.#fromRedis(key, grace, false, countExpired && (result.found || result.expired !== true))
      if (this.#redisReadFailedAt !== failedBefore) failed = true
      if (shared.found && (!shared.stale || !result.found)) {
        result = answeredByRedis(shared)
        if (!shared.stale) promote = shared.bytes
      }
    }
    if (result.found && !result.stale && !unchecked && this.#mayPromote(key, result.createdAt, version, heard)) {
      if (this.memory?.set(key, result, ticket) === true) tiers.memory!.sets++
      // A read-only cache writes nothing in its directory: a Redis hit goes to memory only.
      if (promote !== undefined && this.file !== undefined && !this.#p.options.readOnly)
        this.#promoteToFile(key, promote, result.createdAt, heard)
    }
    return !result.found && failed ? FAILED_MISS : result
  }

  /** Whether a value read with these tickets may go up: no change of this key (or clear) called
   *  here since (KeyOrder), nor one called before still running, and none of this key newer
   *  than it heard from elsewhere. */
  #mayPromote(key: string, createdAt: number, version: number, heard: number): boolean {
    const order = this.#p.order
    return !order.changedSince(key, version) && !order.inFlight(key) && this.#guard.mayPromote(key, createdAt, heard)
  }

  /** Whether a read of Redis failed since `since` (performance.now()): getOrSet then takes no
   *  lock, whose commands would wait as long again. */
  redisReadFailedSince(since: number): boolean {
    return this.#redisReadFailedAt >= since
  }

  /** Whether a fresh entry exists in any tier (no value decoded, nothing counted); a file
   *  older than the last outage counts only if the outage rule would serve it (#stillValid). */
  async has(key: string): Promise<boolean> {
    if (this.memory?.has(key) === true) return true
    const resyncing = this.#p.resyncing()
    if (resyncing !== undefined) await resyncing
    /** The files found the entry expired or invalidated, and counted it (see lookup). */
    let expired = false
    if (this.file !== undefined) {
      try {
        const createdAt = await this.file.freshSince(key)
        expired = createdAt === 'expired'
        if (typeof createdAt === 'number' && (await this.#stillValid(key, createdAt)) !== 'replaced') return true
      } catch (error) {
        this.#p.failures.readFailed(error, 'file')
      }
    }
    if (this.redis === undefined) return false
    const held = this.#p.writeBack?.held(key)
    if (held !== undefined) {
      // This instance's own change, not in Redis yet (see lookup).
      if (held.bytes === undefined) return false
      const queued = await this.redis.fromQueue(key, held.bytes, 0)
      return queued.found && !queued.stale
    }
    try {
      return await this.redis.has(key, !expired)
    } catch (error) {
      this.#p.failures.readFailed(error, 'redis')
      return false
    }
  }

  /** Whether the outage rule asks Redis about a local entry created at `createdAt` before
   *  it is served (see #stillValid): answered without a promise, as it is asked on every
   *  disk hit and is false for all but the entries older than the last outage. */
  #asksRedis(key: string, createdAt: number): boolean {
    return createdAt < this.#revalidateBefore && this.redis !== undefined && this.#validated?.has(key) !== true
  }

  /** Whether a local entry created at `createdAt` may be served: 'valid' unless the outage
   *  rule asks Redis (#asksRedis); then 'replaced' if Redis holds another version of the key
   *  (the local copy is removed), 'unchecked' if Redis did not answer (served: reads fail open
   *  to the tiers that work; but asked again next time). */
  async #stillValid(key: string, createdAt: number): Promise<'valid' | 'unchecked' | 'replaced'> {
    const verdict = await this.#verdict(key, createdAt)
    if (verdict === 'replaced') await this.file?.dropIfOlder(key, justAfter(createdAt)).catch(() => {}) // this copy, not a newer one
    return verdict
  }

  /** #stillValid's verdict, the local copy left in place. */
  async #verdict(key: string, createdAt: number): Promise<'valid' | 'unchecked' | 'replaced'> {
    if (!this.#asksRedis(key, createdAt) || this.redis === undefined) return 'valid'
    // This instance's own write, still queued for Redis (write-back, or made while Redis was
    // away): the newest there is, which Redis will hold once it is sent.
    if (this.#p.writeBack?.queuedAt(key) === createdAt) return 'valid'
    let shared: number | undefined
    try {
      shared = await this.redis.versionOf(key)
    } catch {
      return 'unchecked'
    }
    if (shared !== createdAt) return 'replaced'
    this.#validated ??= new LRUCache<string, true>({ max: VALIDATED_MAX })
    this.#validated.set(key, true)
    return 'valid'
  }

  /**
   * The listed entries (entries(), its batches: Keyv's iterator, `larder ls`) that get() may
   * serve: a file the outage rule would drop (Redis holds another version of its key: another
   * host overwrote or deleted it while this one was cut off) is left out, not removed (a
   * listing removes nothing); one Redis cannot answer about is listed, as get() serves it.
   * The keys asked about, LIST_CHECKS at once; none when no listed file is older than the
   * last outage.
   */
  async servable<T extends { key: string; createdAt: number }>(listed: T[]): Promise<T[]> {
    if (this.#revalidateBefore === 0 || this.redis === undefined) return listed
    const kept: T[] = []
    for (let from = 0; from < listed.length; from += LIST_CHECKS) {
      const chunk = listed.slice(from, from + LIST_CHECKS)
      const verdicts = await Promise.all(chunk.map((entry) => this.#verdict(entry.key, entry.createdAt)))
      chunk.forEach((entry, i) => verdicts[i] !== 'replaced' && kept.push(entry))
    }
    return kept
  }

  /** Whether a local entry read without its value (a stream, info()) created at `createdAt`
   *  may be served (see #stillValid). */
  async streamStillValid(key: string, createdAt: () => Promise<number | undefined>): Promise<boolean> {
    const resyncing = this.#p.resyncing()
    if (resyncing !== undefined) await resyncing
    if (this.#revalidateBefore === 0 || this.redis === undefined || this.#validated?.has(key) === true) return true
    const at = await createdAt()
    return at === undefined || (await this.#stillValid(key, at)) !== 'replaced'
  }

  /** getStream's read of a key the directory does not hold: the live value Redis holds, as the
   *  serializer's bytes (Redis holds `set` values only, never streams), verified whole; counted
   *  as a read of Redis, a failure a miss (failOpen). Not promoted: a stream is read once.
   *  `countExpired` false: the files counted this read's expired entry (see lookup). */
  async serializedFromRedis(key: string, countExpired = true): Promise<Buffer | undefined> {
    if (this.redis === undefined) return undefined
    const resyncing = this.#p.resyncing()
    if (resyncing !== undefined) await resyncing
    const read = await this.#fromRedis(key, 0, true, countExpired)
    return read.found && !read.stale ? (read.value as Buffer) : undefined
  }

  async #fromRedis(key: string, grace: number, serialized = false, countExpired = true): Promise<RedisRead> {
    const counts = this.#p.counters.tiers.redis!
    const started = performance.now()
    let shared: RedisRead = MISS as RedisRead
    try {
      shared = await this.redis!.get(key, grace, serialized, countExpired)
    } catch (error) {
      this.#redisReadFailedAt = performance.now()
      this.#p.failures.readFailed(error, 'redis')
    }
    counts.get.record(performance.now() - started)
    if (shared.found && !shared.stale) counts.hits++
    else counts.misses++
    return shared
  }

  /**
   * Writes a Redis hit into the file tier as the bytes Redis held (verified by the read), in
   * key order: the caller saw no change called since the read began (#mayPromote), and those
   * called from now on run after it. A newer change heard from elsewhere before it runs cancels
   * it; one heard while the file is written removes it again (the message's own drop may have
   * looked before the file was there), and the copy a read of that file put into memory meanwhile.
   * So does a change of the key called here that it had to queue behind: that change took
   * effect after the read (the read ran inside it, as increment's does, or beside a stream),
   * and the bytes read would replace what it wrote.
   */
  #promoteToFile(key: string, bytes: Buffer, createdAt: number, heard: number): void {
    /** The ticket taken once the promotion is queued (its own place in the queue counts as a
     *  change): none while it runs at once, nothing being queued before it. */
    const queued: { ticket?: number } = {}
    const promotion = this.#p.order.change(
      key,
      async () => {
        if (queued.ticket !== undefined && this.#p.order.changedSince(key, queued.ticket)) return
        if (!this.#guard.mayPromote(key, createdAt, heard)) return
        const writing = this.#guard.ticket()
        try {
          await this.file!.setBytes(key, bytes)
          this.#p.counters.tiers.file!.sets++
          this.#p.promotedToFile()
          // Dropped as a message drops it: a read that found the file in the meantime may have
          // promoted it into memory, where it would outlive the file it came from.
          if (!this.#guard.mayPromote(key, createdAt, writing)) await this.dropLocal(key, justAfter(createdAt))
        } catch {
          this.#p.counters.tiers.file!.errors++ // a promotion is an optimisation: nothing is lost
        }
      },
      true,
    )
    queued.ticket = this.#p.order.ticket()
    this.#p.track(promotion)
  }

  // ── writes ────────────────────────────────────────────────────────────────

  /**
   * Writes `entry` as the strategy says (see the class comment). A dropped write (failOpen)
   * still serves this process from memory where the strategy writes memory: better than a
   * miss, and the process's own view stays consistent with what it just wrote. Resolves to
   * whether a tier below memory stored (or, write-back, queued) it.
   */
  async write(key: string, entry: StoredEntry, through = false, redisFailedSince?: number): Promise<boolean> {
    const tiers = this.#p.counters.tiers
    const writing = this.#guard.ticket()
    const needsBytes = this.file !== undefined || this.redis !== undefined
    // Without Redis the bytes are the file's alone, and certain to be written: the file tier
    // encodes them, creating a big value's temp file meanwhile (FileTier.encode).
    let encoded: Buffer | undefined
    let early: Promise<OpenedTemp> | undefined
    let later: number | undefined
    if (this.redis === undefined && this.file !== undefined) ({ bytes: encoded, early, later } = await this.file.encode(key, entry))
    else if (needsBytes) {
      // Awaited only when it is a promise (a value compressed in the thread pool).
      const answer = encodeEntryBytes(key, entry, this.#p.options)
      encoded = answer instanceof Promise ? await answer : answer
    }
    const bytes = encoded
    const shared = this.redis !== undefined && bytes !== undefined && this.redis.fits(bytes.length)
    const local = !shared || this.strategy !== 'cache-aside'
    // Under memory pressure a write-back write goes through instead of adding to the queue.
    // `through`: getOrSet's value loaded under the Redis lock, which the instances waiting for
    // the lock look for in Redis once it is released.
    const queued = shared && this.strategy === 'write-back' && !through && !this.#p.underPressure()
    let inMemory = false
    if (local && this.memory !== undefined) {
      // Refused when larger than the whole tier (memory.maxSize).
      inMemory = this.memory.set(key, entry)
      if (inMemory) tiers.memory!.sets++
      else tiers.memory!.dropped++
    } else this.memory?.delete(key)
    this.#p.writeBack?.forget(key)
    let fileWrite: Promise<boolean> | false = false
    try {
      const message = { op: 'keys' as const, keys: [[key, entry.createdAt]] as [string, number][] }
      fileWrite =
        this.file === undefined
          ? false
          : local
            ? this.#toFile(key, bytes!, entry.createdAt, early, later)
            : this.#dropFile(key, entry.createdAt)
      const redisWrite = !shared
        ? this.redis !== undefined && bytes !== undefined
          ? this.#unshare(key, entry)
          : NOT_SENT
        : queued
          ? this.#queue(key, bytes, entry)
          : redisFailedSince !== undefined && this.redisReadFailedSince(redisFailedSince)
            ? this.#deferred(key, bytes, entry)
            : this.#toRedis(key, bytes, entry, message)
      // Without a file tier (memory + Redis) only Redis is awaited: no Promise.all, whose array
      // and reaction per part cost a set three more promises (counted with async_hooks).
      const [toFile, toRedis] = fileWrite === false ? [false, await redisWrite] : await Promise.all([fileWrite, redisWrite])
      // The script that wrote Redis published it (one command), or it waits with the write
      // queued for Redis's return (DEFERRED); otherwise it goes now.
      if (this.redis !== undefined && !queued && !toRedis.announced) this.#p.publish(message)
      // The local copies must not outlive a newer value: one Redis kept instead of this write
      // (another instance's, stamped later or alike), or one another instance announced while
      // they were being written (its message found no file yet to drop: the rename came after).
      if (this.redis !== undefined && local && (toRedis.kept === true || this.#guard.supersededSince(key, entry.createdAt, writing)))
        await this.dropLocal(key, justAfter(entry.createdAt))
      // Without a directory, a value Redis is not to hold (none, or too large) is stored if the
      // memory tier took it; one it refused (larger than memory.maxSize) is a counted drop.
      const onlyMemory = this.file === undefined && !shared
      const stored = toFile || toRedis.stored || (onlyMemory && inMemory)
      if (stored) this.#p.counters.counts.sets++
      else if (onlyMemory) this.#p.counters.counts.dropped++
      return stored
    } catch (unavailable) {
      // failOpen false: the caller hears it was not stored, so no tier here keeps it: nor the
      // file written beside a Redis write that failed (once that file is in place; this
      // write's, not a newer one's), or this instance alone would serve what others do not.
      this.memory?.delete(key)
      if (fileWrite !== false && local && (await fileWrite.catch(() => false)))
        await this.file!.dropIfOlder(key, justAfter(entry.createdAt)).catch(() => {})
      throw unavailable
    }
  }

  async #toFile(key: string, bytes: Buffer, createdAt: number, early?: Promise<OpenedTemp>, later?: number): Promise<boolean> {
    const counts = this.#p.counters.tiers.file!
    const started = performance.now()
    try {
      await this.file!.setBytes(key, bytes, early, later)
      this.file!.changed(key, createdAt)
      counts.sets++
      return true
    } catch (error) {
      this.#refusedByDisk(key, createdAt, error)
      this.#p.failures.writeFailed(error, 'file')
      return false
    } finally {
      counts.set.record(performance.now() - started)
    }
  }

  /** cache-aside: the local copy is dropped, not replaced. */
  async #dropFile(key: string, createdAt: number): Promise<false> {
    try {
      await this.file!.dropIfOlder(key, createdAt)
      this.file!.changed(key, createdAt)
    } catch (error) {
      this.#refusedByDisk(key, createdAt, error)
      this.#p.failures.writeFailed(error, 'file')
    }
    return false
  }

  /** Writes Redis, the script publishing `message` when the bus lets it (Bus.inline). */
  async #toRedis(key: string, bytes: Buffer, entry: TierEntry, message: Parameters<TierStackParts['announcement']>[0]): Promise<Sent> {
    const counts = this.#p.counters.tiers.redis!
    const started = performance.now()
    try {
      const sent = await this.redis!.set(key, bytes, entry.expiresAt, entry.grace, this.#p.announcement(message))
      counts.sets++
      if (sent.kept === true) return sent.announced ? SENT_KEPT_ANNOUNCED : SENT_KEPT
      return sent.announced ? SENT_ANNOUNCED : SENT
    } catch (error) {
      return this.#defer(error, key, { bytes, createdAt: entry.createdAt, expiresAt: entry.expiresAt, grace: entry.grace })
        ? DEFERRED
        : NOT_SENT
    } finally {
      counts.set.record(performance.now() - started)
    }
  }

  /**
   * A change Redis could not take (failOpen; with failOpen false the caller hears of it and
   * nothing is queued) waits in the write-back queue (write-back.ts) to be sent when Redis can
   * be reached again, unless memory is under pressure: an error, but not a drop unless the
   * queue lets it go. Its bus message is sent after it: a message that arrived first would let
   * the others read, and keep, the value Redis still held. Whether it was queued.
   */
  #defer(error: unknown, key: string, write: QueuedWrite): boolean {
    if (this.#p.writeBack === undefined || this.#p.underPressure()) {
      this.#p.failures.writeFailed(error, 'redis')
      return false
    }
    this.#p.failures.writeDeferred(error, 'redis')
    // A set marked as missed: a crash or close before Redis is back must not undo it (owedRemovals).
    this.#p.writeBack.enqueue(key, write.bytes === undefined ? write : { ...write, missed: true })
    this.#p.deferred()
    return true
  }

  /** A write not tried now (Redis has just failed this call's read): queued for when Redis
   *  answers, as a write it failed would be (#defer). */
  // eslint-disable-next-line @typescript-eslint/require-await -- async: a throw (failOpen false) arrives as a rejection, as #toRedis's would
  async #deferred(key: string, bytes: Buffer, entry: TierEntry): Promise<Sent> {
    const skipped = Object.assign(new Error('Redis failed this call’s read just now: its write waits in the queue'), { code: 'ETIMEDOUT' })
    const write = { bytes, createdAt: entry.createdAt, expiresAt: entry.expiresAt, grace: entry.grace }
    return this.#defer(skipped, key, write) ? DEFERRED : NOT_SENT
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so a throw from enqueue arrives as a rejection, as #toRedis's would
  async #queue(key: string, bytes: Buffer, entry: TierEntry): Promise<Sent> {
    this.#p.writeBack!.enqueue(key, { bytes, createdAt: entry.createdAt, expiresAt: entry.expiresAt, grace: entry.grace })
    return QUEUED
  }

  /** write-back's batch: sent in one tick (written to the connection one after another, none
   *  waiting for a reply), then published in one message. */
  async sendBatch(batch: Map<string, QueuedWrite>): Promise<void> {
    const counts = this.#p.counters.tiers.redis!
    const started = performance.now()
    const sent = await Promise.allSettled(
      [...batch].map(([key, w]) =>
        w.bytes === undefined ? this.redis!.delete(key, w.createdAt) : this.redis!.set(key, w.bytes, w.expiresAt, w.grace),
      ),
    )
    counts.set.record(performance.now() - started)
    const keys: [string, number][] = []
    const kept: [string, number][] = []
    let failure: unknown
    let i = 0
    for (const [key, w] of batch) {
      const result = sent[i++]!
      if (result.status === 'fulfilled') {
        if (w.bytes === undefined) {
          if (result.value === true) counts.deletes++
        } else {
          counts.sets++
          if ((result.value as Sent).kept === true) kept.push([key, w.createdAt])
        }
        keys.push([key, w.createdAt])
        batch.delete(key)
      } else failure ??= result.reason
    }
    if (keys.length > 0) this.#p.publish({ op: 'keys', keys })
    // Redis holds something newer than these writes: their local copies go (see write()).
    for (const [key, createdAt] of kept) await this.dropLocal(key, justAfter(createdAt))
    if (failure !== undefined) {
      counts.errors++
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows the Redis client's rejection reason as it came
      throw failure // what is left in the batch is put back
    }
  }

  /** Removes `key` from every tier; true if a live entry was there. `at`: the delete's time,
   *  taken when it was called (as a set's creation time is), so a change of the key called
   *  after it is newer than its tombstone, however long it waited for its turn. */
  async remove(key: string, at = this.#p.stamp()): Promise<boolean> {
    const tiers = this.#p.counters.tiers
    const inMemory = this.memory?.delete(key) === true
    if (inMemory) tiers.memory!.deletes++
    // A live write of this instance's still queued for Redis, which reads answer from once the
    // tiers above let it go (lookup): it was there.
    const held = this.#p.writeBack?.held(key)
    const inQueue = held?.bytes !== undefined && this.redis!.queuedLive(held.bytes)
    this.#p.writeBack?.forget(key)
    const [inFile, inRedis] = await Promise.all([
      this.file === undefined ? false : this.#removeFromFile(key, at),
      this.redis === undefined ? false : this.#removeFromRedis(key, at),
    ])
    // Redis may hold an entry this instance never read (no local copy): it was there too.
    // Without a directory, a live entry held in memory only (a write-back still queued, a
    // value too large for Redis) was there as well.
    return inFile || inRedis || inQueue || (this.file === undefined && inMemory)
  }

  /** Leaves a tombstone of `key` stamped `at` in Redis and publishes the change; a tombstone
   *  Redis cannot take now is queued, its message with it (#defer). */
  async #removeFromRedis(key: string, at: number, remove = (): Promise<boolean> => this.redis!.delete(key, at)): Promise<boolean> {
    let deferred = false
    const removed = await this.#removeFrom(
      'redis',
      remove,
      (error) => (deferred = this.#defer(error, key, { bytes: undefined, createdAt: at, expiresAt: 0, grace: 0 })),
    )
    if (!deferred) this.#p.publish({ op: 'keys', keys: [[key, at]] })
    return removed
  }

  /**
   * A change of `key` made at `at` that the disk refused. Under failOpen the caller is not
   * told (a counted drop) and goes on as if it was made, so the entry it was to replace must
   * not be served again (FileTier.refused). With `failOpen: false` the caller hears it failed
   * (ERR_UNAVAILABLE) and the key stays as it was, as a failed write leaves it anywhere.
   */
  #refusedByDisk(key: string, at: number, error: unknown): void {
    if (this.#p.options.failOpen && !isLarderError(error)) this.file!.refused(key, at)
  }

  /** Removes `key`'s entry file; one the disk would not remove is refused (#refusedByDisk). */
  #removeFromFile(key: string, at: number): Promise<boolean> {
    const file = this.file!
    return this.#removeFrom(
      'file',
      async () => {
        const deleted = await file.delete(key)
        file.changed(key, at)
        return deleted
      },
      (error) => {
        this.#refusedByDisk(key, at, error)
        this.#p.failures.writeFailed(error, 'file')
      },
    )
  }

  /** `failed`: what a failure means, instead of a counted drop (#defer). */
  async #removeFrom(tier: 'file' | 'redis', remove: () => Promise<boolean>, failed?: (error: unknown) => void): Promise<boolean> {
    try {
      const deleted = await remove()
      if (deleted) this.#p.counters.tiers[tier]!.deletes++
      return deleted
    } catch (error) {
      if (failed === undefined) this.#p.failures.writeFailed(error, tier)
      else failed(error)
      return false
    }
  }

  /**
   * A value too large for Redis (kept in the local tiers) replaced `key` here: Redis must not
   * go on serving the key's older value to the other instances (which drop their own copies on
   * hearing of this write, then read Redis), so a tombstone stamped as this write replaces it,
   * as a stream's does (removeShared): queued under write-back (its message goes when it is
   * sent), at once otherwise.
   */
  async #unshare(key: string, entry: TierEntry): Promise<Sent> {
    if (this.strategy === 'write-back' && !this.#p.underPressure()) {
      this.#p.writeBack!.enqueue(key, { bytes: undefined, createdAt: entry.createdAt, expiresAt: 0, grace: 0 })
      return DEFERRED
    }
    let held: 'removed' | 'none' | 'newer' | undefined
    await this.#removeFromRedis(key, entry.createdAt, async () => (held = await this.redis!.tombstone(key, entry.createdAt)) === 'removed')
    // Redis holds a newer value (another instance's, or a write stamped with an older readAt):
    // this one's local copies go, as when Redis keeps another value over a write that fits.
    return held === 'newer' ? { stored: false, announced: true, kept: true } : DEFERRED // announced: by #removeFromRedis, or once its deferred tombstone lands
  }

  /** A stream replaced `key` here at `at`: Redis must not serve an older value of it
   *  elsewhere (streams stay local), and the others drop their copies. */
  async removeShared(key: string, at: number): Promise<void> {
    if (this.redis === undefined) return
    this.#p.writeBack?.forget(key)
    await this.#removeFromRedis(key, at)
  }

  /** Removes the keys matching `pattern` (a key glob) from Redis (prune's and the CLI's
   *  `pattern`), and tells every instance: their local copies made before now go too, those
   *  Redis never held included (too large for it, or still queued for it: one `pattern`
   *  message), and so do the writes queued here for Redis. `at`: the removal's time, taken
   *  when it was called (a write called after it stays). */
  async removeSharedMatching(pattern: string, at: number): Promise<number> {
    const glob = new Glob(pattern)
    this.#p.writeBack?.forgetMatching((key) => glob.test(key), at)
    const removed = await this.redis!.removeMatching(pattern, at, (keys) =>
      this.#p.publish({ op: 'keys', keys: keys.map((key): [string, number] => [key, at]) }),
    )
    this.#p.publish({ op: 'pattern', pattern, at })
    return removed
  }

  /** Another instance removed the keys matching `pattern` at `at`: the writes queued for
   *  Redis, the memory tier's copies and (`pruneFiles`) the entry files made before then go.
   *  Nothing is promoted while the files go (as in clearLocal), and what memory took
   *  meanwhile goes after. */
  async dropMatching(pattern: string, at: number, pruneFiles: () => Promise<void>): Promise<void> {
    const glob = new Glob(pattern)
    const matches = (key: string): boolean => glob.test(key)
    this.#p.writeBack?.forgetMatching(matches, at)
    if (this.file === undefined) {
      this.memory?.dropMatching(matches, at)
      this.#validated?.clear()
      return
    }
    // A read-only instance removes nothing from its directory (README: readOnly): its reads
    // take every entry of a matching key older than the removal for a miss, left in place
    // (FileTier.heardRemovedMatching).
    const file = this.file
    if (this.#p.options.readOnly) return this.pruningFiles(matches, at, () => Promise.resolve(file.heardRemovedMatching(pattern, at)))
    await this.pruningFiles(matches, at, pruneFiles)
  }

  /** A prune that removes entry files by filter (`run`; here or heard on the bus): the memory
   *  tier's copies of keys that `may` match, made before `at`, go before and after it, and
   *  nothing is promoted while the files go. */
  async pruningFiles<T>(may: (key: string, entry: TierEntry) => boolean, at: number, run: () => Promise<T>): Promise<T> {
    this.memory?.dropMatching(may, at)
    this.#validated?.clear()
    this.#guard.hold()
    try {
      return await run()
    } finally {
      this.#guard.release()
      this.memory?.dropMatching(may, at)
    }
  }

  /** Clears `tier` (default: every tier) here and, through the bus, everywhere. A clear of
   *  Redis that Redis misses runs when it is back (only what is older than the clear goes),
   *  and its message waits for it: the others, hearing it first, would clear their copies and
   *  read the old values again from Redis. A cluster's pass that cleared some masters but
   *  could not finish (one down until its replica takes over, slots moving: Sweep) publishes
   *  at once (what went must not be served elsewhere meanwhile), and again once the rest is
   *  done. */
  async clear(tier: TierName | 'all' = 'all'): Promise<void> {
    const at = this.#p.stamp()
    await this.clearLocal(tier, at)
    if (this.redis === undefined) return
    if (tier === 'all' || tier === 'redis') {
      this.#p.writeBack?.forgetBefore(at)
      const sweep = this.redis.sweep()
      try {
        await this.redis.clear(sweep)
      } catch (error) {
        this.#p.failures.writeDeferred(error, 'redis')
        const before = this.#missedClear
        this.#missedClear = { at, tier: before?.tier === 'all' ? 'all' : tier, sweep, lost: before?.lost }
        this.#retryClear.schedule()
        if (!sweep.progressed) return
      }
    }
    this.#p.publish({ op: 'clear', tier, at })
  }

  /** Changes Redis missed were let go (write-back's bound let a tombstone go): every value in
   *  Redis created at or before `at` is removed once Redis can be reached, as a clear of Redis
   *  made then that Redis missed (misses on every host, never a value this one deleted). */
  oweRedisClear(at: number): void {
    if (this.redis === undefined) return
    const before = this.#missedClear
    // A sweep remembers the masters it saw: one begun for an older clear would skip them.
    const sweep = before !== undefined && before.at >= at ? before.sweep : this.redis.sweep()
    this.#missedClear = { at: Math.max(before?.at ?? at, at), tier: before?.tier === 'all' ? 'all' : 'redis', sweep, lost: true }
    this.#retryClear.schedule()
  }

  /** The time of the clear of Redis still owed, if any (close() leaves it for the next
   *  instance, facade/owed-to-redis.ts). */
  owedRedisClear(): number | undefined {
    return this.#missedClear?.at
  }

  /** Runs the clear Redis missed (see clear), then publishes it. Called when Redis is back. */
  async sendMissedClear(): Promise<void> {
    const missed = this.#missedClear
    if (missed === undefined || this.#sendingClear || this.#stopped || this.redis === undefined) return
    if (this.#p.redisOpen()) return // the breaker closing sends it
    this.#sendingClear = true
    try {
      await this.redis.clearBefore(missed.at, missed.sweep)
      if (this.#missedClear === missed) this.#missedClear = undefined
      this.#p.publish({ op: 'clear', tier: missed.tier, at: missed.at })
      // Let-go tombstones never sent their keys' messages: the others may hold copies of what
      // they deleted, and check what they hold against Redis, as after missed messages.
      if (missed.lost === true) this.#p.publish({ op: 'all', at: missed.at })
    } catch {
      this.#retryClear.schedule() // counted when it was called
    } finally {
      this.#sendingClear = false
    }
  }

  /** Stops retrying (close): the clear Redis missed, if any, is tried once more. */
  async stop(): Promise<void> {
    this.#retryClear.stop()
    await this.sendMissedClear()
    this.#stopped = true
  }

  /**
   * Clears this instance's memory tier and/or its directory. The files go one partition at a
   * time, and a read that begins meanwhile (a bus message is not in call order) may find an
   * entry the clear is about to remove and promote it into the memory tier, which would then
   * outlive the clear, and outlive a clear of memory heard while this one runs: so nothing is
   * promoted while the files go, nor by a read begun before they are gone (the guard's hold),
   * and with `'all'`, what the memory tier took meanwhile goes too.
   */
  async clearLocal(tier: TierName | 'all', at: number): Promise<void> {
    if (tier === 'all' || tier === 'memory') this.memory?.clearOlder(at)
    if ((tier === 'all' || tier === 'file') && this.file !== undefined) {
      // A read-only instance removes nothing from its directory (README: readOnly): its reads
      // take every entry older than the clear for a miss, left in place (FileTier.heardCleared).
      if (this.#p.options.readOnly) return this.file.heardCleared(at)
      // The writes queued for Redis stay: only a clear of Redis forgets them (clear(), and
      // remote-changes.ts for one heard), else a clear of the files lost sets already resolved.
      this.#guard.hold()
      try {
        await this.file.clear()
      } catch (error) {
        // Under failOpen the caller goes on as if the files were cleared: none older may be read.
        if (this.#p.options.failOpen && !isLarderError(error)) this.file.clearRefused(at)
        this.#p.failures.writeFailed(error, 'file')
      } finally {
        this.#guard.release()
      }
      if (tier === 'all') this.memory?.clearOlder(at)
    }
  }

  // ── the bus ───────────────────────────────────────────────────────────────

  /** Another instance changed `key` at `at`: local copies (and a write queued here) older
   *  than that go, and reads in flight must not promote an older one. One of the same time (a
   *  copy of that very write, or another instance's stamped alike) stays: of two writes
   *  stamped alike Redis keeps the first to arrive, and the other's writer drops its copies
   *  when Redis answers (write()). */
  async dropLocal(key: string, at: number): Promise<void> {
    this.#guard.heard(key, at)
    this.#p.writeBack?.forgetIfOlder(key, at)
    this.memory?.dropIfOlder(key, at)
    this.#validated?.delete(key)
    if (this.file === undefined) return
    // A read-only instance removes nothing from its directory, nor notes the change there: its
    // reads take the older entry for a miss, left in place (FileTier.heardRemoved).
    if (this.#p.options.readOnly) return this.file.heardRemoved(key, at)
    // A failing disk (the breaker counts it): the older entry must still not be read here,
    // and goes when the disk lets it (FileTier.refused), as for a change of this instance's.
    await this.file.dropIfOlder(key, at).catch(() => this.file!.refused(key, at))
    // A read begun while the file was removed may have found it and promoted it (see clearLocal).
    this.#guard.heard(key, at)
    this.memory?.dropIfOlder(key, at)
  }

  /** Another instance cleared Redis at `at`: the writes queued here for Redis made before
   *  then are forgotten (sent, they would put back what the clear removed). */
  forgetQueuedBefore(at: number): void {
    this.#p.writeBack?.forgetBefore(at)
  }

  /** Another instance changed what no key names (a clear, tags): reads in flight must not
   *  promote what they read. */
  heardAll(): void {
    this.#guard.heardAll()
  }

  /** The outage rule (see the class comment): from now on, older local entries are checked. */
  revalidate(): void {
    this.#guard.heardAll()
    // This clock's time, not the wall clock's: it runs ahead of it after hearing of a change
    // stamped by a host whose clock is ahead, and the entries written here since carry it.
    this.#revalidateBefore = this.#p.stamp()
    this.#validated?.clear()
    this.memory?.clear()
  }
}
