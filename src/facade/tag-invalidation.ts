import type { DiskParts } from './disk-parts.js'
import type { Failures } from './failures.js'
import type { SharedParts } from './shared-parts.js'
import type { CreationClock } from '../store/creation-clock.js'
import { MemoryTagClock } from '../store/memory-tag-clock.js'
import type { TagClock } from '../store/tag-clock.js'
import type { HeldTagStamps } from '../tiers/memory-tier.js'
import { RetrySoon } from '../resilience/retry-soon.js'
import { isLarderError } from '../errors.js'
import { oldestKey } from '../oldest-key.js'

/** Tags whose stamps wait for Redis, at most (the oldest go first past it). */
const PENDING_MAX = 10_000
/** Stamps remembered to raise again in a Redis that lost them, at most (see `#known`). */
const KNOWN_MAX = 10_000
/** Time a merge of a read of Redis's stamps works before it gives the event loop a turn. */
const MERGE_SLICE_MS = 10
/** Tags of one invalidation merged in one call, at most (time is checked between calls). */
const TAGS_PER_CALL = 100
/** Stamps sorted at once, on average, when a read of Redis's is merged oldest first. */
const STAMPS_PER_BUCKET = 1000
/** Stamps per script call when sending what waited. */
const STAMPS_PER_CALL = 500

/**
 * The stamps Redis holds are bounded as the directory's are (maintenance/stamp-fold.ts): an
 * instance whose read of them finds more than `max` folds the oldest, so `keep` remain. It
 * raises the floor (`<prefix><ns>:\0tagfloor`) first, then removes the stamps at or below it
 * (each checked in the script, so one raised meanwhile stays). Every reader takes the floor
 * after the stamps, into its clock: every tagged entry created at or before it is stale there
 * (more misses, never an invalidated value), and no instance raises again a stamp at or below
 * it (`#restore`). The hash otherwise grows by a field per tag ever invalidated in the fleet,
 * and every instance reads it whole at open. Mutable for tests only.
 */
export const redisStampLimits = { max: 100_000, keep: 90_000 }

export interface TagInvalidationParts {
  disk: DiskParts | undefined
  /** Read when used: the shared parts are composed after this. */
  shared(): SharedParts | undefined
  clock(): CreationClock
  failures: Failures
  readOnly: boolean
  failOpen: boolean
  /** A stamp Redis could not take is held (#hold): recorded in the directory, so a crash
   *  before Redis is back does not lose it (facade/owed-to-redis.ts). */
  held(): void
}

/**
 * Tag invalidation across the tiers: the local tag clock (the directory's stamps, shared by
 * every process using it, or, with `dir: false`, one in process memory), the stamps kept in
 * Redis (so an instance that starts later, or comes back from an outage, sees old
 * invalidations) and the bus message that tells the other instances now.
 */
export class TagInvalidation {
  /** The local tag clock the creation clock and the memory tier read. */
  readonly clock: TagClock | MemoryTagClock
  readonly #p: TagInvalidationParts
  /** Stamps Redis could not take when they were made: tag → the latest time. Sent again when
   *  Redis can be reached (sendPending), or an instance that starts later would never see them
   *  (the bus message reaches only the instances listening then). */
  #pending = new Map<string, number>()
  /** The latest stamp of each tag this instance made, heard of or read from Redis (the least
   *  recently raised go first past KNOWN_MAX). A Redis that restarted without persistence has
   *  lost its stamps, and an instance that starts later would honour none of them: when a read
   *  of the stamps shows one of these missing or lower, it is raised again (`#restore`). */
  readonly #known = new Map<string, number>()
  #sending: Promise<void> | undefined
  /** A stamp that failed while the breaker stayed closed is sent again soon; while it is open,
   *  the recovery sends it. */
  readonly #retry = new RetrySoon(() => void this.sendPending())
  /** One function, so a sync asked for again before the connection is ready waits once. */
  readonly #syncLater = (): void => (this.#stampsOwed ? this.resync() : void this.syncFromShared())
  /** Messages were missed and the stamps Redis holds have not been read since (resync). */
  #stampsOwed = false
  /** resync() calls so far: a read of the stamps begun before the last one does not pay them. */
  #resyncs = 0
  #closed = false
  /** Set from a resync() until its read of the stamps has merged them, or failed: reads below
   *  the memory tier wait for it (see `resyncing`). */
  #resyncing: Promise<void> | undefined
  /** Resyncs waiting for the next read of the stamps to be sent and answered. */
  #afterNextSync: (() => void)[] = []
  /** The read of the stamps in flight, if any (see `reading`). */
  #reading: Promise<void> | undefined
  /** Reads of the stamps begun so far, and how many had begun when the stamps were last owed
   *  (`#owe`): only a read begun after that pays them. */
  #reads = 0
  #owedAfter = 0
  /** A read of the stamps that failed while the breaker stayed closed (one timeout, a refusal)
   *  is sent again soon: no recovery would send it, and tagged entries miss until it lands. Not
   *  a resync: the reads do not wait for it, the stamps owed keep what it brings from them. */
  readonly #retryRead = new RetrySoon(() => void this.syncFromShared())

  constructor(parts: TagInvalidationParts) {
    this.#p = parts
    this.clock = parts.disk?.tags ?? new MemoryTagClock()
  }

  /** Whether any of `tags` was invalidated at or after `createdAt`, for the memory tier and
   *  for loads, where a disk error must not throw: a failing clock counts as stale. */
  isStaleSafe(tags: readonly string[], createdAt: number): boolean {
    try {
      return this.clock.isStale(tags, createdAt)
    } catch {
      return true
    }
  }

  /**
   * The memory tier's view of the tag stamps (tiers/memory-tier.ts): a hit asks the stamps
   * held, with no syscall; `look()`, on the tier's change-log cadence, is when another
   * process's invalidation is seen. This instance's own are held as they are made. A failing
   * clock counts as stale, as isStaleSafe says.
   */
  readonly held: HeldTagStamps = {
    isStale: (tags, createdAt) => {
      try {
        return this.clock.isStaleHeld(tags, createdAt)
      } catch {
        return true
      }
    },
    look: () => {
      try {
        this.clock.look()
      } catch {
        // a failing disk: no stamp is held now, so each is read again (and fails as stale)
      }
    },
  }

  /** `invalidateTags()`: stamps the tags here (a failure is the caller's, as failOpen says),
   *  raises their stamps in Redis and tells the other instances. */
  async invalidate(tags: readonly string[], at: number): Promise<void> {
    await this.recordLocal(tags, at, true)
    const shared = this.#p.shared()
    if (shared === undefined) return
    try {
      await shared.recordTags(tags, at)
    } catch (error) {
      this.#hold(tags, at)
      this.#p.failures.writeDeferred(error, 'redis') // kept, sent again: not a drop
    }
    shared.bus?.publish({ op: 'tags', tags: [...tags], at })
  }

  /** Raises in Redis the stamps it could not take before (Redis is back, or a retry); asked
   *  while a pass runs, that pass (the bus waits for it before its queued messages go out). */
  sendPending(): Promise<void> {
    if (this.#sending !== undefined) return this.#sending
    const shared = this.#p.shared()
    if (shared === undefined || this.#closed || this.#pending.size === 0) return Promise.resolve()
    if (shared.breaker.state === 'open') return Promise.resolve() // the breaker closing calls this again
    const pending = this.#pending
    this.#pending = new Map()
    this.#sending = this.#send(shared, pending).finally(() => {
      this.#sending = undefined
    })
    return this.#sending
  }

  async #send(shared: SharedParts, pending: Map<string, number>): Promise<void> {
    const stamps = [...pending]
    for (let i = 0; i < stamps.length; i += STAMPS_PER_CALL) {
      const some = stamps.slice(i, i + STAMPS_PER_CALL)
      try {
        await shared.recordStamps(some)
      } catch {
        for (const [tag, at] of some) this.#hold([tag], at) // counted when it was made
      }
    }
  }

  /** Keeps stamps Redis could not take, to send them again (bounded: the oldest go first). */
  #hold(tags: readonly string[], at: number): void {
    for (const tag of tags) {
      const before = this.#pending.get(tag) ?? 0
      this.#pending.delete(tag)
      this.#pending.set(tag, Math.max(before, at))
    }
    while (this.#pending.size > PENDING_MAX) {
      this.#pending.delete(oldestKey(this.#pending)!)
      this.#p.failures.dropped('redis')
    }
    this.#retry.schedule()
    this.#p.held()
  }

  /** Remembers the latest stamp of each of `tags` (see `#known`). */
  #know(tags: readonly string[], at: number): void {
    for (const tag of tags) {
      const before = this.#known.get(tag)
      if (before !== undefined && before >= at) continue
      this.#known.delete(tag)
      this.#known.set(tag, at)
    }
    while (this.#known.size > KNOWN_MAX) this.#known.delete(oldestKey(this.#known)!)
  }

  /** Raises again in Redis the stamps known here that `shared` (what Redis holds) lacks or
   *  holds lower: a Redis that restarted empty, and whatever instance starts after it. */
  #restore(shared: Map<string, number>, floor: number): void {
    let missing = false
    for (const [tag, at] of this.#known) {
      if (at <= floor || (shared.get(tag) ?? 0) >= at) continue // at or below the floor: folded, not lost
      this.#pending.set(tag, Math.max(this.#pending.get(tag) ?? 0, at))
      missing = true
    }
    if (missing) void this.sendPending()
  }

  /** Stamps still waiting for Redis. */
  get pending(): number {
    return this.#pending.size
  }

  /** The stamps still waiting for Redis: tag and time (close() leaves them for the next
   *  instance, facade/owed-to-redis.ts). */
  pendingStamps(): [string, number][] {
    return [...this.#pending]
  }

  /** Stops retrying (close). */
  close(): void {
    this.#closed = true
    this.#retry.stop()
    this.#retryRead.stop()
    for (const answer of this.#afterNextSync.splice(0)) answer()
  }

  /** Records tag invalidations in the local tag clock. `counted`: this instance's own call,
   *  whose failure is counted and judged; otherwise (heard from elsewhere) only the tags not
   *  already stamped as late are written, and a failure is left to the next sync. `read`: from
   *  a read of the stamps Redis holds (at open, after an outage), not heard on the bus. */
  async recordLocal(tags: readonly string[], at: number, counted: boolean, read = false): Promise<void> {
    this.#know(tags, at)
    const disk = this.#p.disk
    if (disk === undefined) return (this.clock as MemoryTagClock).invalidate(tags, at)
    // A read-only instance writes nothing: what it reads from Redis or hears on the bus is held
    // by its clock, so its reads count it (bounded, as stamps a failing disk refused are).
    if (this.#p.readOnly) return disk.files.holdUnwritten(tags, at)
    // Read from Redis and older than every entry of the directory (a new host joining a fleet
    // whose Redis holds years of stamps): no entry here needs it, so nothing is written; held
    // for this instance's reads of Redis entries, which can be older (store/entries-since.ts).
    // One heard on the bus is written whatever its time: few, and one older than the record is
    // a sign of clocks that disagree.
    if (read && at < disk.tags.entriesSince) return disk.files.holdUnwritten(tags, at)
    const writing = counted ? tags : tags.filter((t) => !disk.tags.recordsExactly(t, at) && !this.isStaleSafe([t], at))
    try {
      await disk.files.invalidateTags(writing, at)
    } catch (error) {
      // Not on disk: held by this instance's clock until the disk takes it (FileTier), so the
      // entries it invalidates are not served here meanwhile: its own invalidation (failOpen
      // told the caller it was made), and always one heard from another instance.
      if (!counted || (this.#p.failOpen && !isLarderError(error))) disk.files.holdUnwritten(writing, at)
      if (counted) this.#p.failures.writeFailed(error)
    }
  }

  /**
   * The bus missed messages (it subscribed again, went silent, or a sender's outbox overflowed
   * into one `all` message): tag invalidations made meanwhile are known only from the stamps
   * Redis holds. They are owed until read again, and while a read of them is on its way the
   * stack's reads wait (the outage rule checks a local entry's version against Redis, and an
   * invalidation by tag leaves the version as it was: without the stamps such an entry would
   * pass). Only while Redis can answer: with the command connection down, reads fail open at
   * once, and the stamps are read (reads held again) as soon as it is back, before the bus
   * may be. Bounded by the read itself, not by a clock: each of its commands fails past
   * commandTimeout (or the breaker's timeout), and a failure lets the reads go at once (the
   * stamps stay owed; the connection or breaker coming back reads them again). A timer here
   * let reads go while a slow read (a loaded host, 40,000 stamps) was still merging: they
   * served entries the stamps not merged yet had invalidated.
   */
  resync(): void {
    const shared = this.#p.shared()
    if (shared === undefined || this.#closed) return
    this.#stampsOwed = true
    this.#resyncs++
    if (shared.client.status !== 'ready') {
      this.#owe()
      return shared.whenReady(this.#syncLater)
    }
    const gate = new Promise<void>((resolve) => this.#afterNextSync.push(resolve))
    this.#resyncing = gate
    void gate.then(() => {
      if (this.#resyncing === gate) this.#resyncing = undefined
    })
    void this.syncFromShared()
  }

  /** Redis answers again (the breaker closed): the stamps, held reads first if they are owed. */
  recovered(): void {
    this.#syncLater()
  }

  /** What reads below the memory tier wait for: a resync in progress (undefined: none). */
  get resyncing(): Promise<void> | undefined {
    return this.#resyncing
  }

  /** The tag stamps Redis holds, merged into the local clock (at open and after an outage:
   *  invalidations made while this instance was away). */
  async syncFromShared(): Promise<void> {
    const shared = this.#p.shared()
    if (shared === undefined) return
    if (shared.client.status !== 'ready') {
      this.#owe() // at open, Redis not reachable: the stamps it holds are owed
      return shared.whenReady(this.#syncLater)
    }
    // Only a read sent from now on answers the resyncs made so far: one already in flight may
    // have been answered before the invalidations they wait for.
    const reading = this.#read(shared, this.#afterNextSync.splice(0), this.#resyncs)
    this.#reading = reading
    try {
      await reading
    } finally {
      if (this.#reading === reading) this.#reading = undefined
    }
  }

  /** A read of the stamps in flight (open() joins it rather than send another). */
  get reading(): Promise<void> | undefined {
    return this.#reading
  }

  async #read(shared: SharedParts, answers: (() => void)[], resyncs: number): Promise<void> {
    const read = ++this.#reads
    try {
      let stamps: Map<string, number>
      let floor: number
      try {
        stamps = await shared.tagStamps()
        floor = await shared.tagFloor() // after the stamps: see redisStampLimits
      } catch {
        this.#owe()
        if (shared.breaker.state !== 'open') this.#retryRead.schedule() // open: its closing reads them
        return // Redis unreachable, or too slow
      }
      if (floor > 0) this.clock.holdFloor(floor)
      if (!this.#p.readOnly) this.#restore(stamps, floor) // a read-only instance raises nothing in Redis
      this.#p.disk?.refreshEntriesSince() // another instance may have lowered the record since
      // Oldest first: past what the clock holds unwritten (a read-only instance's), the oldest
      // are let go first, and the floor they raise is as low as it can be (TagClock.holdUnwritten).
      // A fleet's history is 100,000s of stamps: sorted a bucket of times at a time, and merged
      // giving the event loop a turn every MERGE_SLICE_MS (each recordLocal settles at once, so
      // the awaits alone would never give it one). By time, not by count: with a directory each
      // stamp newer than its entries is a synchronous write of three inodes, and 2,000 of them
      // held the loop for seconds. The reads waiting for the merge wait for all of it (answers).
      let sliceFrom = performance.now()
      for (const bucket of timeBuckets(stamps)) {
        bucket.sort((a, b) => a[1] - b[1])
        for (let i = 0; i < bucket.length;) {
          const at = bucket[i]![1]
          const tags: string[] = []
          // one invalidation's tags together, up to TAGS_PER_CALL
          for (; i < bucket.length && bucket[i]![1] === at && tags.length < TAGS_PER_CALL; i++) tags.push(bucket[i]![0])
          this.#p.clock().observe(at)
          await this.recordLocal(tags, at, false, true)
          if (performance.now() - sliceFrom >= MERGE_SLICE_MS) {
            await new Promise((resolve) => setImmediate(resolve))
            sliceFrom = performance.now()
          }
        }
      }
      if (resyncs === this.#resyncs) this.#stampsOwed = false
      if (read > this.#owedAfter) this.clock.owed.paid() // begun after the last failure: it brought what that one owed
      // Not waited for: the clock's floor is held at once, and neither open() nor the reads
      // waiting for a resync need Redis's (200,000 stamps: ~250 ms of script calls).
      if (!this.#p.readOnly && stamps.size > redisStampLimits.max) void this.#fold(shared, stamps)
    } finally {
      for (const answer of answers) answer()
    }
  }

  /** The stamps Redis holds could not be read now: until a read begun after this one merges
   *  them, tagged entries made until now are misses here (store/owed-stamps.ts). The time is
   *  the creation clock's, so every entry made from now on is after it. */
  #owe(): void {
    if (this.#closed) return
    this.#owedAfter = this.#reads
    this.clock.owed.owe(Math.max(Date.now(), this.#p.clock().latest))
  }

  /** Folds the oldest of `stamps` (a read of the hash that found more than the bound): this
   *  clock's floor first, then Redis's (see redisStampLimits). A failure leaves the rest for
   *  the next read that finds too many. */
  async #fold(shared: SharedParts, stamps: Map<string, number>): Promise<void> {
    const floor = foldFloor(stamps, redisStampLimits.keep)
    this.clock.holdFloor(floor)
    const tags: string[] = []
    for (const [tag, at] of stamps) if (at <= floor) tags.push(tag)
    try {
      await shared.foldTagStamps(floor, tags)
    } catch {
      // Redis unreachable, or a script refused: the next read folds them
    }
  }
}

/** The time at or below which the oldest stamps of `stamps` are folded so that `keep` remain. */
function foldFloor(stamps: Map<string, number>, keep: number): number {
  const times = Float64Array.from(stamps.values()).sort()
  return times[Math.max(0, times.length - Math.max(1, keep) - 1)]!
}

/** The stamps in buckets of neighbouring times, oldest bucket first, about STAMPS_PER_BUCKET
 *  each: the bounds are a sorted sample of the times, so a few far from the rest (last week's
 *  stamps beside years of them) do not put everything in one bucket. One pass, where a sort of
 *  them all would hold the thread for a fifth of a second at 200,000. */
function timeBuckets(stamps: Map<string, number>): [tag: string, at: number][][] {
  const count = Math.max(1, Math.ceil(stamps.size / STAMPS_PER_BUCKET))
  const times = [...stamps.values()]
  const stride = Math.max(1, Math.floor(times.length / (count * 4)))
  const sample: number[] = []
  for (let i = 0; i < times.length; i += stride) sample.push(times[i]!)
  sample.sort((a, b) => a - b)
  // bounds[k]: the least time of bucket k + 1
  const bounds: number[] = []
  for (let k = 1; k < count; k++) bounds.push(sample[Math.floor((k * sample.length) / count)]!)
  const buckets: [string, number][][] = Array.from({ length: count }, () => [])
  for (const [tag, at] of stamps) {
    let low = 0
    let high = bounds.length
    while (low < high) {
      const middle = (low + high) >> 1
      if (bounds[middle]! <= at) low = middle + 1
      else high = middle
    }
    buckets[low]!.push([tag, at])
  }
  return buckets
}
