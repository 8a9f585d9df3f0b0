import { LarderError } from './errors.js'
import { MAX_KEY_BYTES, MAX_TAG_BYTES, MAX_TAGS, parseDuration, type Duration } from './options.js'

/** Checks a key: a well-formed, non-empty string without NUL, at most 8 KiB of UTF-8. */
export function validateKey(key: unknown, field = 'key'): string {
  if (typeof key !== 'string') throw new LarderError('ERR_INVALID_KEY', `Invalid ${field}: expected a string, got ${key === null ? 'null' : typeof key}`, { field })
  if (key.length === 0) throw new LarderError('ERR_INVALID_KEY', `Invalid ${field}: must not be empty`, { field })
  // Cheap bound first: a UTF-8 byte is at least every UTF-16 unit / 1 and at most 3 per unit.
  if (key.length > MAX_KEY_BYTES || (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES)) {
    throw new LarderError('ERR_INVALID_KEY', `Invalid ${field}: longer than ${MAX_KEY_BYTES} bytes of UTF-8`, { field })
  }
  if (key.includes('\0')) throw new LarderError('ERR_INVALID_KEY', `Invalid ${field}: must not contain NUL`, { field })
  // A lone surrogate does not survive UTF-8, so such a key could never be read back.
  if (!key.isWellFormed()) throw new LarderError('ERR_INVALID_KEY', `Invalid ${field}: not well-formed Unicode (lone surrogate)`, { field })
  return key
}

export function validateKeys(keys: unknown, field = 'keys'): string[] {
  if (!Array.isArray(keys)) throw new LarderError('ERR_INVALID_KEY', `Invalid ${field}: expected an array of keys`, { field })
  return keys.map((key, i) => validateKey(key, `${field}[${i}]`))
}

const EMPTY: readonly string[] = Object.freeze([])

export function validateTags(tags: unknown, field = 'tags'): readonly string[] {
  if (tags === undefined) return EMPTY
  if (!Array.isArray(tags)) throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: expected an array of strings`, { field })
  if (tags.length > MAX_TAGS) throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: at most ${MAX_TAGS} tags`, { field })
  for (const [i, tag] of tags.entries()) {
    const name = `${field}[${i}]`
    if (typeof tag !== 'string' || tag.length === 0) throw new LarderError('ERR_INVALID_VALUE', `Invalid ${name}: expected a non-empty string`, { field: name })
    if (tag.includes('\0') || !tag.isWellFormed()) throw new LarderError('ERR_INVALID_VALUE', `Invalid ${name}: must be well-formed and without NUL`, { field: name })
    if (Buffer.byteLength(tag) > MAX_TAG_BYTES) throw new LarderError('ERR_INVALID_VALUE', `Invalid ${name}: longer than ${MAX_TAG_BYTES} bytes`, { field: name })
  }
  return tags.length > 1 ? [...new Set(tags as string[])] : (tags as string[])
}

/** A per-call ttl: a duration, or undefined for the cache's default. */
export function validateTtl(ttl: unknown, field = 'ttl'): number | undefined {
  if (ttl === undefined) return undefined
  if (typeof ttl !== 'number' && typeof ttl !== 'string') {
    throw new LarderError('ERR_INVALID_TTL', `Invalid ${field}: expected milliseconds or a duration string, got ${ttl === null ? 'null' : typeof ttl}`, { field })
  }
  return parseDuration(ttl as Duration, field, 'ERR_INVALID_TTL')
}

/** Rejects per-call option objects that are not objects or carry names we do not know. */
export function validateCallOptions<T extends object>(options: unknown, known: readonly string[], field = 'options'): Partial<T> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new LarderError('ERR_INVALID_OPTION', `Invalid ${field}: expected an object`, { field })
  }
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) throw new LarderError('ERR_INVALID_OPTION', `Invalid option "${name}" in ${field} (known: ${known.join(', ')})`, { field: name })
  }
  return options as Partial<T>
}
