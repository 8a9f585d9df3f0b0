import { LRUCache } from 'lru-cache'

/** A value held in memory, with what is needed to judge it fresh without the file. */
export interface MemoryEntry {
  value: unknown
  createdAt: number
  expiresAt: number
  tags: readonly string[]
  /** Serialized size, for the tier's byte budget. */
  size: number
}

export interface MemoryTierBounds {
  maxEntries: number | undefined
  maxSize: number | undefined
  ttl: number
}

/**
 * The in-process tier in front of the files: an lru-cache holding decoded values, so a hit
 * costs a map lookup and no deserialization. Values are shared, not copied: treat what the
 * cache returns as immutable. Write-through: every set lands here and on disk; a disk hit is
 * promoted here.
 */
export class MemoryTier {
  readonly #lru: LRUCache<string, MemoryEntry>

  constructor(bounds: MemoryTierBounds) {
    const options: { max?: number; maxSize?: number; sizeCalculation?: (entry: MemoryEntry) => number; ttl?: number } = {}
    if (bounds.maxEntries !== undefined) options.max = bounds.maxEntries
    if (bounds.maxSize !== undefined) {
      options.maxSize = bounds.maxSize
      options.sizeCalculation = (entry) => Math.max(1, entry.size)
    }
    if (bounds.ttl > 0) options.ttl = bounds.ttl
    // resolveOptions guarantees maxEntries or maxSize, so lru-cache's bound check holds.
    this.#lru = new LRUCache<string, MemoryEntry>(options as LRUCache.Options<string, MemoryEntry, unknown>)
    this.#maxSize = bounds.maxSize
  }

  readonly #maxSize: number | undefined

  get(key: string): MemoryEntry | undefined {
    return this.#lru.get(key)
  }

  set(key: string, entry: MemoryEntry): void {
    // An entry bigger than the whole tier would evict everything else for nothing.
    if (this.#maxSize !== undefined && entry.size > this.#maxSize) this.#lru.delete(key)
    else this.#lru.set(key, entry)
  }

  delete(key: string): void {
    this.#lru.delete(key)
  }

  clear(): void {
    this.#lru.clear()
  }

  get size(): number {
    return this.#lru.size
  }
}
