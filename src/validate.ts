import { types } from 'node:util'
import { LarderError, shownValue, SourceError } from './errors.js'
import type { GetOrSetOptions, GetStreamOptions } from './call-options.js'
import type { ListFilters } from './maintenance/listing.js'
import type { PruneOptions, RekeyOptions, VerifyOptions, WalkOptions } from './maintenance/maintainer.js'
import type { PruneFilters } from './maintenance/worker.js'
import { globProblem } from './maintenance/glob.js'
import { MAX_KEY_BYTES, MAX_TAG_BYTES, MAX_TAGS, parseDuration, parseSize, timerDuration } from './options.js'
import type { LoadOptions } from './facade/get-or-set.js'
import type { StreamSource } from './store/stream-writer.js'

/** Checks a key: a well-formed, non-empty string without NUL, at most 8 KiB of UTF-8. */
export function validateKey(key: unknown, field = 'key'): string {
  if (typeof key !== 'string')
    throw new LarderError('ERR_INVALID_KEY', `Invalid ${field}: expected a string, got ${key === null ? 'null' : typeof key}`, { field })
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
  // Array.from, not map: map skips a sparse array's holes, which must be refused as keys.
  return Array.from(keys as unknown[], (key, i) => validateKey(key, `${field}[${i}]`))
}

const EMPTY: readonly string[] = Object.freeze([])

/** Refuses a serialized value over `maxValueSize`: get() could not read it back (setStream can store it). */
export function validateValueSize(bytes: number, maxValueSize: number, field = 'value'): void {
  if (bytes > maxValueSize) {
    throw new LarderError(
      'ERR_TOO_LARGE',
      `Invalid ${field}: ${bytes} bytes serialized, more than maxValueSize (${maxValueSize}); store it with setStream() and read it with getStream()`,
      { field },
    )
  }
}

/** `tags` checked one by one; at most `max` of them (an entry's tags: MAX_TAGS, a bound of the
 *  entry format; the tags invalidated, or filtered by, are not bound by it). */
export function validateTags(tags: unknown, field = 'tags', max = MAX_TAGS): readonly string[] {
  if (tags === undefined) return EMPTY
  if (!Array.isArray(tags)) throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: expected an array of strings`, { field })
  // Each tag read once, and what was read is what is checked and kept: a getter or a Proxy
  // answering a second read otherwise had that answer stored unchecked (a NUL in it split it
  // into two tags on disk). Array.from, not a spread: a sparse array's holes are refused.
  const list = Array.from(tags as unknown[])
  if (list.length > max) throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: at most ${max} tags`, { field })
  for (const [i, tag] of list.entries()) {
    const name = `${field}[${i}]`
    if (typeof tag !== 'string' || tag.length === 0)
      throw new LarderError('ERR_INVALID_VALUE', `Invalid ${name}: expected a non-empty string`, { field: name })
    if (tag.includes('\0') || !tag.isWellFormed())
      throw new LarderError('ERR_INVALID_VALUE', `Invalid ${name}: must be well-formed and without NUL`, { field: name })
    if (Buffer.byteLength(tag) > MAX_TAG_BYTES)
      throw new LarderError('ERR_INVALID_VALUE', `Invalid ${name}: longer than ${MAX_TAG_BYTES} bytes`, { field: name })
  }
  // Always a copy (`list` is one): the caller's array may change before the write runs (KeyOrder queues it).
  return list.length > 1 ? [...new Set(list as string[])] : list.length === 1 ? (list as string[]) : EMPTY
}

/** set()'s `readAt`: a time not in the future (ms since the epoch), or undefined for now.
 *  `latest` is the cache clock's (cache.now() may run ahead of Date.now() by fractions of a
 *  millisecond, or after hearing of a change from a host whose clock is ahead). */
export function validateReadAt(readAt: unknown, latest: number): number | undefined {
  if (readAt === undefined) return undefined
  if (typeof readAt !== 'number' || !(readAt >= 0) || readAt > Math.max(Date.now(), latest)) {
    throw new LarderError(
      'ERR_INVALID_VALUE',
      `Invalid readAt: expected a time in ms since the epoch, not in the future, got ${typeof readAt === 'number' ? readAt : typeof readAt}`,
      { field: 'readAt' },
    )
  }
  return readAt
}

/** A per-call ttl: a duration, or undefined for the cache's default. */
export function validateTtl(ttl: unknown, field = 'ttl'): number | undefined {
  if (ttl === undefined) return undefined
  if (typeof ttl !== 'number' && typeof ttl !== 'string') {
    throw new LarderError(
      'ERR_INVALID_TTL',
      `Invalid ${field}: expected milliseconds or a duration string, got ${ttl === null ? 'null' : typeof ttl}`,
      { field },
    )
  }
  return parseDuration(ttl, field, 'ERR_INVALID_TTL')
}

/**
 * Rejects per-call option objects that are not objects or carry names we do not know. The
 * error names the unknown option: `tll` in a call's options, `items[1].tll` in an item.
 */
export function validateCallOptions<T extends object>(options: unknown, known: readonly string[], field = 'options'): Partial<T> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new LarderError('ERR_INVALID_OPTION', `Invalid ${field}: expected an object`, { field })
  }
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue
    const unknown = field === 'options' ? name : `${field}.${name}`
    throw new LarderError('ERR_INVALID_OPTION', `Invalid option "${unknown}": not a known option (known: ${known.join(', ')})`, {
      field: unknown,
    })
  }
  return options
}

/** validateCallOptions, then a copy of the options, each read once, for a call that hands them
 *  on (to the maintainer) or reads one more than once: a getter or a Proxy could otherwise pass
 *  a check with one answer and act on another (a readOnly cache's verify, checked as `repair:
 *  false`, then run as a repair). */
function readOnce<T extends object>(options: unknown, known: readonly string[]): Partial<T> {
  return { ...validateCallOptions<T>(options, known) }
}

/** Checks `signal` and `onProgress`, which every long-running operation accepts, and puts in
 *  `o` (a copy of the caller's options) an `onProgress` whose throw is passed on as it was
 *  (SourceError): counted as a failed disk operation, it rejected the call with
 *  ERR_UNAVAILABLE ("Cache maintenance failed") instead of the caller's own error. */
export function validateSignalAndProgress(o: { signal?: unknown; onProgress?: unknown }): void {
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid signal: expected an AbortSignal', { field: 'signal' })
  }
  if (o.onProgress === undefined) return
  if (typeof o.onProgress !== 'function') {
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid onProgress: expected a function', { field: 'onProgress' })
  }
  const onProgress = o.onProgress as (progress: unknown) => void
  o.onProgress = (progress: unknown): void => {
    try {
      onProgress(progress)
    } catch (error) {
      throw new SourceError(error)
    }
  }
}

const PRUNE_OPTIONS = [
  'maxSize',
  'maxEntries',
  'maxAge',
  'olderThan',
  'tags',
  'pattern',
  'dryRun',
  'listKeys',
  'signal',
  'onProgress',
] as const
const VERIFY_OPTIONS = ['repair', 'signal', 'onProgress'] as const
const GET_STREAM_OPTIONS = ['verifyFirst'] as const
const ENTRIES_OPTIONS = ['prefix', 'pattern', 'tags', 'signal', 'onProgress'] as const
const WALK_OPTIONS = ['signal', 'onProgress'] as const

/** `prune()` options with sizes, durations and times turned into numbers. */
export type ValidPruneOptions = PruneOptions & PruneFilters & { maxSize?: number }

export function validatePruneOptions(options: unknown): ValidPruneOptions {
  const o = readOnce<PruneOptions>(options, PRUNE_OPTIONS)
  validateSignalAndProgress(o)
  const valid: ValidPruneOptions = { ...o, maxSize: undefined, maxAge: undefined, olderThan: undefined, tags: undefined }
  if (o.maxSize !== undefined) valid.maxSize = parseSize(o.maxSize, 'maxSize', 'ERR_INVALID_VALUE')
  if (o.maxEntries !== undefined && (typeof o.maxEntries !== 'number' || !Number.isSafeInteger(o.maxEntries) || o.maxEntries < 0)) {
    throw new LarderError('ERR_INVALID_VALUE', `Invalid maxEntries: expected a non-negative integer, got ${shownValue(o.maxEntries)}`, {
      field: 'maxEntries',
    })
  }
  if (o.maxAge !== undefined) valid.maxAge = parseDuration(o.maxAge, 'maxAge', 'ERR_INVALID_TTL')
  if (o.olderThan !== undefined) {
    const at = o.olderThan instanceof Date ? o.olderThan.getTime() : o.olderThan
    if (typeof at !== 'number' || !Number.isFinite(at)) {
      throw new LarderError(
        'ERR_INVALID_VALUE',
        `Invalid olderThan: expected a Date or ms since the epoch, got ${shownValue(o.olderThan)}`,
        {
          field: 'olderThan',
        },
      )
    }
    valid.olderThan = at
  }
  if (o.tags !== undefined) valid.tags = [...validateTags(o.tags, 'tags', Infinity)]
  if (o.pattern !== undefined && (typeof o.pattern !== 'string' || o.pattern === '')) {
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid pattern: expected a non-empty glob string such as "user:*"', { field: 'pattern' })
  }
  checkGlob(o.pattern)
  // A truthy string ('true', an environment variable) must not turn a dry run into a prune.
  for (const field of ['dryRun', 'listKeys'] as const) {
    if (o[field] !== undefined && typeof o[field] !== 'boolean') {
      throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: expected a boolean, got ${shownValue(o[field])}`, { field })
    }
  }
  return valid
}

export function validateVerifyOptions(options: unknown): VerifyOptions {
  const o = readOnce<VerifyOptions>(options, VERIFY_OPTIONS)
  if (o.repair !== undefined && typeof o.repair !== 'boolean') {
    throw new LarderError('ERR_INVALID_VALUE', `Invalid repair: expected a boolean, got ${shownValue(o.repair)}`, { field: 'repair' })
  }
  validateSignalAndProgress(o)
  return o
}

/** `getStream()` options: verifyFirst. */
export function validateGetStreamOptions(options: unknown): GetStreamOptions {
  const o = readOnce<GetStreamOptions>(options, GET_STREAM_OPTIONS)
  if (o.verifyFirst !== undefined && typeof o.verifyFirst !== 'boolean') {
    throw new LarderError('ERR_INVALID_VALUE', `Invalid verifyFirst: expected a boolean, got ${shownValue(o.verifyFirst)}`, {
      field: 'verifyFirst',
    })
  }
  return o
}

/** `rekey()` options: a signal, a progress callback, sealPlain. */
export function validateRekeyOptions(options: unknown): RekeyOptions {
  const o = readOnce<RekeyOptions>(options, REKEY_OPTIONS)
  if (o.sealPlain !== undefined && typeof o.sealPlain !== 'boolean') {
    throw new LarderError('ERR_INVALID_VALUE', `Invalid sealPlain: expected a boolean, got ${shownValue(o.sealPlain)}`, {
      field: 'sealPlain',
    })
  }
  validateSignalAndProgress(o)
  return o
}
const REKEY_OPTIONS = ['signal', 'onProgress', 'sealPlain'] as const

/** `entries()` options: the listing filters, and the walk's signal and progress. */
export function validateEntriesOptions(options: unknown): { filters: ListFilters; walk: WalkOptions } {
  const o = readOnce<ListFilters & WalkOptions>(options, ENTRIES_OPTIONS)
  const filters: ListFilters = {}
  for (const field of ['prefix', 'pattern'] as const) {
    const value = o[field]
    if (value === undefined) continue
    if (typeof value !== 'string' || value === '') {
      throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: expected a non-empty string`, { field })
    }
    filters[field] = value
  }
  checkGlob(filters.pattern)
  if (o.tags !== undefined) filters.tags = [...validateTags(o.tags, 'tags', Infinity)]
  validateSignalAndProgress(o)
  return { filters, walk: o }
}

export function validateWalkOptions(options: unknown): WalkOptions {
  const o = readOnce<WalkOptions>(options, WALK_OPTIONS)
  validateSignalAndProgress(o)
  return o
}

/** Accepts a Readable, an async iterable, a sync iterable of chunks, or one Uint8Array. */
export function validateSource(source: unknown): StreamSource {
  const s = source as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown } | null
  // async generators because a StreamSource is read with for await (nothing to await here)
  // util.types, not instanceof: one from another realm (a vm context) was read as an iterable of numbers.
  if (types.isUint8Array(source))
    // eslint-disable-next-line @typescript-eslint/require-await -- see above
    return (async function* () {
      yield source
    })()
  if (typeof s?.[Symbol.asyncIterator] === 'function') return source as StreamSource
  if (typeof source !== 'string' && typeof s?.[Symbol.iterator] === 'function') {
    // eslint-disable-next-line @typescript-eslint/require-await -- see above
    return (async function* () {
      yield* source as Iterable<Uint8Array | string>
    })()
  }
  throw new LarderError(
    'ERR_INVALID_VALUE',
    'Invalid source: expected a Readable, an (async) iterable of Uint8Array chunks, or a Uint8Array',
    { field: 'source' },
  )
}

/** A setMany item once valid; `field` names its value in an error (`items[1].value`). */
export interface ValidSetManyItem {
  key: string
  value: unknown
  ttl: number | undefined
  tags: readonly string[]
  field: string
}

/** setMany's items, each validated (an error names the item: `items[1].ttl`). */
export function validateSetManyItems(items: unknown): ValidSetManyItem[] {
  if (!Array.isArray(items))
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid items: expected an array of { key, value, ttl?, tags? }', { field: 'items' })
  // Array.from, not map: map skips a sparse array's holes, which must be refused as items.
  return Array.from(items as unknown[], (item: unknown, i) => {
    const field = `items[${i}]`
    if (item === null || typeof item !== 'object')
      throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: expected { key, value, ttl?, tags? }`, { field })
    const o = validateCallOptions<{ key: string; value: unknown; ttl: unknown; tags: unknown }>(
      item,
      ['key', 'value', 'ttl', 'tags'],
      field,
    )
    return {
      key: validateKey(o.key, `${field}.key`),
      value: o.value,
      ttl: validateTtl(o.ttl, `${field}.ttl`),
      tags: validateTags(o.tags, `${field}.tags`),
      field: `${field}.value`,
    }
  })
}

/** warm()'s keys and options. */
export function validateWarm(
  keys: unknown,
  options: unknown,
): { keys: string[]; loader: ((keys: string[]) => unknown) | undefined; concurrency: number } {
  const valid = validateKeys(keys)
  const o = readOnce<{ loader: unknown; concurrency: unknown }>(options, ['loader', 'concurrency'])
  if (o.loader !== undefined && typeof o.loader !== 'function')
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid loader: expected a function of the missing keys', { field: 'loader' })
  const concurrency = o.concurrency === undefined ? 16 : o.concurrency // null is refused, as warm's loader and every other option's is
  if (typeof concurrency !== 'number' || !Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
    throw new LarderError(
      'ERR_INVALID_OPTION',
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- an object is named as such; what String() sees is a primitive or a function
      `Invalid concurrency: expected an integer from 1 to 1024, got ${concurrency !== null && typeof concurrency === 'object' ? 'an object' : String(concurrency)}`,
      { field: 'concurrency' },
    )
  }
  return { keys: valid, loader: o.loader as ((keys: string[]) => unknown) | undefined, concurrency }
}

/** getOrSet's loader and options (`ttl`, `tags`, `grace`, `lock`). */
export function validateGetOrSet(loader: unknown, options: unknown): LoadOptions {
  if (typeof loader !== 'function') throw new LarderError('ERR_INVALID_VALUE', 'Invalid loader: expected a function', { field: 'loader' })
  // Each option read once, as readOnce does, without its copy: getOrSet's hit path.
  const o = validateCallOptions<GetOrSetOptions>(options, ['ttl', 'tags', 'grace', 'lock', 'refreshAhead', 'timeout', 'hardTimeout'])
  const { lock, refreshAhead: givenRefreshAhead, timeout: givenTimeout, hardTimeout: givenHardTimeout } = o
  const ttl = validateTtl(o.ttl)
  const tags = validateTags(o.tags)
  const grace = validateTtl(o.grace, 'grace') ?? 0
  if (lock !== undefined && typeof lock !== 'boolean')
    throw new LarderError('ERR_INVALID_OPTION', `Invalid lock: expected a boolean, got ${shownValue(lock)}`, { field: 'lock' })
  const refreshAhead = givenRefreshAhead ?? 0
  if (givenRefreshAhead !== undefined && (typeof refreshAhead !== 'number' || !(refreshAhead > 0 && refreshAhead < 1)))
    throw new LarderError(
      'ERR_INVALID_OPTION',
      `Invalid refreshAhead: expected a number in (0, 1), got ${shownValue(refreshAhead, 'json')}`,
      {
        field: 'refreshAhead',
      },
    )
  const timeout = givenTimeout === undefined ? undefined : loaderTimeout(givenTimeout, 'timeout')
  const hardTimeout = givenHardTimeout === undefined ? undefined : loaderTimeout(givenHardTimeout, 'hardTimeout')
  if (hardTimeout === 0)
    throw new LarderError('ERR_INVALID_OPTION', 'Invalid hardTimeout: must be greater than 0', { field: 'hardTimeout' })
  return { ttl, tags, grace, lock: lock === true, refreshAhead, timeout, hardTimeout }
}

/** getOrSet's `timeout` or `hardTimeout`: a duration a timer can hold. */
function loaderTimeout(value: unknown, field: string): number {
  if (typeof value !== 'number' && typeof value !== 'string')
    throw new LarderError(
      'ERR_INVALID_OPTION',
      `Invalid ${field}: expected milliseconds or a duration string, got ${value === null ? 'null' : typeof value}`,
      {
        field,
      },
    )
  return timerDuration(value, field)
}

/** increment's and decrement's `delta`: a finite number. */
export function validateDelta(delta: unknown): number {
  if (typeof delta !== 'number' || !Number.isFinite(delta)) {
    throw new LarderError('ERR_INVALID_VALUE', `Invalid delta: expected a finite number, got ${shownValue(delta)}`, { field: 'delta' })
  }
  return delta
}

/** clear()'s options: `tier`, one of the tiers this cache has (`tiers`), or none (every tier). */
export function validateClearOptions<T extends string>(options: unknown, tiers: readonly T[]): T | undefined {
  const { tier } = validateCallOptions<{ tier: T }>(options, ['tier'])
  if (tier !== undefined && !tiers.includes(tier)) {
    throw new LarderError('ERR_INVALID_OPTION', `Invalid tier: expected one of ${tiers.join(', ')}, got ${shownValue(tier, 'json')}`, {
      field: 'tier',
    })
  }
  return tier
}

/** A glob the matcher cannot take (globProblem) is the caller's mistake, named as one. */
function checkGlob(pattern: string | undefined): void {
  const problem = pattern === undefined ? undefined : globProblem(pattern)
  if (problem !== undefined) throw new LarderError('ERR_INVALID_VALUE', `Invalid pattern: ${problem}`, { field: 'pattern' })
}
