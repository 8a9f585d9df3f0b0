import type { Failures } from '../facade/failures.js'
import type { KeyOrder } from '../key-order.js'
import type { Counters } from '../stats/counters.js'
import type { FileTier } from './file-tier.js'
import type { MemoryTier } from './memory-tier.js'
import { MISS, type StoredEntry, type TierRead } from './tier.js'

export interface TierStackParts {
  memory: MemoryTier | undefined
  file: FileTier | undefined
  order: KeyOrder
  failures: Failures
  counters: Counters
}

/** A read of the stack: what it found, and which tier answered. */
export type StackRead = TierRead & { tier?: 'memory' | 'file' }

/**
 * The tiers in order, top first: memory, then the entry files. The stack owns the read path
 * (top tier first; a hit in a lower tier is promoted into the tiers above it, with its own
 * expiry) and the write path (every tier). The facade asks the memory tier itself on its fast
 * path, counts hits and misses, and decides what a failure means through `Failures`: a tier
 * that fails is skipped (a read falls through, a write is a counted drop), unless failOpen is
 * false.
 */
export class TierStack {
  readonly memory: MemoryTier | undefined
  readonly file: FileTier | undefined
  readonly #order: KeyOrder
  readonly #failures: Failures
  readonly #counters: Counters

  constructor(parts: TierStackParts) {
    this.memory = parts.memory
    this.file = parts.file
    this.#order = parts.order
    this.#failures = parts.failures
    this.#counters = parts.counters
  }

  /**
   * Reads `key` below the memory tier. A fresh hit is promoted into the memory tier, unless a
   * change was called while it was read (the value read may be what the change replaced).
   * `grace` > 0 also returns a value expired less than `grace` ago, marked stale (never
   * promoted). Never throws for a failing tier while failOpen.
   */
  async lookup(key: string, grace: number): Promise<StackRead> {
    const version = this.#order.version
    const ticket = this.memory?.epoch
    if (this.memory !== undefined) this.#counters.tiers.memory!.misses++
    let result: StackRead = MISS
    if (this.file !== undefined) {
      const started = performance.now()
      const counts = this.#counters.tiers.file!
      try {
        result = await this.file.get(key, grace)
      } catch (error) {
        this.#failures.readFailed(error, 'file')
      }
      counts.get.record(performance.now() - started)
      if (result.found && !result.stale) {
        counts.hits++
        result = { ...result, tier: 'file' }
      } else counts.misses++
    }
    if (result.found && !result.stale && this.#order.version === version) this.memory?.set(key, result, ticket)
    return result
  }

  /** Whether a fresh entry exists in any tier (no value decoded, nothing counted). */
  async has(key: string): Promise<boolean> {
    if (this.memory?.has(key) === true) return true
    if (this.file === undefined) return false
    try {
      return await this.file.has(key)
    } catch (error) {
      this.#failures.readFailed(error, 'file')
      return false
    }
  }

  /**
   * Writes `entry` to every tier: into the memory tier as the serializer gives it back, then
   * to the files. A dropped file write (failOpen) still serves this process from memory:
   * better than a miss, and the process's own view stays consistent with what it just wrote.
   * Resolves to whether a tier below memory stored it.
   */
  async write(key: string, entry: StoredEntry): Promise<boolean> {
    this.memory?.set(key, entry)
    if (this.memory !== undefined) this.#counters.tiers.memory!.sets++
    if (this.file === undefined) return true
    const started = performance.now()
    const counts = this.#counters.tiers.file!
    try {
      await this.file.set(key, entry)
      counts.sets++
      return true
    } catch (error) {
      try {
        this.#failures.writeFailed(error, 'file')
      } catch (unavailable) {
        this.memory?.delete(key) // the caller hears it was not stored
        throw unavailable
      }
      return false
    } finally {
      counts.set.record(performance.now() - started)
    }
  }

  /** Removes `key` from every tier; true if a live entry was there. */
  async remove(key: string): Promise<boolean> {
    const inMemory = this.memory?.delete(key) === true
    if (inMemory) this.#counters.tiers.memory!.deletes++
    if (this.file === undefined) return inMemory
    try {
      const deleted = await this.file.delete(key)
      if (deleted) this.#counters.tiers.file!.deletes++
      return deleted
    } catch (error) {
      this.#failures.writeFailed(error, 'file')
      return false
    }
  }

  /** Removes every entry of the namespace from every tier. */
  async clear(): Promise<void> {
    this.memory?.clear()
    if (this.file === undefined) return
    try {
      await this.file.clear()
    } catch (error) {
      this.#failures.writeFailed(error, 'file')
    }
  }
}
