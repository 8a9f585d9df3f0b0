import { LRUCache } from 'lru-cache'
import { alwaysLive, entryState, type TagStamps } from '../store/liveness.js'
import { MISS, type Tier, type TierEntry, type TierRead } from './tier.js'

export interface MemoryTierBounds {
  maxEntries: number | undefined
  maxSize: number | undefined
  ttl: number
}

/** A held entry, shaped as the read that finds it, so a hit allocates nothing. */
type Held = { found: true; stale: false } & TierEntry

/** What tells a memory tier that another process (or instance) wrote: store/change-clock.ts. */
export interface ChangeSignal {
  changedElsewhere(): boolean
}

/** Another process's write is seen by a hit at most this long after it resolved. */
export const CHANGE_CHECK_MS = 5
/** …and by at most this many hits that run without the event loop turning (the timer that
 *  marks a check due cannot fire in such a run, so every this-many hits read the clock). */
const HITS_PER_CLOCK_READ = 16

/**
 * The in-process tier in front of the files: an lru-cache holding decoded values, so a hit
 * costs a map lookup and no deserialization. The facade stores what the serializer gives
 * back (never the caller's own object), so a value reads the same from here as from disk;
 * hits share it: treat what the cache returns as immutable. Write-through: every set lands
 * here and on disk; a disk hit is promoted here. An entry that is no longer live
 * (store/liveness.ts: expired, or invalidated by a tag, which `isStale` asks the shared tag
 * clock) is dropped when found.
 *
 * Other processes write to the same files behind this tier's back. So a hit looks at the
 * namespace's change log (one `stat`) when CHANGE_CHECK_MS have passed since the last look,
 * and when it shows a write by anyone else, every held value is dropped and read again from
 * disk on its next get. Knowing a look is due costs a hit nothing: an unref'd timer marks it,
 * and so does a clock read once in HITS_PER_CLOCK_READ hits, for runs of hits (awaited in a
 * loop, say) during which the timer cannot fire. `memory.ttl` bounds a value's time here on
 * top of this.
 *
 * A read from disk (or a write) takes a ticket (`epoch`) before it starts and stores its
 * value only if no change was seen in between: a value read before another process's write
 * landed must not be held after this tier has already looked past that write.
 */
export class MemoryTier implements Tier {
  readonly name = 'memory'
  #lru: LRUCache<string, Held>
  #maxSize: number | undefined
  readonly #stamps: TagStamps
  readonly #changes: ChangeSignal
  readonly #timer: NodeJS.Timeout
  /** A look at the change log is due (set by the timer). */
  #due = true
  #lookedAt = 0
  #hits = 0
  #epoch = 0

  constructor(bounds: MemoryTierBounds, isStale: (tags: readonly string[], createdAt: number) => boolean, changes: ChangeSignal) {
    this.#lru = boundedCache(bounds)
    this.#maxSize = bounds.maxSize
    this.#stamps = { isStale: (tags, createdAt) => tags.length > 0 && isStale(tags, createdAt) }
    this.#changes = changes
    this.#timer = setTimeout(() => {
      this.#due = true
    }, CHANGE_CHECK_MS)
    this.#timer.unref()
  }

  /** The fresh entry for `key`, or MISS (an expired or invalidated one is dropped; after
   *  another process's write, every held entry is). */
  get(key: string): TierRead {
    const entry = this.#lru.get(key)
    if (entry === undefined) return MISS
    if ((this.#due || (this.#hits = (this.#hits + 1) & (HITS_PER_CLOCK_READ - 1)) === 0) && this.#changedElsewhere()) return MISS
    if (!alwaysLive(entry) && entryState(entry, Date.now(), this.#stamps) !== 'live') {
      this.#lru.delete(key)
      return MISS
    }
    return entry
  }

  /** A ticket for a read or write about to go to disk: pass it to set(). */
  get epoch(): number {
    return this.#epoch
  }

  /** Holds `entry`, unless another process's write was seen since `ticket` was taken; whether
   *  it did. */
  set(key: string, entry: TierEntry, ticket = this.#epoch): boolean {
    // An entry bigger than the whole tier would evict everything else for nothing.
    if (ticket !== this.#epoch || (this.#maxSize !== undefined && entry.size > this.#maxSize)) {
      this.#lru.delete(key)
      return false
    }
    const { value, createdAt, expiresAt, tags, grace, size } = entry
    this.#lru.set(key, { found: true, stale: false, value, createdAt, expiresAt, tags, grace, size })
    return true
  }

  delete(key: string): boolean {
    return this.#lru.delete(key)
  }

  has(key: string): boolean {
    return this.get(key).found
  }

  /** Drops `key` if the entry held was created before `at` (another instance changed
   *  the key then); a newer one stays. */
  dropIfOlder(key: string, at: number): void {
    const entry = this.#lru.peek(key)
    if (entry !== undefined && entry.createdAt < at) this.#lru.delete(key)
  }

  /** A clear made at `at` (here, or heard on the bus, where it may arrive late): drops what
   *  was created before it and keeps what was written since, so a late message never undoes
   *  a newer write. */
  clearOlder(at: number): void {
    const older: string[] = []
    for (const [key, entry] of this.#lru.entries()) if (entry.createdAt < at) older.push(key)
    for (const key of older) this.#lru.delete(key)
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
   * New bounds (`configure()`), applied at once: the held entries move to a cache with the new
   * bounds, least recently used first, so what no longer fits is what LRU would have evicted;
   * an entry keeps what is left of its time here, cut to a shorter new `ttl`. lru-cache's
   * bounds are fixed at its construction, hence the move. Synchronous: no read sees a half-moved
   * tier. Tickets stay valid: nothing was learnt about other writers.
   */
  resize(bounds: MemoryTierBounds): void {
    const old = this.#lru
    const resized = boundedCache(bounds)
    for (const key of [...old.rkeys()]) {
      const entry = old.peek(key)
      if (entry === undefined || (bounds.maxSize !== undefined && entry.size > bounds.maxSize)) continue
      const remaining = old.getRemainingTTL(key)
      if (bounds.ttl > 0) resized.set(key, entry, { ttl: Math.min(bounds.ttl, remaining) })
      else resized.set(key, entry)
    }
    this.#lru = resized
    this.#maxSize = bounds.maxSize
  }

  /** Looks at the change log if a look is due; on another writer's change, drops every held
   *  entry. Kept out of get() so that a hit's own cost stays a flag test and a counter. */
  #changedElsewhere(): boolean {
    const now = Date.now()
    if (!this.#due && now - this.#lookedAt < CHANGE_CHECK_MS) return false
    this.#due = false
    this.#lookedAt = now
    this.#timer.refresh()
    if (!this.#changes.changedElsewhere()) return false
    this.#lru.clear()
    this.#epoch++
    return true
  }
}

/** An lru-cache with the memory tier's bounds. */
function boundedCache(bounds: MemoryTierBounds): LRUCache<string, Held> {
  const options: { max?: number; maxSize?: number; sizeCalculation?: (entry: Held) => number; ttl?: number } = {}
  if (bounds.maxEntries !== undefined) options.max = bounds.maxEntries
  if (bounds.maxSize !== undefined) {
    options.maxSize = bounds.maxSize
    options.sizeCalculation = (entry) => Math.max(1, entry.size)
  }
  if (bounds.ttl > 0) options.ttl = bounds.ttl
  // resolveOptions guarantees maxEntries or maxSize, so lru-cache's bound check holds.
  return new LRUCache<string, Held>(options as LRUCache.Options<string, Held, unknown>)
}
