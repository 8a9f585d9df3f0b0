import { CorruptEntryError, decodeHead, headLength, MAGIC, TRAILER_BYTES, TRAILER_MAGIC } from '../format/entry-format.js'
import { entryState, type TagStamps } from '../store/liveness.js'
import type { RedisClient } from './connection.js'
import { DELETE_IF_SAME, runScript } from './scripts.js'

/** The first bytes read of each value: the fixed header and, for most entries, key and tags. */
const PEEK_BYTES = 1024

export interface DeadEntryParts {
  client: RedisClient
  /** Runs one command through the Redis tier's breaker. */
  run<T>(command: () => Promise<T>): Promise<T>
  /** The tag stamps reads judge entries by. */
  stamps: TagStamps
}

/**
 * Removes, of the Redis names given (a SCAN page of the namespace's entries), the entries no
 * instance will ever serve again: expired past their grace, or invalidated by a tag. A read
 * removes such an entry when it meets it, but many are never read again: an entry without a
 * ttl invalidated by its tag (every cached query of a table an ORM wrote to; every entry of a
 * Keyv namespace cleared) stayed in Redis for good, and Redis grew with each invalidation.
 *
 * Each entry is judged by its head and trailer (two ranges and its length, never its value),
 * and removed only if it is still the entry judged (DELETE_IF_SAME: its length and checksum):
 * one written since stays. Anything that is not an entry of ours (a tombstone, a damaged
 * value) is left for the reads, which judge it whole. Resolves to how many went.
 */
export async function removeDeadEntries(names: string[], p: DeadEntryParts): Promise<number> {
  const removed = await Promise.all(names.map((name) => removeIfDead(name, p)))
  return removed.filter(Boolean).length
}

async function removeIfDead(name: string, p: DeadEntryParts): Promise<boolean> {
  const [peek, trailer, length] = await Promise.all([
    p.run(() => p.client.getrangeBuffer(name, 0, PEEK_BYTES - 1)),
    p.run(() => p.client.getrangeBuffer(name, -TRAILER_BYTES, -1)),
    p.run(() => p.client.strlen(name)),
  ])
  if (peek.length < 32 || peek.readUInt32LE(0) !== MAGIC) return false
  if (trailer.length !== TRAILER_BYTES || trailer.readUInt32LE(16) !== TRAILER_MAGIC) return false
  let head
  try {
    head = decodeHead(peek, length) ?? decodeHead(await p.run(() => p.client.getrangeBuffer(name, 0, headLength(peek) - 1)), length)
  } catch (error) {
    if (error instanceof CorruptEntryError) return false
    throw error
  }
  if (head === undefined) return false // changed between the reads: judged at its next read
  const graceMs = trailer.readUInt32LE(20) * 1000 // as decodeTrailer reads it
  if (entryState(head, Date.now(), p.stamps, graceMs) !== 'dead') return false
  const checksum = trailer.subarray(TRAILER_BYTES - 8)
  return (await p.run(() => runScript(p.client, DELETE_IF_SAME, [name], [String(length), checksum]))) === 1
}
