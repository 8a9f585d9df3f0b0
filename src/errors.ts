/**
 * Every error larder raises on purpose is a `LarderError` with a stable `code`.
 * Codes are part of the public contract: callers switch on them, so never rename one.
 */
export type LarderErrorCode =
  | 'ERR_INVALID_KEY'
  | 'ERR_INVALID_TTL'
  | 'ERR_INVALID_VALUE'
  | 'ERR_INVALID_OPTION'
  | 'ERR_SERIALIZE'
  | 'ERR_DESERIALIZE'
  | 'ERR_CLOSED'
  | 'ERR_CORRUPT'
  | 'ERR_UNAVAILABLE'
  | 'ERR_ABORTED'
  | 'ERR_BUSY'
  | 'ERR_TOO_LARGE'
  /** `open()` refused a directory others control (owned by another user, or writable by
   *  group or others without the sticky bit) without `shared`: see the README's Security. */
  | 'ERR_UNSAFE_DIR'
  | 'ERR_READ_ONLY'
  /** getOrSet's loader did not answer within `hardTimeout` (and no value within grace). */
  | 'ERR_TIMEOUT'

/** A registered symbol, the same in every copy of larder loaded in a process (the ESM and
 *  the CJS build are two copies when an app mixes `import` and `require`). */
const BRAND = Symbol.for('larder.error')

export class LarderError extends Error {
  /** `instanceof LarderError` holds for errors from any copy of larder, not just this one. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== LarderError) return Function.prototype[Symbol.hasInstance].call(this, value)
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }

  readonly code: LarderErrorCode
  /** The option, argument or field the error is about, when there is one. */
  readonly field: string | undefined

  constructor(code: LarderErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'LarderError'
    Object.defineProperty(this, BRAND, { value: true })
    this.code = code
    this.field = options.field
  }
}

export function isLarderError(error: unknown, code?: LarderErrorCode): error is LarderError {
  return error instanceof LarderError && (code === undefined || error.code === code)
}

/** Wraps an error raised by the caller's own code (a stream source, an `onProgress`
 *  callback), so it is rethrown as it was and never counted against the disk. Internal. */
export class SourceError extends Error {
  constructor(readonly original: unknown) {
    super('source failed')
  }
}

/**
 * A refused value as an error message shows it: `'plain'` as `String()` shows it, `'quoted'`
 * the same but a string in quotes, `'json'` as `JSON.stringify()` shows it; a function as
 * such (not its source). Never throws: `String()` throws for an object without a prototype
 * (or whose `toString` throws), `JSON.stringify()` for a BigInt or a cycle, and a message
 * that threw would replace the LarderError naming the field with a bare TypeError.
 */
export function shownValue(value: unknown, style: 'plain' | 'quoted' | 'json' = 'plain'): string {
  if (typeof value === 'function') return 'a function'
  if (style === 'json' || (style === 'quoted' && typeof value === 'string')) {
    try {
      const json = JSON.stringify(value) as string | undefined
      if (json !== undefined) return json
    } catch {
      // a BigInt, a cycle, a toJSON or getter that throws: shown plain
    }
  }
  try {
    return String(value)
  } catch {
    return Array.isArray(value) ? 'an array' : 'an object'
  }
}
