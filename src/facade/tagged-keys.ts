import { Slots } from '../batch-slots.js'
import { CorruptEntryError, decodeEntry } from '../format/entry-format.js'
import { isTombstone, type RedisTier } from '../tiers/redis-tier.js'
import type { Failures } from './failures.js'

/** Values read at once: enough to overlap round trips to Redis. */
const IN_FLIGHT = 8

/**
 * The keys of entries carrying any of `tags` that a listing of the directory (`entries()`)
 * does not show, for a host library's listing (Keyv's `iterator()`): `held`, the memory
 * tier's (with `dir: false`, values over `redis.maxValueSize` and those write-back has not
 * sent live nowhere else), then what Redis holds (other hosts' writes), each passed over when
 * `inDir` says the directory holds it live under one of the tags: the listing gave it, and
 * the caller need not keep every key it listed to know. A key may still come twice (in
 * memory and Redis, or twice in a SCAN); the caller reads each through `get`. Redis failing
 * the listing is a read failure of the Redis tier, as `failures` rules: counted and reported,
 * the listing ending with what it gave (failOpen), or ERR_UNAVAILABLE thrown (`failOpen:
 * false`), as a failed get would be.
 */
export async function* keysBeyondDir(
  held: readonly string[],
  tier: RedisTier | undefined,
  tags: readonly string[],
  failures: Failures,
  inDir: (key: string) => Promise<boolean>,
): AsyncGenerator<string> {
  for (const key of held) if (!(await inDir(key))) yield key
  if (tier === undefined) return
  try {
    for await (const key of sharedKeysTagged(tier, tags)) if (!(await inDir(key))) yield key
  } catch (error) {
    failures.readFailed(error, 'redis')
  }
}

/** Whether the directory of `files` holds a live entry of `key` carrying one of `tags`: what
 *  the listing of the directory shows (no directory, or a failing one: false), a file the
 *  outage rule would not serve left out as the listing leaves it out (`servable`: another
 *  host's value in Redis then stands for the key). */
export async function shownByDir(
  files: { info(key: string): Promise<{ key: string; createdAt: number; tags: string[] } | 'expired' | undefined> } | undefined,
  key: string,
  tags: readonly string[],
  servable: <T extends { key: string; createdAt: number }>(listed: T[]) => Promise<T[]>,
): Promise<boolean> {
  if (files === undefined) return false
  try {
    const found = await files.info(key)
    if (found === undefined || found === 'expired' || !found.tags.some((tag) => tags.includes(tag))) return false
    return (await servable([found])).length > 0
  } catch {
    return false // the disk's failure is the listing's to report; the key is read through get
  }
}

/**
 * The keys of this namespace's entries in Redis that carry any of `tags`, a SCAN page at a
 * time (each key at least once: SCAN may give one twice). Each value is read whole (within
 * `redis.maxValueSize`: RedisTier.rawGet) and its checksum and head checked on this thread;
 * what is not an entry of its name (a tombstone, a lock, damage) is skipped, left to its
 * readers. Expired and invalidated entries are listed: the caller reads each through `get`,
 * which judges them. Rejects if Redis fails, or if the pass could not vouch it saw every key.
 */
async function* sharedKeysTagged(tier: RedisTier, tags: readonly string[]): AsyncGenerator<string> {
  const wanted = new Set(tags)
  const slots = new Slots(IN_FLIGHT)
  for await (const entries of tier.entryPages()) {
    const keys = await Promise.all(entries.map((name) => slots.run(() => taggedKey(tier, name, wanted))))
    for (const key of keys) if (key !== undefined) yield key
  }
}

/** The key of the entry under the full name `name` if it carries one of `wanted`. */
async function taggedKey(tier: RedisTier, name: string, wanted: Set<string>): Promise<string | undefined> {
  const bytes = await tier.rawGet(name)
  if (bytes.length === 0 || isTombstone(bytes) || !tier.fits(bytes.length)) return undefined
  try {
    const { key, tags } = decodeEntry(bytes)
    return key === name.slice(tier.base.length) && tags.some((tag) => wanted.has(tag)) ? key : undefined
  } catch (error) {
    if (error instanceof CorruptEntryError) return undefined
    throw error
  }
}
