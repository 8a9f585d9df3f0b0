import { LarderError } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import type { Counters } from '../stats/counters.js'
import { justAfter, type CreationClock } from '../store/creation-clock.js'
import type { MemoryTier } from '../tiers/memory-tier.js'
import { MISS } from '../tiers/tier.js'
import type { StackRead, TierStack } from '../tiers/tier-stack.js'
import type { Failures } from './failures.js'
import type { OrderedWrites } from './ordered-writes.js'

export interface IncrementParts {
  options: Readonly<ResolvedOptions>
  memory: MemoryTier | undefined
  stack: TierStack
  writes: OrderedWrites
  failures: Failures
  clock: CreationClock
  counters: Counters
}

/**
 * `increment()` once its arguments are valid: a read and a write of the key as one change in
 * call order, so no update made through this instance is lost. The entry keeps its expiry,
 * tags and grace; a value that is not a number, or a result that is not finite (or, from
 * integers, not a safe integer), is refused (`ERR_INVALID_VALUE`) and nothing is written. A
 * `raw` cache cannot store numbers: refused (`ERR_INVALID_OPTION`) before the change is
 * queued. A read that failed (a failing disk, or Redis, fail-open) is a miss, as every read is,
 * but its result is not written: the counter stored may be there, unread, and `0 + delta`
 * would replace it. That write is a counted drop.
 */
export function incrementInOrder(p: IncrementParts, key: string, delta: number): Promise<number> {
  if (p.options.serializer === 'raw') {
    throw new LarderError(
      'ERR_INVALID_OPTION',
      'Cannot increment: this cache uses the raw serializer, which stores only Buffers, Uint8Arrays and strings, not numbers',
      { field: 'serializer' },
    )
  }
  // The result is stamped at call time, as a set is, so a change of the key called after this
  // one (stamped when called) is newer, however long this one waits for its turn: Redis would
  // refuse that change as older than this result. It is not later than the read either, so an
  // invalidation of its tags that lands while the read is on its way makes it stale, as it
  // does the value read.
  const readAt = p.clock.stamp()
  return p.writes.change(key, async () => {
    const memory = p.memory?.get(key) ?? MISS
    // A read of the memory tier, counted there (a miss is, by the lookup below it), though
    // increment counts no hit or miss of the cache.
    if (memory.found) p.counters.tiers.memory!.hits++
    const found: StackRead = memory.found ? memory : await p.stack.lookup(key, 0)
    let current = 0
    if (found.found) {
      if (typeof found.value !== 'number') {
        throw new LarderError(
          'ERR_INVALID_VALUE',
          `Cannot increment key ${JSON.stringify(key)}: its value is ${described(found.value)}, not a number`,
          { field: 'key' },
        )
      }
      current = found.value
    }
    const next = current + delta
    if (!Number.isFinite(next)) {
      throw new LarderError('ERR_INVALID_VALUE', `Invalid delta: ${current} + ${delta} is not a finite number, which could not be stored`, {
        field: 'delta',
      })
    }
    // Past 2^53 a double cannot hold every integer: 2^53 + 1 is 2^53, so such a counter would
    // take updates and stay put (Redis refuses an INCR past its own 64-bit range too).
    if (Number.isInteger(current) && Number.isInteger(delta) && !Number.isSafeInteger(next)) {
      throw new LarderError(
        'ERR_INVALID_VALUE',
        `Invalid delta: ${current} + ${delta} is past Number.MAX_SAFE_INTEGER, where a counter loses updates`,
        { field: 'delta' },
      )
    }
    if (found.failed === true) {
      p.failures.dropped(p.stack.file !== undefined ? 'file' : 'redis')
      return next
    }
    // Newer than what it read, too: that entry may be stamped past this instance's clock (made
    // after an invalidation of its tags by another instance, stamped just after it).
    const createdAt = found.found ? Math.max(readAt, justAfter(found.createdAt)) : readAt
    const write = p.writes.prepare(next, undefined, found.found ? found.tags : [], found.found ? found.grace : 0, 'value', createdAt)
    if (found.found) write.expiresAt = found.expiresAt
    await p.writes.write(key, write)
    return next
  })
}

/** A stored value's kind, for the message refusing to increment it ("an object", "null"). */
function described(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  const type = typeof value
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`
}
