import { PassThrough, Readable, Writable } from 'node:stream'
import { LarderError } from 'larder'
import { boundedKey, KEY_BYTES, TAG_BYTES } from './bounded-key.js'
import { CacheSource, type CacheOrOptions } from './cache-source.js'

export type { CacheOrOptions }

// undici declares these in a namespace, the default export of a CommonJS declaration file.
type CacheKey = import('undici/types/cache-interceptor.js').default.CacheKey
type CacheValue = import('undici/types/cache-interceptor.js').default.CacheValue
type GetResult = import('undici/types/cache-interceptor.js').default.GetResult
type CacheStore = import('undici/types/cache-interceptor.js').default.CacheStore
type Vary = Record<string, string | string[] | null>

export interface LarderCacheStoreOptions {
  /** The largest response body stored, in bytes; a larger one is not cached (its write
   *  stream errors, which undici answers by dropping the entry). Default: no limit (bodies
   *  stream to disk with bounded memory; the cache's `maxSize` bounds the total). */
  maxEntrySize?: number
  /** Hears what went wrong outside a write stream (a failing disk, an entry that cannot be
   *  read), as undici's MemoryCacheStore option of the same name: the request itself is
   *  answered by the origin instead. */
  errorCallback?: (error: Error) => void
}

/**
 * A persistent HTTP cache for undici 7's cache interceptor (and so for `fetch`):
 * `interceptors.cache({ store: new LarderCacheStore(options | cache) })`. undici decides
 * what is cacheable and for how long (RFC 9111); this store keeps responses on disk, shared
 * by every process using the directory.
 *
 * Each response is one larder entry written by `setStream`: a head (what undici gave
 * `createWriteStream`: status, headers, vary, etag, times, and the request key) followed by
 * the body as it streams in, so a body of any size costs bounded memory and the entry
 * appears whole or not at all. Its ttl is undici's `deleteAt`. An entry's key holds the
 * method, URL and the request's values of the headers the response varies on; a small index
 * per URL records, per method, which headers those are, so `get` can build the key from a
 * request. Responses for one URL are tagged with it: `delete` (undici calls it after an
 * unsafe request such as a POST) invalidates every method and variant in every process with
 * one tag stamp. On read the head is checked against the request (method, URL, vary), so a
 * stale index can only cost a miss.
 */
export class LarderCacheStore implements CacheStore {
  readonly #source: CacheSource
  readonly #maxEntrySize: number

  constructor(cache?: CacheOrOptions, options: LarderCacheStoreOptions = {}) {
    const { maxEntrySize = Infinity, errorCallback } = options
    if (typeof maxEntrySize !== 'number' || !(maxEntrySize >= 0)) {
      throw new LarderError('ERR_INVALID_OPTION', `Invalid maxEntrySize: expected a number of bytes ≥ 0, got ${String(maxEntrySize)}`, { field: 'maxEntrySize' })
    }
    this.#maxEntrySize = maxEntrySize
    this.#source = new CacheSource(cache, (error) => errorCallback?.(error))
  }

  /** The stored response for this request, or `undefined`; never rejects (undici would fail
   *  the request): anything that goes wrong is reported and read as a miss. */
  async get(key: CacheKey): Promise<GetResult | undefined> {
    return this.#source.guarded(undefined, async (cache) => {
      const index = (await cache.get(indexKey(key))) as UrlIndex | undefined
      const names = index?.methods[key.method]
      if (names === undefined) return undefined
      const stream = await cache.getStream(responseKey(key, names, (name) => key.headers?.[name] ?? null))
      if (stream === undefined) return undefined
      const split = await splitHead(stream).catch((error: unknown) => {
        stream.destroy()
        throw error
      })
      if (split === undefined) return undefined
      const { head, body } = split
      if (!answers(head, key) || head.deleteAt <= Date.now()) {
        body.destroy()
        return undefined
      }
      return {
        statusCode: head.statusCode,
        statusMessage: head.statusMessage,
        headers: head.headers,
        vary: head.vary,
        etag: head.etag,
        cacheControlDirectives: head.cacheControlDirectives ?? {},
        cachedAt: head.cachedAt,
        staleAt: head.staleAt,
        deleteAt: head.deleteAt,
        body,
      }
    })
  }

  /**
   * A Writable, returned at once as undici requires, that streams the body into larder.
   * `finish` comes once the entry is stored (or dropped by a failing disk, fail-open); a body
   * over `maxEntrySize`, or a write larder refuses, errors the stream and stores nothing.
   */
  createWriteStream(key: CacheKey, value: CacheValue): Writable | undefined {
    const ttl = value.deleteAt - Date.now()
    if (!(ttl > 0)) return undefined
    const names = Object.keys(value.vary ?? {}).sort()
    const head: Head = { origin: key.origin, method: key.method, path: key.path, ...value }
    const body = new PassThrough()
    body.on('error', () => {}) // an abort: setStream, reading it, hears of it and stores nothing
    const stored = this.#store(key, value, names, encodeHead(head), body, ttl)
    stored.catch(() => {}) // a destroyed stream's rejection is expected; final() reports the rest
    const maxEntrySize = this.#maxEntrySize
    let size = 0
    return new Writable({
      write(chunk: Buffer, _encoding, callback) {
        size += chunk.byteLength
        if (size > maxEntrySize) {
          callback(new LarderError('ERR_TOO_LARGE', `Response body over maxEntrySize (${maxEntrySize} bytes): not cached`, { field: 'maxEntrySize' }))
        } else if (body.write(chunk)) {
          callback()
        } else {
          body.once('drain', () => callback())
        }
      },
      final(callback) {
        body.end()
        stored.then(() => callback(), (error: Error) => callback(error))
      },
      destroy(error, callback) {
        // Aborted (by undici, or by write() above): the source errors, so nothing is stored.
        if (!body.writableFinished) body.destroy(error ?? new Error('response aborted before its end'))
        callback(error)
      },
    })
  }

  /** Forgets every stored response for the key's URL (all methods and variants), in every
   *  process. Costs nothing for a URL never cached. */
  async delete(key: CacheKey): Promise<void> {
    await this.#source.guarded(undefined, async (cache) => {
      if (await cache.has(indexKey(key))) await cache.invalidateTags([urlTag(key)])
    })
  }

  /** Closes the cache if this store opened it (a cache passed in stays open for its owner). */
  async close(): Promise<void> {
    await this.#source.close()
  }

  async #store(key: CacheKey, value: CacheValue, names: string[], head: Buffer, body: PassThrough, ttl: number): Promise<void> {
    const cache = await this.#source.ready
    const tags = [urlTag(key)]
    await cache.setStream(responseKey(key, names, (name) => value.vary?.[name] ?? null), withHead(head, body), { ttl, tags })
    // The index outlives the longest-lived response it points to.
    const index = (await cache.get(indexKey(key))) as UrlIndex | undefined
    const deleteAt = Math.max(value.deleteAt, index?.deleteAt ?? 0)
    const known = index?.methods[key.method]
    if (known !== undefined && known.join('\n') === names.join('\n') && deleteAt === index?.deleteAt) return
    const next: UrlIndex = { methods: { ...index?.methods, [key.method]: names }, deleteAt }
    await cache.set(indexKey(key), next, { ttl: Math.max(1, deleteAt - Date.now()), tags })
  }
}

/** Per URL: for each method, the (sorted) request headers its stored responses vary on. */
interface UrlIndex {
  methods: Record<string, string[]>
  deleteAt: number
}

/** What an entry stores ahead of the body: undici's CacheValue and the request key. */
interface Head extends CacheValue {
  origin: string
  method: string
  path: string
}

/** Entry bytes: `LUC1` · head length (uint32 BE) · head JSON · body. */
const MAGIC = Buffer.from('LUC1')
const MAX_HEAD_BYTES = 1024 * 1024

function encodeHead(head: Head): Buffer {
  const json = Buffer.from(JSON.stringify(head))
  const prefix = Buffer.alloc(8)
  MAGIC.copy(prefix)
  prefix.writeUInt32BE(json.length, 4)
  return Buffer.concat([prefix, json])
}

async function* withHead(head: Buffer, body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  yield head
  yield* body
}

/**
 * Reads an entry's head off the stream and hands back the rest as the body, without holding
 * more than the head and one chunk. `undefined` for bytes that are not one of our entries.
 */
function splitHead(stream: Readable): Promise<{ head: Head; body: Readable } | undefined> {
  return new Promise((resolve, reject) => {
    let held: Buffer = Buffer.alloc(0)
    const done = (result: { head: Head; body: Readable } | undefined, error?: unknown): void => {
      stream.off('data', onData).off('end', onEnd).off('error', onError)
      if (error !== undefined) reject(error)
      else resolve(result)
    }
    const onData = (chunk: Buffer): void => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk])
      if (held.length < 8) return
      const length = held.readUInt32BE(4)
      if (!held.subarray(0, 4).equals(MAGIC) || length > MAX_HEAD_BYTES) {
        stream.destroy()
        return done(undefined)
      }
      if (held.length < 8 + length) return
      stream.pause()
      let head: Head
      try {
        head = JSON.parse(held.toString('utf8', 8, 8 + length)) as Head
      } catch {
        stream.destroy()
        return done(undefined)
      }
      done({ head, body: bodyOf(stream, held.subarray(8 + length)) })
    }
    const onEnd = (): void => done(undefined)
    const onError = (error: unknown): void => done(undefined, error)
    stream.on('data', onData).on('end', onEnd).on('error', onError)
  })
}

/** The rest of an entry's stream, from `first`: a Readable that follows the source's
 *  backpressure, errors if the source does (`ERR_CORRUPT` on a checksum mismatch), and
 *  releases the source's file when destroyed early. */
function bodyOf(source: Readable, first: Buffer): Readable {
  const body = new Readable({
    read: () => void source.resume(),
    destroy: (error, callback) => {
      source.destroy()
      callback(error)
    },
  })
  if (first.length > 0) body.push(first)
  source.on('data', (chunk: Buffer) => {
    if (!body.push(chunk)) source.pause()
  })
  source.once('end', () => body.push(null))
  source.once('error', (error) => body.destroy(error))
  return body
}

/** Whether a stored head answers this request: same method and URL, and the request's values
 *  of every header the response varies on equal the stored ones (as undici's stores judge). */
function answers(head: Head, key: CacheKey): boolean {
  if (head.origin !== key.origin || head.path !== key.path || head.method !== key.method) return false
  for (const [name, stored] of Object.entries(head.vary ?? {})) {
    if (!sameHeaderValue(key.headers?.[name] ?? null, stored)) return false
  }
  return true
}

function sameHeaderValue(a: string | string[] | null, b: string | string[] | null): boolean {
  if (a === null || b === null) return a === b
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i])
  return a === b
}

function url(key: CacheKey): string {
  return `${key.origin}${key.path}`
}

function indexKey(key: CacheKey): string {
  return boundedKey('undici:index ', url(key), KEY_BYTES)
}

function urlTag(key: CacheKey): string {
  return boundedKey('undici:', url(key), TAG_BYTES)
}

/** The key of one response: method, URL and the values of the headers it varies on. */
function responseKey(key: CacheKey, names: string[], valueOf: (name: string) => Vary[string]): string {
  const vary = names.length === 0 ? '' : ` vary ${JSON.stringify(names.map((name) => [name, valueOf(name)]))}`
  return boundedKey('undici:', `${key.method} ${url(key)}${vary}`, KEY_BYTES)
}
