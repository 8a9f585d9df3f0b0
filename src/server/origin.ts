import { withoutCredentials } from '../options.js'
import { HttpError } from './http-error.js'

/**
 * Read-through from an origin (`--origin URL`): a miss on `GET /api/cache/:key` fetches
 * `URL/<key>` (the key percent-encoded) once for every caller waiting on that key
 * (singleflight), and the caller stores what it got. An origin that fails (a network error,
 * a timeout, a status that is not 2xx (redirects are not followed), a body over the limit, JSON
 * nested too deeply to store) is a 502 with a clear body, and
 * nothing is stored, so the next request asks again.
 */
export interface Fetched {
  value: unknown
  /** ms the value may be cached for: the origin's `Cache-Control: max-age`, else undefined
   *  (the default ttl); 0 when the origin forbids storing (`no-store`, `max-age=0`). */
  ttl: number | undefined
}

/** How long one origin request may take. */
const ORIGIN_TIMEOUT_MS = 10_000
/** The largest origin body read: a value is held whole. */
const MAX_ORIGIN_BODY = 8 * 1024 * 1024

/** Why `url` cannot be an origin, or undefined; never repeating the URL (it may hold a password). */
export function originProblem(url: string): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'not a URL'
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `an http or https URL is needed, not ${parsed.protocol}`
  // fetch refuses a URL holding credentials, so every miss would fail (and say the URL)
  if (parsed.username !== '' || parsed.password !== '') return 'a user or password in the URL is never sent to the origin: give one without'
  return undefined
}

export class Origin {
  readonly #base: string
  readonly #flights = new Map<string, Promise<unknown>>()

  /** `base` as originProblem accepts it (throws otherwise). */
  constructor(base: string) {
    const problem = originProblem(base)
    if (problem !== undefined) throw new Error(`origin: ${problem}`)
    this.#base = base.replace(/\/+$/, '')
  }

  /**
   * Runs `load` (which fetches and stores) once for all concurrent callers of `key`, and gives
   * each the same result. The flight ends when `load` settles, success or failure.
   */
  shared<T>(key: string, load: () => Promise<T>): Promise<T> {
    let flight = this.#flights.get(key) as Promise<T> | undefined
    if (flight === undefined) {
      flight = load().finally(() => this.#flights.delete(key))
      this.#flights.set(key, flight)
    }
    return flight
  }

  async fetch(key: string): Promise<Fetched> {
    const url = `${this.#base}/${encodeURIComponent(key)}`
    let response: Response
    try {
      response = await fetch(url, {
        signal: AbortSignal.timeout(ORIGIN_TIMEOUT_MS),
        // Not followed: a redirect to another host (an open redirect at the origin) would have
        // this server fetch, and cache, whatever address it names. A 3xx is a 502 like a 4xx.
        redirect: 'manual',
        headers: { accept: 'application/json, text/plain;q=0.9, */*;q=0.5' },
      })
    } catch (error) {
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `no answer within ${ORIGIN_TIMEOUT_MS / 1000} s`
          : ((error as { cause?: { code?: string } }).cause?.code ?? withoutCredentials((error as Error).message))
      throw originError(`the origin could not be reached (${reason})`)
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => {})
      throw originError(`the origin answered ${response.status} ${response.statusText}`.trim())
    }
    const declared = Number(response.headers.get('content-length') ?? 0)
    if (declared > MAX_ORIGIN_BODY) {
      await response.body?.cancel().catch(() => {})
      throw originError(`the origin's body is ${declared} bytes, over the ${MAX_ORIGIN_BODY}-byte limit`)
    }
    const body = await boundedText(response, MAX_ORIGIN_BODY)
    let value: unknown = body
    if ((response.headers.get('content-type') ?? '').includes('json')) {
      try {
        value = JSON.parse(body)
      } catch {
        throw originError('the origin sent invalid JSON')
      }
      try {
        JSON.stringify(value) // what storing it and answering with it will do
      } catch {
        throw originError('the origin sent JSON nested too deeply to store or send')
      }
    }
    return { value, ttl: ttlOf(response.headers.get('cache-control')) }
  }
}

/** The body as text, read a chunk at a time and given up past `limit` bytes (a chunked answer
 *  declares no length: read whole, a large one took the process's memory and then failed as a
 *  string too long). */
async function boundedText(response: Response, limit: number): Promise<string> {
  if (response.body === null) return ''
  const chunks: Uint8Array[] = []
  let bytes = 0
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      bytes += value.byteLength
      if (bytes > limit) throw originError(`the origin's body is over the ${limit}-byte limit`)
      chunks.push(value)
    }
  } catch (error) {
    await reader.cancel().catch(() => {})
    if (error instanceof HttpError) throw error
    throw originError(`the origin's answer broke off (${(error as Error).name === 'TimeoutError' ? 'too slow' : 'the connection failed'})`)
  }
  return Buffer.concat(chunks, bytes).toString('utf8')
}

function originError(message: string): HttpError {
  return new HttpError(502, 'ERR_ORIGIN', `${message}; nothing was cached`)
}

/** ms from `Cache-Control`: `no-store`/`no-cache`/`private` → 0 (do not store); `max-age=N`
 *  (or `s-maxage`, which a shared cache prefers) → N s; otherwise undefined (the default). */
export function ttlOf(cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined
  const directives = cacheControl
    .toLowerCase()
    .split(',')
    .map((d) => d.trim())
  if (directives.some((d) => d === 'no-store' || d === 'no-cache' || d === 'private')) return 0
  const age = (name: string): number | undefined => {
    const found = directives.find((d) => d.startsWith(`${name}=`))
    const seconds = found === undefined ? NaN : Number(found.slice(name.length + 1).replace(/"/g, ''))
    return Number.isFinite(seconds) && seconds >= 0 ? Math.floor(seconds) * 1000 : undefined
  }
  return age('s-maxage') ?? age('max-age')
}
