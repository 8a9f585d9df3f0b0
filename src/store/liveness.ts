/**
 * The one rule for "is this entry live?", asked by every reader of entries: the memory tier,
 * the file tier (get, has, getStream, info, delete) and maintenance (prune's scan, listings).
 *
 * An entry is live until it expires or one of its tags is invalidated at or after its
 * creation. An invalidated entry is dead at once: grace never brings back what was declared
 * wrong. An expired one may still be worth keeping: `getOrSet(key, loader, { grace })` serves
 * a value expired less than `grace` ago when its loader fails, and records that grace in the
 * entry (entry-format.ts), so that plain reads and maintenance leave the file alone until it
 * has passed.
 */

/** What every reader knows of an entry before its value. */
export interface EntryTimes {
  /** ms since the epoch; invalidations at or after it make the entry stale. */
  createdAt: number
  /** ms since the epoch; 0 = never. */
  expiresAt: number
  tags: readonly string[]
}

/** Tag invalidation stamps, as the reader sees them (store/tag-clock.ts in the tiers,
 *  maintenance/entry-scan.ts in workers). */
export interface TagStamps {
  isStale(tags: readonly string[], createdAt: number): boolean
}

/**
 * - `live`: not expired, no tag invalidated since it was created.
 * - `stale`: expired less than `readGrace` ago and not invalidated: for this reader's
 *   stale-if-error only (a getOrSet with a grace).
 * - `kept`: expired and not invalidated, within the grace the entry records: a miss for
 *   this reader, but its file stays for a reader that asks with a grace.
 * - `dead`: invalidated, or expired past both graces: a miss, and removable.
 */
export type EntryState = 'live' | 'stale' | 'kept' | 'dead'

/**
 * Judges `entry` at `now`. `keptFor` is the grace (ms) the entry records, or a function that
 * reads it, called only for an expired entry that no tag invalidated (reading it may cost a
 * read of the file's trailer).
 */
export function entryState(
  entry: EntryTimes,
  now: number,
  stamps: TagStamps,
  keptFor: number | (() => number) = 0,
  readGrace = 0,
): EntryState {
  if (stamps.isStale(entry.tags, entry.createdAt)) return 'dead'
  if (entry.expiresAt === 0 || entry.expiresAt > now) return 'live'
  const late = now - entry.expiresAt
  if (late < readGrace) return 'stale'
  return late < (typeof keptFor === 'number' ? keptFor : keptFor()) ? 'kept' : 'dead'
}

/** Whether `entry` is live whenever and whatever the stamps say: no expiry and no tags. A hot
 *  reader (the memory tier's hit) may then skip the clock and the stamps; entryState agrees. */
export function alwaysLive(entry: EntryTimes): boolean {
  return entry.expiresAt === 0 && entry.tags.length === 0
}
