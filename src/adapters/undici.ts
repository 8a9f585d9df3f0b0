import { PassThrough, Readable, Writable } from 'node:stream'
import { LarderError, type Larder } from 'larder'
import { boundedKey, KEY_BYTES, TAG_BYTES } from './bounded-key.js'
import { CacheSource, isCache, type CacheOrOptions } from './cache-source.js'
import { ResentDeletes } from './resent-deletes.js'

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
 * A persistent HTTP cache for undici 7's and 8's cache interceptor (and so for `fetch`):
 * `interceptors.cache({ store: new LarderCacheStore(options | cache) })`. undici decides
 * what is cacheable and for how long (RFC 9111); this store keeps responses on disk, shared
 * by every process using the directory.
 *
 * Each response is one larder entry: a head (what undici gave `createWriteStream`: status,
 * headers, vary, etag, times, and the request key) followed by the body. A response of up to
 * 64 KiB is written whole by `set` (one read serves it, from the memory tier if the cache has
 * one); a larger one streams into `setStream` as it arrives, so a body of any size costs
 * bounded memory and appears whole or not at all (and stays in this host's directory: with
 * `redis`, only responses `set` wrote reach other hosts). Its ttl is undici's `deleteAt`.
 * An entry's key holds the method, URL and the request's values of the headers the response
 * varies on; a small index per URL records, per method, which headers those are, so `get`
 * can build the key of a varying response from a request (one that varies on nothing needs
 * no index).
 * `delete` (undici calls it after an unsafe request such as a POST) forgets every method and
 * variant of the URL in every process: responses that vary on nothing (most) by key (GET's and
 * HEAD's always, other methods' as the index lists them), so they carry no tag and their hits
 * ask no tag clock; variants, whose keys it cannot list, and the index are tagged with the URL
 * and go with one tag stamp.
 * On read the head is checked against the request (method, URL, vary, deleteAt), so a stale
 * index can only cost a miss.
 * A response whose body is still arriving when its URL is deleted (by any process) is not
 * kept: a delete first stores when it was made, and once a write's entry is stored the write
 * compares that with when createWriteStream was called; it also looks at the URL's index
 * (written as its write begins) again: gone, or made anew since, a delete may have come
 * between. Then the entry just stored is removed (a miss more, never a stale response). Of two writes of
 * one response at once, the one that completes last is served (#enter).
 */
export class LarderCacheStore implements CacheStore {
  readonly #source: CacheSource
  readonly #maxEntrySize: number
  readonly #report: (error: Error) => void
  /** Deletes the cache refused (failOpen false), sent again: undici never hears of them. */
  readonly #resent: ResentDeletes<CacheKey>
  /** Streamed responses whose whole body has arrived and whose entry is being committed, by
   *  entry key: a `get` of one waits for it (at most COMMIT_WAIT_MS), or the request made right
   *  after the first had its body would go to the origin again. */
  readonly #committing = new Map<string, Promise<unknown>>()
  /** The writes of each response (by entry key) under way in this process: which of two
   *  writes of one response at once is served depends on how they end (#enter). */
  readonly #writes = new Map<string, EntryWrites>()

  constructor(cache?: CacheOrOptions, options: LarderCacheStoreOptions = {}) {
    const { maxEntrySize = Infinity, errorCallback } = knownOptions(options)
    if (typeof maxEntrySize !== 'number' || !(maxEntrySize >= 0)) {
      throw new LarderError('ERR_INVALID_OPTION', `Invalid maxEntrySize: expected a number of bytes ≥ 0, got ${String(maxEntrySize)}`, {
        field: 'maxEntrySize',
      })
    }
    if (errorCallback !== undefined && typeof errorCallback !== 'function') {
      throw new LarderError('ERR_INVALID_OPTION', `Invalid errorCallback: expected a function, got ${typeof errorCallback}`, {
        field: 'errorCallback',
      })
    }
    assertStoresBytes(cache)
    this.#maxEntrySize = maxEntrySize
    this.#report = (error) => {
      try {
        errorCallback?.(error)
      } catch {
        // Dropped: what the callback throws (a logger that failed), thrown from here, would
        // reject a get (undici fails the request) or a delete, which must never reject.
      }
    }
    this.#source = new CacheSource(cache, this.#report)
    this.#resent = new ResentDeletes((key) => this.#source.guarded(undefined, this.#deleteNow, key), this.#report)
  }

  /** The stored response for this request, or `undefined`; never rejects (undici would fail
   *  the request): anything that goes wrong is reported and read as a miss. */
  get(key: CacheKey): Promise<GetResult | undefined> {
    return this.#source.guarded(undefined, this.#lookup, key).catch(this.#reportedMiss) // failOpen false: guarded rethrows ERR_UNAVAILABLE, which undici would make the request's error
  }

  /**
   * get's work. Most responses vary on nothing: their key needs no index, so look there
   * first. The common hit, such a response stored whole, is one `then` on the cache's own get
   * and a head most likely parsed before (`headOf`), with no async frame between: the
   * adapter's part of a file-tier hit was a third of it (two async frames, a latin1 copy of
   * the head per hit). Made once, not per call.
   */
  readonly #lookup = (cache: Larder, key: CacheKey): Promise<GetResult | undefined> => {
    const plainKey = responseKey(key, NO_NAMES, noValue)
    if (this.#committing.size > 0) return this.#lookupAfterCommits(cache, key, plainKey)
    return cache.get(plainKey).then((value) => {
      const bytes = bytesOf(value)
      return bytes !== undefined ? bufferedResponse(cache, bytes, plainKey, key) : this.#afterPlainMiss(cache, key, plainKey)
    })
  }

  /** #lookup while streamed responses are being committed: each key read waits for its own. */
  async #lookupAfterCommits(cache: Larder, key: CacheKey, plainKey: string): Promise<GetResult | undefined> {
    await this.#committed(plainKey)
    const bytes = bytesOf(await cache.get(plainKey))
    return bytes !== undefined ? bufferedResponse(cache, bytes, plainKey, key) : this.#afterPlainMiss(cache, key, plainKey)
  }

  /** No buffered response under the plain key: its streamed one, else a variant the URL's index names. */
  async #afterPlainMiss(cache: Larder, key: CacheKey, plainKey: string): Promise<GetResult | undefined> {
    const plain = await streamedResponse(cache, plainKey, key)
    if (plain !== undefined) return plain
    const index = await readIndex(cache, key)
    const names = index?.methods[key.method]
    if (names === undefined || names.length === 0) return undefined
    const variantKey = responseKey(key, names, (name) => key.headers?.[name] ?? null)
    if (this.#committing.size > 0) await this.#committed(variantKey)
    return readResponse(cache, variantKey, key)
  }

  /**
   * A Writable, returned at once as undici requires, that stores the response. A body that
   * ends within SMALL_BYTES is stored as one buffered entry (read back in one step, and held
   * by the memory tier if the cache has one); past that, the bytes held so far and the rest
   * stream into `setStream`, with bounded memory. `finish` comes once the entry is stored
   * (or dropped by a failing disk, fail-open); a body over `maxEntrySize`, or a write larder
   * refuses, errors the stream (undici's channel) and stores nothing.
   */
  createWriteStream(key: CacheKey, value: CacheValue): Writable | undefined {
    const ttl = value.deleteAt - Date.now()
    if (!(ttl > 0)) return undefined
    const names = Object.keys(value.vary ?? {}).sort()
    const entryKey = responseKey(key, names, (name) => value.vary?.[name] ?? null)
    const head = encodeHead({ origin: key.origin, method: key.method, path: key.path, ...value })
    const writes = this.#enter(entryKey)
    /** Whether final() runs: the write leaves once its store is done, not when destroyed. */
    let finishing = false
    let left = false
    const leave = (): void => {
      if (left) return
      left = true
      this.#leave(entryKey, writes)
    }
    // Taken now, before any await: a delete called from here on, in any process, stamps later.
    // The wall clock, not this cache's now(): that counts µs within a millisecond and runs
    // ahead of the wall clock in a burst of writes, and a delete stamped by another instance's
    // clock, which was not ahead, was taken for one made before the write began. Any
    // instance's now() is at least the wall clock, so a later delete's stamp is never below this.
    const begun: Begun = { at: Date.now(), indexed: this.#begin(key, value, names) }
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the Writable's methods below have their own `this`
    const store = this
    const maxEntrySize = this.#maxEntrySize
    const held: Buffer[] = [head]
    let size = 0
    let stream: { body: PassThrough; stored: Promise<void> } | undefined
    /** Destroyed before its end: an abort (the client went away), not a write larder refused. */
    let aborted = false
    /** A write waiting for the body to drain; released if nothing will read it any more. */
    let waiting: (() => void) | undefined
    const release = (): void => {
      const next = waiting
      waiting = undefined
      next?.()
    }
    const writable = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        size += chunk.byteLength
        if (size > maxEntrySize) {
          callback(
            new LarderError('ERR_TOO_LARGE', `Response body over maxEntrySize (${maxEntrySize} bytes): not cached`, {
              field: 'maxEntrySize',
            }),
          )
          return
        }
        if (stream === undefined) {
          held.push(chunk)
          if (head.length + size <= SMALL_BYTES) return callback()
          stream = store.#streamed(key, value, names, entryKey, held.splice(0), ttl, begun, writes)
          // The store can end before the body does: a failing disk (dropped, fail-open) or a
          // cache that could not open. Nothing drains the body then, and undici, paused until
          // this stream drains, would never deliver the rest of the response.
          stream.body.once('close', release)
          stream.stored.then(release, (error: Error) => {
            if (!aborted) store.#reportWriteError(error) // an abort's store fails with the abort's error
            writable.destroy(error)
          })
          return callback()
        }
        // Nothing reads the body any more: the rest of the response goes on to the client, not here.
        if (stream.body.destroyed) return callback()
        if (stream.body.write(chunk)) return callback()
        waiting = callback
        stream.body.once('drain', release)
      },
      final(callback) {
        finishing = true
        let stored: Promise<void>
        if (stream === undefined) {
          stored = store.#buffered(key, value, names, entryKey, Buffer.concat(held), ttl, begun, writes)
        } else {
          stream.body.end()
          stored = stream.stored
          store.#committingUntil(streamKey(entryKey), stored)
        }
        // The whole body is here: what is left is bounded disk work, which close() waits for.
        store.#source.track(stored).then(
          () => {
            leave()
            callback()
          },
          (error: Error) => {
            leave()
            if (stream === undefined) store.#reportWriteError(error) // a stream's was reported as it failed
            callback(error)
          },
        )
      },
      destroy(error, callback) {
        // Aborted (by undici, or by write() above): a stream's source errors, so nothing is stored.
        if (!finishing) aborted = true
        if (stream !== undefined && !stream.body.writableFinished)
          stream.body.destroy(error ?? new Error('response aborted before its end'))
        if (!finishing) leave()
        callback(error)
      },
    })
    return writable
  }

  /**
   * Forgets every stored response for the key's URL (all methods and variants), in every
   * process. Responses that vary on nothing go by key: GET's and HEAD's always (undici caches
   * those by default), and those of any other method the URL's index names; never by the index
   * alone, which can be gone (evicted before a popular entry whose hits never read it) or miss
   * a method (two processes' updates, one overwriting the other). Variants, whose keys cannot
   * be listed, go with one stamp of the URL's tag when the index names headers; a variant the
   * index does not name cannot be read, and before one can be again, its store stamps the tag
   * (#beforeVariant). Never rejects: undici does not await it (a rejection would end the
   * process, even with `failOpen: false`); what fails is reported, and a delete the cache
   * refused (`failOpen: false`: Redis could not take it) is held and sent again (ResentDeletes).
   */
  async delete(key: CacheKey): Promise<void> {
    await this.#source.guarded(undefined, this.#deleteNow, key).catch((error: unknown) => {
      this.#resent.holdIfRefused(error, indexKey(key), key) // refused (failOpen false): sent again later
      return this.#reportedMiss(error)
    })
  }

  /** What `delete` does, once (a refused one is run again by #resent). */
  readonly #deleteNow = async (cache: Larder, key: CacheKey): Promise<undefined> => {
    // First, a trace no write leaves: when this delete was made. A write under way that began
    // before it removes what it stores (#settle), even one whose index write has not landed
    // yet, which the index alone misses (the delete finds no index; the write writes it after).
    await cache.set(deletedAtKey(key), Buffer.from(JSON.stringify(cache.now())), { ttl: DELETED_AT_TTL_MS })
    const before = await troubleMark(cache)
    const index = await readIndex(cache, key)
    // A miss that a failing tier answered (fail-open: Redis away, a disk error) may hide
    // an index naming variants: stamp the URL's tag then, as if it did (queued for Redis
    // until it is back); an extra stamp only costs misses of this URL's variants.
    const unsure = index === undefined && (await troubleMark(cache)) !== before
    // The index goes first (removed, or stamped stale with the variants): a write whose body
    // is arriving looks at it once its entry is stored (#settle), so either it sees the index
    // gone and removes its entry, or it saw it before, stored before, and the removals below
    // come after its entry.
    if (index === undefined) {
      if (unsure) await cache.invalidateTags([urlTag(key)])
    } else if (Object.values(index.methods).some((names) => names.length > 0)) await cache.invalidateTags([urlTag(key)])
    else await cache.delete(indexKey(key))
    const methods = new Set([...ALWAYS_DELETED, ...Object.keys(index?.methods ?? {})])
    await cache.deleteMany([...methods].flatMap((method) => withStreamKey(responseKey({ ...key, method }, [], () => null))))
    return undefined
  }

  /** Reports what a call that must not reject met, and answers a miss. */
  readonly #reportedMiss = (error: unknown): undefined => {
    this.#report(error instanceof Error ? error : new Error(String(error)))
    return undefined
  }

  /** Waits for the deletes and writes in flight (undici awaits neither), then closes the
   *  cache if this store opened it (a cache passed in stays open for its owner). */
  async close(): Promise<void> {
    await this.#resent.drain()
    await this.#source.close()
  }

  async #buffered(
    key: CacheKey,
    value: CacheValue,
    names: string[],
    entryKey: string,
    bytes: Buffer,
    ttl: number,
    begun: Begun,
    writes: EntryWrites,
  ): Promise<void> {
    const cache = await this.#source.ready
    const since = await begun.indexed
    writes.buffered++
    try {
      await cache.set(entryKey, bytes, { ttl, tags: tagsOf(key, names) })
    } finally {
      writes.buffered--
    }
    const stored = ++writes.completed
    // A larger response stored before under this key would shadow nothing, but would linger.
    // Not one being streamed now (see #enter): it ends after this one, and is served.
    await cache.deleteMany([...(writes.streamed === 0 ? [streamKey(entryKey)] : []), ...shadowing(key, names)])
    await this.#settle(cache, key, value, names, begun.at, since, entryKey, writes, stored)
  }

  /**
   * What a write does before its body has arrived: a variant's #beforeVariant, and the URL's
   * index written (#remember), so that a delete made while the body arrives, in any process,
   * finds it (and removes or stamps it). Resolves to when it was done (`cache.now()`), which
   * #settle compares the index with; undefined when it could not be done (the write then
   * records the index once stored, as if begun then).
   */
  #begin(key: CacheKey, value: CacheValue, names: string[]): Promise<number | undefined> {
    return this.#source.ready
      .then(async (cache) => {
        await this.#beforeVariant(cache, key, names)
        await this.#remember(cache, key, value, names)
        return cache.now()
      })
      .catch(() => undefined) // a cache that failed to open, or refused (failOpen false): met again by the write
  }

  /** After the entry `stored` is written (the `number`th store of it here to complete): if a
   *  delete of the URL stamped it at or after the write began (`began`, taken as
   *  createWriteStream was called), or the URL's index is gone or was made anew after the
   *  index was written (`since`), a delete came while the body arrived; the entry is removed,
   *  unless a later write of the response has completed since (it replaced or removed this
   *  one's, and judges its own). */
  async #settle(
    cache: Larder,
    key: CacheKey,
    value: CacheValue,
    names: string[],
    began: number,
    since: number | undefined,
    stored: string,
    writes: EntryWrites,
    number: number,
  ): Promise<void> {
    let deleted = ((await readDeletedAt(cache, key)) ?? -Infinity) >= began
    if (!deleted) {
      if (since === undefined) return this.#remember(cache, key, value, names)
      const index = await readIndex(cache, key)
      deleted = index === undefined || index.madeAt > since || index.methods[key.method] === undefined
    }
    if (deleted && writes.completed === number) await cache.delete(stored)
  }

  /**
   * Two writes of one response at once (two requests for a URL not cached yet): the one that
   * completes last is served, never neither. Each write, once stored, removes the response's
   * other form (a buffered entry shadows a stream; a stream would linger), but not while a
   * write of that form is being stored here: a removal of a stream being written waits for it
   * and then removes it, and that write, completing after, removes this one's: neither. A
   * write removes its entry on a sign of a delete (#settle) only while no later write of the
   * response has completed. Writes in other processes are not known here.
   */
  #enter(entryKey: string): EntryWrites {
    let writes = this.#writes.get(entryKey)
    if (writes === undefined) this.#writes.set(entryKey, (writes = { open: 0, completed: 0, buffered: 0, streamed: 0 }))
    writes.open++
    return writes
  }

  #leave(entryKey: string, writes: EntryWrites): void {
    if (--writes.open === 0 && this.#writes.get(entryKey) === writes) this.#writes.delete(entryKey)
  }

  /** Waits (at most COMMIT_WAIT_MS) for a streamed response under `entryKey` whose body has
   *  all arrived to be committed. */
  async #committed(entryKey: string): Promise<void> {
    const committing = this.#committing.get(streamKey(entryKey))
    if (committing === undefined) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([committing, new Promise<void>((resolve) => (timer = setTimeout(resolve, COMMIT_WAIT_MS)))])
    clearTimeout(timer)
  }

  #committingUntil(key: string, stored: Promise<void>): void {
    const settled = stored.then(
      () => {},
      () => {},
    )
    this.#committing.set(key, settled)
    void settled.then(() => {
      if (this.#committing.get(key) === settled) this.#committing.delete(key)
    })
  }

  /** A write larder refused (not one over a size bound: not cached by design): undici only
   *  drops the entry, so the host hears why through errorCallback. */
  #reportWriteError(error: Error): void {
    if ((error as { code?: unknown }).code !== 'ERR_TOO_LARGE') this.#report(error)
  }

  #streamed(
    key: CacheKey,
    value: CacheValue,
    names: string[],
    entryKey: string,
    held: Buffer[],
    ttl: number,
    begun: Begun,
    writes: EntryWrites,
  ): { body: PassThrough; stored: Promise<void> } {
    const body = new PassThrough()
    body.on('error', () => {}) // an abort: setStream, reading it, hears of it and stores nothing
    for (const chunk of held) body.write(chunk)
    const stored = (async () => {
      const cache = await this.#source.ready
      if (cache.dir === false) {
        throw new LarderError(
          'ERR_TOO_LARGE',
          `Response over ${SMALL_BYTES} bytes: not cached by a cache without a directory (dir: false), which stores no streams`,
          { field: 'dir' },
        )
      }
      const since = await begun.indexed
      writes.streamed++
      try {
        await cache.setStream(streamKey(entryKey), body, { ttl, tags: tagsOf(key, names) })
      } finally {
        writes.streamed--
      }
      const stored = ++writes.completed
      // The smaller response stored before would be read first; not one being stored now (see
      // #enter): it ends after this one, and is served.
      await cache.deleteMany([...(writes.buffered === 0 ? [entryKey] : []), ...shadowing(key, names)])
      await this.#settle(cache, key, value, names, begun.at, since, streamKey(entryKey), writes, stored)
    })()
    stored.catch(() => {}) // a destroyed stream's rejection is expected; final() reports the rest
    return { body, stored }
  }

  /**
   * Before a variant (`names` not empty) is stored where the URL's index names no headers for
   * its method (or there is no index): stamps the URL's tag, so variants stored before, which
   * the index made unreadable (an index evicted or overwritten, a response that varied on
   * nothing in between) and a delete may have missed, cannot be read again once the index
   * names headers anew. Rare: once per method and index, not per response.
   */
  async #beforeVariant(cache: Larder, key: CacheKey, names: string[]): Promise<void> {
    if (names.length === 0) return
    const index = await readIndex(cache, key)
    if ((index?.methods[key.method]?.length ?? 0) === 0) await cache.invalidateTags([urlTag(key)])
  }

  /** Records in the URL's index which headers this method's responses vary on; the index
   *  outlives the longest-lived response it points to. Stored as bytes (JSON), as responses
   *  are, so a cache of any serializer that gives bytes back as bytes (`raw` too; see
   *  assertStoresBytes) can hold it. */
  async #remember(cache: Larder, key: CacheKey, value: CacheValue, names: string[]): Promise<void> {
    const index = await readIndex(cache, key)
    const deleteAt = Math.max(value.deleteAt, index?.deleteAt ?? 0)
    const known = index?.methods[key.method]
    if (known !== undefined && known.join('\n') === names.join('\n') && deleteAt === index?.deleteAt) return
    const now = cache.now()
    // Made now when there was none (a delete removes the index, or stamps it stale); an update
    // keeps when it was made, so a write under way does not take another's update for a delete.
    const next: UrlIndex = { methods: { ...index?.methods, [key.method]: names }, deleteAt, writtenAt: now, madeAt: index?.madeAt ?? now }
    await cache.set(indexKey(key), Buffer.from(JSON.stringify(next)), { ttl: Math.max(1, deleteAt - Date.now()), tags: [urlTag(key)] })
  }
}

/** Responses up to this size (head and body) are one buffered entry; larger ones stream.
 *  64 KiB is where larder's own read path switches from one read to a stream. */
const SMALL_BYTES = 64 * 1024

/** The response stored under `entryKey` (buffered) or its stream key, if it answers `key`. */
async function readResponse(cache: Larder, entryKey: string, key: CacheKey): Promise<GetResult | undefined> {
  const bytes = bytesOf(await cache.get(entryKey))
  return bytes !== undefined ? bufferedResponse(cache, bytes, entryKey, key) : streamedResponse(cache, entryKey, key)
}

/**
 * The buffered response `bytes` (stored under `entryKey`), if it answers `key`. Its body is a
 * copy when the cache has a memory tier: that tier answers every hit with the one Buffer it
 * holds, and undici hands the body to the app as it is (`request()`'s chunks), so a chunk
 * the app changed in place was served, changed, to every later hit of this process.
 */
function bufferedResponse(cache: Larder, bytes: Buffer, entryKey: string, key: CacheKey): GetResult | undefined {
  const parsed = parseHead(bytes, entryKey)
  if (parsed === undefined || parsed === 'short' || !answers(parsed.head, key)) return undefined
  const body = bytes.subarray(parsed.end)
  return resultOf(parsed.head, replayable(cache.options.memory === false ? body : Buffer.from(body)))
}

/**
 * A buffered body as undici reads it best: a Buffer (`Readable.from` pushes it whole, where an
 * array of one Buffer goes through an iterator: ~2.7 µs more a fetch, Node 24), whose
 * `values()` yields it whole once, as an array's would: undici replays `values()` when a 304
 * renews the entry, and a plain Buffer's are its bytes, one number each (the write throws:
 * never renewed). One prototype for every such body, set on the view made for the hit.
 */
function replayable(body: Buffer): Buffer {
  return Object.setPrototypeOf(body, REPLAYABLE_BODY) as Buffer
}

const REPLAYABLE_BODY = Object.create(Buffer.prototype as object, {
  values: {
    value: function values(this: Buffer): IterableIterator<Buffer> {
      return [this].values()
    },
  },
}) as object

/** The response streamed under `entryKey`'s stream key, if it answers `key`. */
async function streamedResponse(cache: Larder, entryKey: string, key: CacheKey): Promise<GetResult | undefined> {
  if (cache.dir === false) return undefined // no directory, no streams: only buffered responses are stored
  // Checked whole before undici sends a byte (a file over 2 MiB is otherwise checked as it
  // flows): a damaged response is a miss that goes to the origin, not a fetch that fails
  // midway. The price: a large hit is read twice (the second time from the page cache).
  const stream = await cache.getStream(streamKey(entryKey), { verifyFirst: true })
  if (stream === undefined) return undefined
  const split = await splitHead(stream, entryKey).catch((error: unknown) => {
    stream.destroy()
    throw error
  })
  if (split === undefined) return undefined
  if (!answers(split.head, key)) {
    split.body.destroy()
    return undefined
  }
  return resultOf(split.head, split.body)
}

/**
 * What changes whenever one of the cache's tiers fails a call (an error counted, a call its
 * breaker refused) or resets its counts: two marks that differ around a read say that its
 * miss may be a failure that fail-open answered as one.
 */
async function troubleMark(cache: Larder): Promise<string> {
  const { errors, breaker, tiers } = await cache.stats()
  return `${errors} ${breaker.rejected} ${tiers.redis?.breaker?.rejected ?? 0}`
}

function resultOf(head: Head, body: Readable | Buffer): GetResult {
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
}

/** Per URL: for each method, the (sorted) request headers its stored responses vary on; when
 *  it was written (0: by a version of this store that did not say), and when it was made (the
 *  first write after none was there: kept by updates; written before versions kept it: when
 *  it was written). */
interface UrlIndex {
  methods: Record<string, string[]>
  deleteAt: number
  writtenAt: number
  madeAt: number
}

/** The writes of one response under way in this process (see LarderCacheStore.#enter). */
interface EntryWrites {
  /** Begun and not ended. */
  open: number
  /** Stores of it completed so far: a write's number says whether a later one completed since. */
  completed: number
  /** Stores called and not completed yet, by form. */
  buffered: number
  streamed: number
}

/** The URL's index, if the cache holds one: bytes of JSON, or the object an older version of
 *  this store wrote; anything else is no index. */
async function readIndex(cache: Larder, key: CacheKey): Promise<UrlIndex | undefined> {
  let index = await cache.get(indexKey(key))
  const bytes = bytesOf(index)
  if (bytes !== undefined) {
    try {
      index = JSON.parse(bytes.toString('utf8'))
    } catch {
      return undefined
    }
  }
  const { methods, deleteAt, writtenAt = 0, madeAt = writtenAt } = (index ?? {}) as Partial<UrlIndex>
  if (typeof deleteAt !== 'number' || typeof writtenAt !== 'number' || typeof madeAt !== 'number') return undefined
  if (typeof methods !== 'object' || methods === null) return undefined
  return { methods, deleteAt, writtenAt, madeAt }
}

/** When the URL was last deleted (`cache.now()` of the delete), if a delete within
 *  DELETED_AT_TTL_MS left its stamp. */
async function readDeletedAt(cache: Larder, key: CacheKey): Promise<number | undefined> {
  const bytes = bytesOf(await cache.get(deletedAtKey(key)))
  if (bytes === undefined) return undefined
  try {
    const at = JSON.parse(bytes.toString('utf8')) as unknown
    return typeof at === 'number' ? at : undefined
  } catch {
    return undefined
  }
}

/** Bytes the cache gave back, as a Buffer (no copy): a custom serializer may give any
 *  ArrayBufferView (a Uint8Array, as @msgpack/msgpack and CBOR libraries do); `undefined` for
 *  anything else. */
function bytesOf(value: unknown): Buffer | undefined {
  if (Buffer.isBuffer(value)) return value
  if (!ArrayBuffer.isView(value)) return undefined
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

/**
 * Refuses a cache whose custom serializer does not give bytes back as bytes (an ArrayBufferView
 * of the same bytes): responses and the URL's index are stored as bytes, and over such a cache
 * nothing would be cached, and nothing said. The built-in serializers all do (`raw` too).
 */
function assertStoresBytes(cache: CacheOrOptions | undefined): void {
  const serializer = (isCache(cache) ? cache.options : cache)?.serializer
  if (serializer === undefined || typeof serializer === 'string') return
  const probe = Buffer.from([0x4c, 0x55, 0x43, 0x31, 0, 0xff, 0x80])
  let back: Buffer | undefined
  let why = ''
  try {
    const serialized = serializer.serialize(probe)
    back = bytesOf(serializer.deserialize(typeof serialized === 'string' ? Buffer.from(serialized, 'utf8') : Buffer.from(serialized)))
  } catch (error) {
    why = `: ${error instanceof Error ? error.message : String(error)}`
  }
  if (back?.equals(probe) === true) return
  throw new LarderError(
    'ERR_INVALID_OPTION',
    `Invalid serializer for LarderCacheStore: its serialize/deserialize must give bytes (a Buffer) back as bytes (a Buffer or another ArrayBufferView), as every built-in serializer does${why}`,
    { field: 'serializer' },
  )
}

/** The store's options, each name known. An unknown one is refused, not ignored: undici's
 *  own stores take `maxCount`, `maxSize` and `location` here, and one carried over (or a typo)
 *  would leave the store without the bound it asked for, unsaid. (Written here, not taken from
 *  the core's validate.ts: bundled into the adapter, that would throw a second LarderError
 *  class, which `isLarderError` from 'larder' does not recognise.) */
function knownOptions(options: unknown): LarderCacheStoreOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new LarderError('ERR_INVALID_OPTION', 'Invalid options: expected an object', { field: 'options' })
  }
  for (const name of Object.keys(options)) {
    if (name === 'maxEntrySize' || name === 'errorCallback') continue
    throw new LarderError('ERR_INVALID_OPTION', `Invalid option "${name}": not a known option (known: maxEntrySize, errorCallback)`, {
      field: name,
    })
  }
  return options
}

/** How long a delete's stamp is kept: a write whose body takes longer to arrive than this
 *  after a delete is judged by the index alone. */
const DELETED_AT_TTL_MS = 24 * 60 * 60 * 1000

/** A write's start: when createWriteStream was called (the wall clock's millisecond, what a
 *  delete's stamp is compared with), and when the URL's index was written for it (#begin). */
interface Begun {
  at: number
  indexed: Promise<number | undefined>
}

/** How long a get waits for a streamed response being committed (#committed). */
const COMMIT_WAIT_MS = 1000

/** What an entry stores ahead of the body: undici's CacheValue and the request key. */
interface Head extends CacheValue {
  origin: string
  method: string
  path: string
}

/** Entry bytes: `LUC1` · head length (uint32 BE) · head JSON · body. */
const MAGIC = Buffer.from('LUC1')
/** The magic as the uint32 it reads as, so a read checks it without a slice. */
const MAGIC_WORD = MAGIC.readUInt32BE(0)
const MAX_HEAD_BYTES = 1024 * 1024

function encodeHead(head: Head): Buffer {
  const json = Buffer.from(JSON.stringify(head))
  const prefix = Buffer.alloc(8)
  MAGIC.copy(prefix)
  prefix.writeUInt32BE(json.length, 4)
  return Buffer.concat([prefix, json])
}

/** The head at the start of `bytes` (an entry stored under `entryKey`): the head and where
 *  the body starts, `'short'` if more bytes are needed, or `undefined` for bytes that are not
 *  one of our entries. */
function parseHead(bytes: Buffer, entryKey: string): { head: Head; end: number } | 'short' | undefined {
  if (bytes.length < 8) return 'short'
  const length = bytes.readUInt32BE(4)
  if (bytes.readUInt32BE(0) !== MAGIC_WORD || length > MAX_HEAD_BYTES) return undefined
  if (bytes.length < 8 + length) return 'short'
  try {
    return { head: headOf(bytes, 8, 8 + length, entryKey), end: 8 + length }
  } catch {
    return undefined
  }
}

/**
 * The head parsed last for each entry key lately, with its exact bytes: a hit whose head is
 * byte for byte the one parsed before (compared in place, nothing copied) parses nothing,
 * where JSON.parse of the head was a tenth of a file-tier hit's time. Every hit of one
 * response then shares the head's headers, vary and directives objects, as undici's
 * MemoryCacheStore shares its entries' (undici only reads them; fetch copies the headers into
 * its Response). Bounded: the last PARSED_HEADS keys, heads of up to PARSED_HEAD_BYTES each
 * (~1 MiB at most), oldest out first.
 */
const parsedHeads = new Map<string, { bytes: Buffer; head: Head }>()
const PARSED_HEADS = 256
const PARSED_HEAD_BYTES = 4096

function headOf(bytes: Buffer, start: number, end: number, entryKey: string): Head {
  if (end - start > PARSED_HEAD_BYTES) return JSON.parse(bytes.toString('utf8', start, end)) as Head
  const held = parsedHeads.get(entryKey)
  if (held !== undefined && held.bytes.length === end - start && held.bytes.compare(bytes, start, end) === 0) return held.head
  const head = JSON.parse(bytes.toString('utf8', start, end)) as Head
  if (held === undefined && parsedHeads.size >= PARSED_HEADS) parsedHeads.delete(parsedHeads.keys().next().value as string)
  parsedHeads.set(entryKey, { bytes: Buffer.from(bytes.subarray(start, end)), head })
  return head
}

/**
 * Reads an entry's head off the stream and hands back the rest as the body, without holding
 * more than the head and one chunk. `undefined` for bytes that are not one of our entries.
 */
function splitHead(stream: Readable, entryKey: string): Promise<{ head: Head; body: Readable } | undefined> {
  return new Promise((resolve, reject) => {
    let held: Buffer = Buffer.alloc(0)
    const done = (result: { head: Head; body: Readable } | undefined, error?: unknown): void => {
      stream.off('data', onData).off('end', onEnd).off('error', onError)
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the stream's 'error', passed on as it came
      if (error !== undefined) reject(error)
      else resolve(result)
    }
    const onData = (chunk: Buffer): void => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk])
      const parsed = parseHead(held, entryKey)
      if (parsed === 'short') return
      if (parsed === undefined) {
        stream.destroy()
        return done(undefined)
      }
      stream.pause()
      done({ head: parsed.head, body: bodyOf(stream, held.subarray(parsed.end)) })
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

/** Whether a stored head answers this request: not past its deleteAt, same method and URL,
 *  and the request's values of every header the response varies on equal the stored ones (as
 *  undici's stores judge). */
function answers(head: Head, key: CacheKey): boolean {
  if (head.deleteAt <= Date.now()) return false
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

/** Where a delete of the URL stamps when it was made: untagged (a tag stamp leaves it), and
 *  written by deletes only (a write's update of the index cannot overwrite it). */
function deletedAtKey(key: CacheKey): string {
  return boundedKey('undici:deleted ', url(key), KEY_BYTES)
}

/** The methods whose responses that vary on nothing every delete removes, whatever the index
 *  says: those undici caches unless told otherwise. */
const ALWAYS_DELETED = ['GET', 'HEAD']

/** A response's buffered key and its stream key. */
function withStreamKey(entryKey: string): string[] {
  return [entryKey, streamKey(entryKey)]
}

/** What a new response of `key`'s method must remove so that `get` finds it: for a variant,
 *  the method's response that varies on nothing, which get reads first (an older response,
 *  from before the origin began to vary). */
function shadowing(key: CacheKey, names: string[]): string[] {
  return names.length === 0 ? [] : withStreamKey(responseKey(key, [], () => null))
}

/** Where a response too large to buffer is streamed: beside its buffered key. */
function streamKey(entryKey: string): string {
  return `${entryKey} stream`
}

function urlTag(key: CacheKey): string {
  return boundedKey('undici:', url(key), TAG_BYTES)
}

/**
 * A response's tags: the URL's for a variant (delete cannot name every variant's key), none for
 * a response that varies on nothing (delete removes it by key). A hit of a tagged entry asks
 * the tag clock (a `stat`, a tenth of a file-tier hit's time), and most responses vary on nothing.
 */
function tagsOf(key: CacheKey, names: string[]): string[] {
  return names.length === 0 ? [] : [urlTag(key)]
}

/** The key of one response: method, URL and the values of the headers it varies on. */
/** A response that varies on nothing: responseKey's names and values (made once, for get's hot path). */
const NO_NAMES: string[] = []
const noValue = (): null => null

function responseKey(key: CacheKey, names: string[], valueOf: (name: string) => Vary[string]): string {
  const vary = names.length === 0 ? '' : ` vary ${JSON.stringify(names.map((name) => [name, valueOf(name)]))}`
  return boundedKey('undici:', `${key.method} ${url(key)}${vary}`, KEY_BYTES)
}
