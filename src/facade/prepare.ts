import { LarderError } from '../errors.js'
import { readBack, serialize, type Serialized } from '../format/serializers.js'
import type { ResolvedOptions } from '../options.js'
import { expiryOf, type CreationClock } from '../store/creation-clock.js'
import { validateValueSize } from '../validate.js'
import type { StoredEntry } from '../tiers/tier.js'

/** An entry ready to be written: serialized at call time, written at its turn. */
export interface Write {
  serialized: Serialized
  createdAt: number
  expiresAt: number
  tags: readonly string[]
  grace: number
  /** ms spent preparing it (serializing), for latency.set. */
  spent: number
  /** The value as the serializer gives it back, when already known. */
  value?: unknown
  /** Written to Redis before the write resolves, whatever the strategy (getOrSet's value
   *  loaded under the Redis lock: the instances waiting for the lock look for it there). */
  through?: boolean
  /** getOrSet's store: if a Redis read failed since this time (performance.now()), the write to
   *  Redis waits in the queue instead of being tried now, so the call does not wait on Redis
   *  twice (its read timed out already: commandTimeout once per call). */
  redisFailedSince?: number
}

type Options = Pick<ResolvedOptions, 'serializer' | 'maxValueSize' | 'defaultTtl'>

/** Serializes a value for writing, at call time (bad input rejects before anything is queued
 *  or written); its creation time is now, or when its load began. */
export function prepareWrite(
  options: Options,
  clock: CreationClock,
  value: unknown,
  ttl: number | undefined,
  tags: readonly string[],
  grace: number,
  field = 'value',
  createdAt?: number,
): Write {
  const started = performance.now()
  const serialized = serialize(value, options.serializer, field)
  validateValueSize(serialized.bytes.length, options.maxValueSize, field)
  const at = createdAt ?? clock.createdAt(tags)
  return { serialized, createdAt: at, expiresAt: expiryOf(ttl ?? options.defaultTtl, at), tags, grace, spent: performance.now() - started }
}

/** The value as every reader of its entry will get it (see serializers.ts `readBack`). */
export function readBackValue(options: Options, serialized: Serialized): unknown {
  try {
    return readBack(serialized, options.serializer)
  } catch (cause) {
    throw new LarderError(
      'ERR_SERIALIZE',
      `Cannot store value: the custom serializer cannot read back what it wrote (${(cause as Error).message})`,
      { field: 'value', cause },
    )
  }
}

/** The entry a write hands the tiers; its value (what the memory tier holds) is read back
 *  only when a memory tier will hold it, and JSON only when the memory tier first reads it
 *  (TierEntry.valueText). */
export function storedEntry(options: Options, write: Write, withValue: boolean): StoredEntry {
  const { serialized, createdAt, expiresAt, tags, grace } = write
  const size = serialized.bytes.length
  if (!withValue) return { value: undefined, createdAt, expiresAt, tags, grace, size, serialized }
  if ('value' in write) return { value: write.value, createdAt, expiresAt, tags, grace, size, serialized }
  if (serialized.text !== undefined)
    return { value: undefined, valueText: serialized.text, createdAt, expiresAt, tags, grace, size, serialized }
  return { value: readBackValue(options, serialized), createdAt, expiresAt, tags, grace, size, serialized }
}
