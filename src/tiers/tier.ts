import type { Serialized } from '../format/serializers.js'

/**
 * What a tier keeps of an entry besides its value: enough to judge it fresh (expiry, tags)
 * without asking another tier, and to hand it to the tier above with its remaining lifetime.
 */
export interface TierEntry {
  value: unknown
  /** ms since the epoch (sub-millisecond); tag invalidations at or after it make it stale. */
  createdAt: number
  /** ms since the epoch; 0 = never. */
  expiresAt: number
  tags: readonly string[]
  /** ms an expired entry is kept for stale-if-error reads (getOrSet's `grace`); 0 = none. */
  grace: number
  /** Bytes of the serialized value (for byte budgets). */
  size: number
  /** A write's value not read back yet, as JSON text (`value` is then undefined): the memory
   *  tier parses it at its first read, so a set whose value is never read from memory pays no
   *  JSON.parse. Only the json serializer's, whose text parses to what every reader gets. */
  valueText?: string | undefined
}

/** An entry on its way down the tiers: its value, and the bytes the serializer made of it. */
export interface StoredEntry extends TierEntry {
  serialized: Serialized
}

/** What a read found: nothing, or an entry that is fresh, or (with a grace) recently expired.
 *  `expired`: a miss that found an entry expired or invalidated, counted in `expired` already. */
export type TierRead = { found: false; expired?: true } | ({ found: true; stale: boolean } & TierEntry)

export const MISS: TierRead = Object.freeze({ found: false })
/** A miss whose entry was expired or invalidated (counted by the tier that found it): a tier
 *  below, asked next for the same read, counts no second one. */
export const EXPIRED: TierRead = Object.freeze({ found: false, expired: true })

/**
 * One level of the cache (memory, files). The facade composes them: reads go top down and a
 * lower hit is promoted upwards; writes go to every tier. A tier that touches a disk or a
 * network throws its failures; the facade decides what a failure means (a miss, a counted
 * drop, or `ERR_UNAVAILABLE`).
 */
export interface Tier {
  readonly name: 'memory' | 'file'
  /** `grace` > 0 also returns an entry expired less than `grace` ms ago, marked stale. */
  get(key: string, grace: number): TierRead | Promise<TierRead>
  set(key: string, entry: StoredEntry): unknown
  /** True when a live entry was there. */
  delete(key: string): boolean | Promise<boolean>
  has(key: string): boolean | Promise<boolean>
  clear(): void | Promise<void>
}
