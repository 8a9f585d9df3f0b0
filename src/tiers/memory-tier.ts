import { LRUCache } from 'lru-cache'
import { entryState, type TagStamps } from '../store/liveness.js'
import { MISS, type Tier, type TierEntry, type TierRead } from './tier.js'

export interface MemoryTierBounds {
  maxEntries: number | undefined
  maxSize: number | undefined
  ttl: number
}

/** A held entry, shaped as the read that finds it, so a hit allocates nothing. */
type Held = { found: true; stale: false } & TierEntry

/**
 * The in-process tier in front of the files: an lru-cache holding decoded values, so a hit
 * costs a map lookup and no deserialization. The facade stores what the serializer gives
 * back (never the caller's own object), so a value reads the same from here as from disk;
 * hits share it: treat what the cache returns as immutable. Write-through: every set lands
 * here and on disk; a disk hit is promoted here. An entry that is no longer live
 * (store/liveness.ts: expired, or invalidated by a tag, which `isStale` asks the shared tag
 * clock) is dropped when found.
 */
export class MemoryTier implements Tier {
  readonly name = 'memory'
  readonly #lru: LRUCache<string, Held>
  readonly #maxSize: number | undefined
  readonly #stamps: TagStamps

  constructor(bounds: MemoryTierBounds, isStale: (tags: readonly string[], createdAt: number) => boolean) {
    const options: { max?: number; maxSize?: number; sizeCalculation?: (entry: Held) => number; ttl?: number } = {}
    if (bounds.maxEntries !== undefined) options.max = bounds.maxEntries
    if (bounds.maxSize !== undefined) {
      options.maxSize = bounds.maxSize
      options.sizeCalculation = (entry) => Math.max(1, entry.size)
    }
    if (bounds.ttl > 0) options.ttl = bounds.ttl
    // resolveOptions guarantees maxEntries or maxSize, so lru-cache's bound check holds.
    this.#lru = new LRUCache<string, Held>(options as LRUCache.Options<string, Held, unknown>)
    this.#maxSize = bounds.maxSize
    this.#stamps = { isStale: (tags, createdAt) => tags.length > 0 && isStale(tags, createdAt) }
  }

  /** The fresh entry for `key`, or MISS (an expired or invalidated one is dropped). */
  get(key: string): TierRead {
    const entry = this.#lru.get(key)
    if (entry === undefined) return MISS
    if (entryState(entry, Date.now(), this.#stamps) !== 'live') {
      this.#lru.delete(key)
      return MISS
    }
    return entry
  }

  set(key: string, entry: TierEntry): void {
    // An entry bigger than the whole tier would evict everything else for nothing.
    if (this.#maxSize !== undefined && entry.size > this.#maxSize) {
      this.#lru.delete(key)
      return
    }
    const { value, createdAt, expiresAt, tags, grace, size } = entry
    this.#lru.set(key, { found: true, stale: false, value, createdAt, expiresAt, tags, grace, size })
  }

  delete(key: string): boolean {
    return this.#lru.delete(key)
  }

  has(key: string): boolean {
    return this.get(key).found
  }

  clear(): void {
    this.#lru.clear()
  }

  get size(): number {
    return this.#lru.size
  }
}
