import { LRUCache } from 'lru-cache'
import { alwaysLive, entryState } from '../store/liveness.js'
import { admittedToMemory } from '../resilience/memory-watch.js'
import { RandomVictims } from './random-victims.js'
import { EVERYTHING, type ChangeProgress, type ChangesSeen } from '../store/change-clock.js'
import { MISS, type Tier, type TierEntry, type TierRead } from './tier.js'
import { PromotionGuard } from './promotion-guard.js'
import { UnsettledChanges } from './unsettled-changes.js'

export interface MemoryTierBounds {
  maxEntries: number | undefined
  maxSize: number | undefined
  ttl: number
  /** `'random'`: when full, a random entry makes room; otherwise the least recently used. */
  eviction: 'lru' | 'random'
  /** Memory pressure is watched: admissions are reported (resilience/memory-watch.ts). */
  watched: boolean
}

/** What a shed dropped, and the bound it left in place while the pressure lasts. */
export interface Shed {
  entries: number
  bytes: number
}

/**
 * An entry as held: a read's shape (so a hit returns it as it is, allocating nothing), and
 * `answer`, the promise get() hands every hit of it (see `answerOf`). A write's JSON value is
 * parsed at its first read (TierEntry.valueText): an ORM caching every result it fetched
 * reads few of them back, and the parse was a quarter of a memory-tier set's CPU.
 */
class Held implements TierEntry {
  readonly found = true
  readonly stale = false
  answer: Promise<unknown> | undefined = undefined
  readonly createdAt: number
  readonly expiresAt: number
  readonly tags: readonly string[]
  readonly grace: number
  readonly size: number
  #value: unknown
  #text: string | undefined

  constructor(entry: TierEntry) {
    this.createdAt = entry.createdAt
    this.expiresAt = entry.expiresAt
    this.tags = entry.tags
    this.grace = entry.grace
    this.size = entry.size
    this.#value = entry.value
    this.#text = entry.valueText
  }

  get value(): unknown {
    if (this.#text !== undefined) {
      this.#value = JSON.parse(this.#text)
      this.#text = undefined
    }
    return this.#value
  }
}

/** What tells a memory tier which keys another process (or instance) wrote: store/change-clock.ts. */
export interface ChangeSignal {
  changesElsewhere(progress?: ChangeProgress): ChangesSeen
}

/**
 * The tag stamps as a memory-tier hit sees them (facade/tag-invalidation.ts): `isStale` asks
 * the stamps held, with no syscall; `look()` is when another process's invalidations are
 * seen, and the tier calls it on the change log's cadence. This instance's own invalidations
 * are held at once.
 */
export interface HeldTagStamps {
  isStale(tags: readonly string[], createdAt: number): boolean
  look(): void
}

/** Another process's write is seen by a hit at most this long after it resolved. */
export const CHANGE_CHECK_MS = 5
/** Keys named by the change log whose latest look is remembered for the reads in flight (a
 *  read spans a look or two; one begun before a key forgotten may not store its value). */
const NAMED_MAX = 1024
/** …and by at most this many hits that run without the event loop turning (the timer that
 *  marks a check due cannot fire in such a run, so every this-many hits read the clock). Any
 *  other call of this tier in such a run reads the clock itself (#notePassingTime). */
const HITS_PER_CLOCK_READ = 16

/**
 * The in-process tier in front of the files: an lru-cache holding decoded values, so a hit
 * costs a map lookup and no deserialization. The facade stores what the serializer gives
 * back (never the caller's own object), so a value reads the same from here as from disk;
 * hits share it: treat what the cache returns as immutable. Write-through: every set lands
 * here and on disk; a disk hit is promoted here. An entry that is no longer live
 * (store/liveness.ts: expired, or invalidated by a tag, as the tag stamps held say) is
 * dropped when found.
 *
 * Other processes write to the same files behind this tier's back. So a hit looks at the
 * namespace's change log (one `stat`) when CHANGE_CHECK_MS have passed since the last look,
 * and when it shows writes by anyone else, the values of the keys they wrote are dropped and
 * read again from disk on their next get (every held value, when the log says "everything":
 * a clear, a rotated log, more than 64 KiB of records since the last look). The same look is
 * when the tag stamps held are checked against the tags directory (one `fstat`): another
 * process's tag invalidation is seen on this cadence too, and between looks a hit of a tagged entry makes no syscall (this instance's own
 * invalidations are held at once). Knowing a look is due costs a hit nothing: an unref'd timer marks it,
 * and so does a clock read once in HITS_PER_CLOCK_READ hits, for runs of hits (awaited in a
 * loop, say) during which the timer cannot fire; and every call that is not a hit (a miss, a
 * write, a removal) reads the clock too, since small entries are read and written
 * synchronously and a run of such calls keeps the timer from firing just the same.
 * `memory.ttl` bounds a value's time here on top of this.
 *
 * A read from disk takes a ticket (`ticket`) before it starts and stores its value only if no
 * look since named its key (or said "everything"): a value read before another process's write
 * landed must not be held after this tier has already looked past that write. A look that
 * names other keys leaves the read alone (a PromotionGuard of the keys named, in which every
 * change counts as newer than any entry). Nor is a value read while another process's change
 * of its key is in progress held (UnsettledChanges): the change log's record before the change
 * was heard, and the one after it not yet.
 */
export class MemoryTier implements Tier {
  readonly name = 'memory'
  // Replaced whole by resize() (configure()): lru-cache's bounds are fixed at its construction.
  #lru: LRUCache<string, Held>
  #maxEntries: number | undefined
  #maxSize: number | undefined
  readonly #stamps: HeldTagStamps
  readonly #changes: ChangeSignal
  readonly #timer: NodeJS.Timeout
  /** A look at the change log is due (set by the timer). */
  #due = true
  #lookedAt = 0
  #hits = 0
  /** The keys the looks named, for the tickets of reads in flight. */
  readonly #named = new PromotionGuard(NAMED_MAX)
  /** Other writers' changes the looks found begun and not yet ended: their keys are not
   *  promoted meanwhile. */
  readonly #unsettled = new UnsettledChanges()
  /** `eviction: 'random'`: the keys held, to draw a victim from. */
  #random: RandomVictims | undefined
  /** Under memory pressure: the most entries and bytes held (see shed()); none otherwise. */
  #cap: Shed | undefined
  readonly #watched: boolean
  /** Told of each entry a read found expired or invalidated and dropped. */
  readonly #dead: ((entry: TierEntry) => void) | undefined

  /** `dead`: told of each entry a read finds no longer live (the cache counts it as `expired`
   *  where no tier below would find it again: see CacheParts). */
  constructor(bounds: MemoryTierBounds, tags: HeldTagStamps, changes: ChangeSignal, dead?: (entry: TierEntry) => void) {
    const { lru, random } = boundedCache(bounds)
    this.#lru = lru
    this.#random = random
    this.#maxEntries = bounds.maxEntries
    this.#maxSize = bounds.maxSize
    this.#watched = bounds.watched
    this.#stamps = tags
    this.#changes = changes
    this.#dead = dead
    this.#timer = setTimeout(() => {
      this.#due = true
    }, CHANGE_CHECK_MS)
    this.#timer.unref()
  }

  /** The fresh entry for `key`, or MISS (an expired or invalidated one is dropped, and so is
   *  every key another process wrote). */
  get(key: string): TierRead {
    const entry = this.#lru.get(key)
    if (entry === undefined) {
      this.#notePassingTime()
      return MISS
    }
    if ((this.#due || (this.#hits = (this.#hits + 1) & (HITS_PER_CLOCK_READ - 1)) === 0) && this.#droppedByLook(key)) return MISS
    if (!alwaysLive(entry) && !this.#stillLive(key, entry)) {
      this.#notePassingTime()
      return MISS
    }
    return entry
  }

  /** Whether an entry with an expiry or tags is still live (else it is dropped). The clock is
   *  read only for an entry that expires: a clock read costs as much as the rest of a hit
   *  (~115-175 ns here), and a tagged entry without a ttl (every Keyv entry) needs none. */
  #stillLive(key: string, entry: Held): boolean {
    if (entryState(entry, entry.expiresAt === 0 ? 0 : Date.now(), this.#stamps) === 'live') return true
    this.#remove(key)
    this.#dead?.(entry)
    return false
  }

  /** A ticket for a read about to go to disk: pass it to set(). */
  get ticket(): number {
    return this.#named.ticket()
  }

  /** Holds `entry`, unless a look since `ticket` was taken named its key (another process
   *  wrote it, or the log could not say which keys) or another process's change of it is in
   *  progress (a promotion: with a ticket); whether it did. */
  set(key: string, entry: TierEntry, ticket?: number): boolean {
    this.#notePassingTime()
    const bytes = this.#maxSize !== undefined || this.#watched ? footprint(key, entry.size) : 0
    // An entry bigger than the whole tier would evict everything else for nothing.
    if (
      (ticket !== undefined && this.#unsettled.size !== 0 && this.#unsettledAt(key)) ||
      (ticket !== undefined && !this.#named.mayPromote(key, entry.createdAt, ticket)) ||
      (this.#maxSize !== undefined && bytes > this.#maxSize)
    ) {
      this.#remove(key)
      return false
    }
    if ((this.#random !== undefined || this.#cap !== undefined) && !this.#lru.has(key) && !this.#makeRoom(bytes)) return false
    this.#lru.set(key, new Held(entry))
    this.#random?.add(key)
    if (this.#watched) admittedToMemory(bytes)
    return true
  }

  /**
   * Room for a new entry of `size` bytes (its footprint), made before lru-cache would make it
   * (by dropping its least recently used entry): under `'random'`, a random entry goes instead
   * while the tier is full; under memory pressure, entries go until the tier is within the
   * bound its last shed left. False when nothing can be dropped and the entry does not fit (a
   * cap of 0 entries).
   */
  #makeRoom(size: number): boolean {
    const cap = this.#cap
    const full = (): boolean =>
      (this.#maxEntries !== undefined && this.#lru.size >= this.#maxEntries) ||
      (this.#maxSize !== undefined && this.#lru.calculatedSize + size > this.#maxSize) ||
      (cap !== undefined &&
        (this.#lru.size + 1 > cap.entries || (this.#maxSize !== undefined && this.#lru.calculatedSize + size > cap.bytes)))
    while (full()) {
      if (this.#lru.size === 0) return false
      const victim = this.#random?.draw()
      if (victim === undefined) this.#lru.pop()
      else this.#remove(victim)
    }
    return true
  }

  /**
   * Memory pressure: drops the least recently used entries until `keep` (a share) of the
   * entries (and, with `maxSize`, of the bytes) held remain, and holds the tier to that until
   * relieve(): a new entry then takes the place of an old one instead of adding to the heap.
   * Each shed while the pressure lasts lowers the bound again. What it dropped.
   */
  shed(keep: number): Shed {
    const entriesBefore = this.#lru.size
    const bytesBefore = this.#lru.calculatedSize
    const cap = { entries: Math.floor(entriesBefore * keep), bytes: Math.floor(bytesBefore * keep) }
    while (this.#lru.size > cap.entries || (this.#maxSize !== undefined && this.#lru.calculatedSize > cap.bytes)) this.#lru.pop()
    this.#cap = cap
    return { entries: entriesBefore - this.#lru.size, bytes: bytesBefore - this.#lru.calculatedSize }
  }

  /** The pressure is over: the configured bounds apply again. */
  relieve(): void {
    this.#cap = undefined
  }

  /**
   * New bounds or eviction (`configure()`), applied at once: the held entries move to a cache
   * with the new bounds, least recently used first, so what no longer fits is what the policy
   * would have evicted; an entry keeps what is left of its time here, cut to a shorter new
   * `ttl`. Synchronous: no read sees a half-moved tier. Tickets stay valid: nothing was learnt
   * about other writers. A shed's cap (memory pressure) stays until relieve().
   */
  resize(bounds: Omit<MemoryTierBounds, 'watched'>): void {
    const old = this.#lru
    const { lru, random } = boundedCache(bounds)
    this.#lru = lru
    this.#random = random
    this.#maxEntries = bounds.maxEntries
    this.#maxSize = bounds.maxSize
    for (const key of [...old.rkeys()]) {
      const entry = old.peek(key)
      if (entry === undefined || (bounds.maxSize !== undefined && footprint(key, entry.size) > bounds.maxSize)) continue
      if (random !== undefined && !this.#makeRoom(footprint(key, entry.size))) continue
      const remaining = old.getRemainingTTL(key)
      if (bounds.ttl > 0) lru.set(key, entry, { ttl: Math.min(bounds.ttl, remaining) })
      else lru.set(key, entry)
      random?.add(key)
    }
  }

  /** Removes `key`; whether a live entry was held (an expired or invalidated one goes too, but
   *  was not there to delete, as the file tier answers). */
  delete(key: string): boolean {
    this.#notePassingTime()
    const entry = this.#lru.peek(key, { allowStale: true })
    if (entry === undefined) return false
    const live = alwaysLive(entry) || entryState(entry, entry.expiresAt === 0 ? 0 : Date.now(), this.#stamps) === 'live'
    this.#remove(key)
    return live
  }

  /**
   * Removes `key`. lru-cache empties itself when the entry deleted is its last, and emptying
   * fills every slot it allocated for `maxEntries` (O(maxEntries): ~0.3 ms of CPU at 100,000
   * here, paid by every bus message that dropped the one entry a tier held: W8's bus reader,
   * issue 10). The only entry is also the least recently used, which pop() removes in O(1).
   */
  #remove(key: string): boolean {
    if (this.#lru.size === 1 && this.#lru.peek(key, { allowStale: true }) !== undefined) {
      this.#lru.pop()
      return true
    }
    return this.#lru.delete(key)
  }

  has(key: string): boolean {
    return this.get(key).found
  }

  /** The keys held whose entries carry any of `tags` (a snapshot; expired or invalidated
   *  ones included: whoever lists reads each through get(), which judges it). */
  keysTagged(tags: readonly string[]): string[] {
    const wanted = new Set(tags)
    const keys: string[] = []
    for (const [key, entry] of this.#lru.entries()) if (entry.tags.some((tag) => wanted.has(tag))) keys.push(key)
    return keys
  }

  /** Drops `key` if the entry held was created before `at` (another instance changed
   *  the key then); a newer one stays. */
  dropIfOlder(key: string, at: number): void {
    const entry = this.#lru.peek(key)
    if (entry !== undefined && entry.createdAt < at) this.#remove(key)
  }

  /** Drops the entries (key and entry) that `matches`, created before `at` (a prune by filter). */
  dropMatching(matches: (key: string, entry: TierEntry) => boolean, at: number): void {
    const older: string[] = []
    for (const [key, entry] of this.#lru.entries()) if (entry.createdAt < at && matches(key, entry)) older.push(key)
    for (const key of older) this.#remove(key)
  }

  /** A clear made at `at` (here, or heard on the bus, where it may arrive late): drops what
   *  was created before it and keeps what was written since, so a late message never undoes
   *  a newer write. */
  clearOlder(at: number): void {
    const older: string[] = []
    for (const [key, entry] of this.#lru.entries()) if (entry.createdAt < at) older.push(key)
    for (const key of older) this.#remove(key)
  }

  clear(): void {
    this.#lru.clear()
  }

  /** Drops everything and stops the timer. */
  close(): void {
    clearTimeout(this.#timer)
    this.#lru.clear()
  }

  get size(): number {
    return this.#lru.size
  }

  /**
   * Marks a look due once CHANGE_CHECK_MS have passed since the last, as the timer would.
   * Called by every call that is not a hit: it goes to disk or writes, so a clock read costs
   * it nothing much; and small entries are read and written synchronously, so a run of such
   * calls can keep the event loop from turning (and the timer from firing) for as long as it
   * lasts. Without this, a hit after such a run could serve a value another process replaced
   * long before (seen in the concurrency torture test: 300+ ms).
   */
  #notePassingTime(): void {
    if (!this.#due && Date.now() - this.#lookedAt >= CHANGE_CHECK_MS) this.#due = true
  }

  /** Looks at the change log if a look is due; drops what other writers changed (the keys
   *  named, or every held entry); whether `key` was dropped. Kept out of get() so that a hit's
   *  own cost stays a flag test and a counter. */
  #droppedByLook(key: string): boolean {
    const now = Date.now()
    if (!this.#due && now - this.#lookedAt < CHANGE_CHECK_MS) return false
    this.#due = false
    this.#lookedAt = now
    this.#timer.refresh()
    this.#stamps.look()
    const seen = this.#changes.changesElsewhere(this.#unsettled)
    if (this.#unsettled.size !== 0) this.#settleOverdue(now)
    if (seen === undefined) return false
    // A read from disk begun before this look may have read a value these writes replaced:
    // set() refuses it (its ticket), for the keys named, or all when the log could not say.
    if (seen === EVERYTHING) {
      this.#named.heardAll()
      this.#lru.clear()
      return true
    }
    for (const changed of seen) {
      this.#named.heard(changed, Infinity)
      this.#remove(changed)
    }
    return seen.has(key)
  }

  /** Whether another process's change of `key` (or of everything) is in progress, after a look
   *  if one is due (only hits look otherwise: a reader that misses would wait out SETTLE_MS for
   *  a record after that is already in the log) and the overdue ones settled. */
  #unsettledAt(key: string): boolean {
    this.#droppedByLook(key)
    this.#settleOverdue(Date.now())
    return this.#unsettled.isOpen(key)
  }

  /** The changes in progress for SETTLE_MS settled, as if their records after were heard: their
   *  keys dropped once more, and no read begun before may promote them (it may have read the
   *  value the change replaced, before its rename). */
  #settleOverdue(now: number): void {
    this.#unsettled.sweep(now, (key) => {
      if (key === undefined) {
        this.#named.heardAll()
        this.#lru.clear()
      } else {
        this.#named.heard(key, Infinity)
        this.#remove(key)
      }
    })
  }
}

/**
 * What get() returns for a hit of `entry` (one the memory tier returned): a resolved promise
 * of its value, made at the entry's first hit and handed to every later one. A settled promise
 * never changes, so sharing it is safe, and a hit then allocates nothing (the value itself is
 * already shared: every hit returns the same object).
 */
export function answerOf(entry: TierRead & { found: true }): Promise<unknown> {
  const held = entry as Held
  return (held.answer ??= Promise.resolve(held.value))
}

/**
 * What an entry counts against `memory.maxSize`: its serialized size, its key (a byte a
 * character, as V8 holds a one-byte string) and HELD_BYTES for the objects that hold it. The
 * value's size alone let a tier of small values with long keys (up to 8 KiB each) or of
 * tiny values hold many times its bound: with `maxSize` and no `maxEntries`, nothing else
 * bounds the number of entries.
 */
export function footprint(key: string, size: number): number {
  return size + key.length + HELD_BYTES
}

/** The heap a held entry takes beyond its key and value: its object, lru-cache's slots and
 *  its Map entry. Measured: 150 bytes an entry (Node 20, 200,000 entries of a number under
 *  short keys, heap after gc, keys made before). */
const HELD_BYTES = 150

/** An lru-cache with the memory tier's bounds, and under `'random'` the keys to draw from
 *  (kept by lru-cache's dispose: every way a key leaves but a replacement of its value). */
function boundedCache(bounds: Omit<MemoryTierBounds, 'watched'>): { lru: LRUCache<string, Held>; random: RandomVictims | undefined } {
  const options: {
    max?: number
    maxSize?: number
    sizeCalculation?: (entry: Held, key: string) => number
    ttl?: number
    ttlResolution?: number
  } = {}
  if (bounds.maxEntries !== undefined) options.max = bounds.maxEntries
  if (bounds.maxSize !== undefined) {
    options.maxSize = bounds.maxSize
    options.sizeCalculation = (entry, key) => footprint(key, entry.size)
  }
  if (bounds.ttl > 0) {
    options.ttl = bounds.ttl
    // lru-cache otherwise keeps the time it read until a 1 ms timer clears it, and that timer
    // cannot fire during a run of synchronous calls: an entry then outlived its ttl by as long
    // as the run lasted. A clock read per hit is the price, paid only with a ttl.
    options.ttlResolution = 0
  }
  const random = bounds.eviction === 'random' ? new RandomVictims() : undefined
  if (random !== undefined)
    Object.assign(options, { dispose: (_: Held, key: string, reason: string) => reason !== 'set' && random.remove(key) })
  // resolveOptions guarantees maxEntries or maxSize, so lru-cache's bound check holds.
  return { lru: new LRUCache<string, Held>(options as LRUCache.Options<string, Held, unknown>), random }
}
