import { badRequest } from './http-error.js'

/**
 * What a request may name. Keys are hashed before they reach the disk (store/layout.ts), so
 * no key can become a path; these rules exist to refuse nonsense early with a 400 that names
 * the field, and to keep namespaces (one per tool and team) to names an operator can read.
 */

/** A build artifact's hash: turbo sends 16 hex digits, nx up to 20 decimal digits; other
 *  tools longer hex or base64url digests. */
const ARTIFACT_HASH = /^[A-Za-z0-9_-]{1,128}$/
/** A ccache or Bazel object path below its prefix: `ab/cdef…` (subdirs), `cdef…` (flat),
 *  `ac/<64 hex>` (bazel). Slash-separated segments, none of them `.` or `..`. */
const OBJECT_PATH = /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+){0,3}$/
/** A team or namespace name from a query or a path. */
const TEAM = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/
/** A key of the cache API: printable, no control characters, at most 1 KiB of UTF-8. */
const MAX_API_KEY_BYTES = 1024
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/

export function artifactHash(value: unknown, field = 'hash'): string {
  if (typeof value !== 'string' || !ARTIFACT_HASH.test(value)) {
    throw badRequest('ERR_INVALID_HASH', `Invalid ${field}: expected 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'`)
  }
  return value
}

export function objectPath(value: unknown, field = 'path'): string {
  if (typeof value !== 'string' || value.length > 300 || !OBJECT_PATH.test(value)) {
    throw badRequest('ERR_INVALID_HASH', `Invalid ${field}: expected up to 4 segments of A-Z, a-z, 0-9, '_' or '-' separated by '/'`)
  }
  return value
}

export function teamName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !TEAM.test(value)) {
    throw badRequest(
      'ERR_INVALID_TEAM',
      `Invalid ${field}: expected 1 to 100 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit`,
    )
  }
  return value
}

export function apiKey(value: unknown, field = 'key'): string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    CONTROL.test(value) ||
    Buffer.byteLength(value) > MAX_API_KEY_BYTES ||
    !value.isWellFormed()
  ) {
    throw badRequest('ERR_INVALID_KEY', `Invalid ${field}: expected 1 to ${MAX_API_KEY_BYTES} bytes of printable text`)
  }
  // An origin's URL would resolve them (`<origin>/..` is the origin's parent), encoded or not.
  if (value === '.' || value === '..') throw badRequest('ERR_INVALID_KEY', `Invalid ${field}: "." and ".." are path segments, not keys`)
  return value
}

/** A key a value is stored under or deleted by (PUT, DELETE /api/cache/:key): apiKey, but not
 *  `metrics`, whose GET answers the server's figures, so a value stored there is never read. */
export function storedApiKey(value: unknown): string {
  const key = apiKey(value)
  if (key === 'metrics') throw badRequest('ERR_INVALID_KEY', 'Invalid key: "metrics" is taken (GET /api/cache/metrics answers the figures)')
  return key
}
