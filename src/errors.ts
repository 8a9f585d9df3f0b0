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

export class LarderError extends Error {
  readonly code: LarderErrorCode
  /** The option, argument or field the error is about, when there is one. */
  readonly field: string | undefined

  constructor(code: LarderErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'LarderError'
    this.code = code
    this.field = options.field
  }
}

export function isLarderError(error: unknown, code?: LarderErrorCode): error is LarderError {
  return error instanceof LarderError && (code === undefined || error.code === code)
}
