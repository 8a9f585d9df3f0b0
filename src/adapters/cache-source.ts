import { Larder, isLarderError, type LarderOptions } from 'larder'
import { memoryAnswer } from '../facade/adapter-hooks.js'

/**
 * What every adapter is given: an open cache (the caller's, shared with whatever else uses
 * it, and never closed by the adapter), or the options to open one (the adapter's own, which
 * it closes when its host library disconnects).
 */
export type CacheOrOptions = Larder | LarderOptions

/**
 * The cache behind an adapter, and the one rule for an error met inside an adapter (`guarded`).
 *
 * Host libraries construct their stores synchronously while `Larder.open()` is asynchronous:
 * with options, the cache opens in the background and each call waits for it. A failure to
 * open (bad options, a directory others control) is not thrown from the constructor: each
 * call reports it through the host library's error channel, as `guarded` reports everything.
 * A cache is recognised by its methods, not by `instanceof`: an app that `import`s larder while
 * a library `require`s an adapter holds two copies of the class (the ESM and the CJS build).
 */
export class CacheSource {
  /** The adapter opened it, so the adapter closes it. */
  readonly owned: boolean
  #ready: Promise<Larder>
  /** What an owned cache is opened with, again after a close when it `reopens`. */
  readonly #options: LarderOptions | undefined
  readonly #reopens: boolean
  /** An owned cache that `reopens` was closed: the next call opens it again. */
  #closed: Promise<void> | undefined
  readonly #failOpen: boolean
  readonly #report: (error: Error) => void
  /** Calls not settled yet: `close()` waits for them (see `track`). A count, not a set of
   *  promises: every call of a host library's hot read passes here. */
  #inFlight = 0
  /** Resolved when the last call in flight settles, while `close()` waits for that. */
  #drained: { promise: Promise<void>; resolve: () => void } | undefined
  #cache: Larder | undefined
  /** The one settle handler of a call that succeeded (made once, not per call). */
  readonly #settled = <T>(value: T): T => {
    this.#settle()
    return value
  }

  /** `report` is the host library's error channel (what it throws is dropped). `reopens`: a cache the adapter opened is
   *  opened again by the first call after `close()`, for a host library that closes its
   *  cache with its connection and may connect again (TypeORM's `DataSource.destroy()` then
   *  `initialize()`, MikroORM's `orm.close()` then `orm.connect()`: the host keeps the adapter,
   *  and without it caching stayed off with a warning per query). */
  constructor(given: CacheOrOptions | undefined, report: (error: Error) => void, reopens = false) {
    this.#report = (error) => {
      try {
        report(error)
      } catch {
        // Dropped: what the host's channel throws (an onError whose logger failed), thrown from
        // here, failed the query the miss was answering, or broke larder's 'error' event.
      }
    }
    this.#reopens = reopens
    if (isCache(given)) {
      this.#cache = given
      this.#ready = Promise.resolve(given)
      this.owned = false
      this.#failOpen = given.options.failOpen
      return
    }
    this.#options = given
    this.owned = true
    this.#failOpen = given?.failOpen !== false
    this.#ready = this.#open()
  }

  /** The cache, once open (opened again first if it `reopens` and was closed). */
  get ready(): Promise<Larder> {
    if (this.#closed !== undefined) {
      const closing = this.#closed
      this.#closed = undefined
      this.#ready = this.#open(closing)
    }
    return this.#ready
  }

  /** Opens the owned cache (once `before`, a close of it, is done). */
  #open(before?: Promise<void>): Promise<Larder> {
    const ready = before === undefined ? Larder.open(this.#options) : before.then(() => Larder.open(this.#options))
    ready.then(
      (opened) => {
        if (this.#ready !== ready || this.#closed !== undefined) return // closed before it opened
        this.#cache = opened
        // Disk trouble larder absorbs (fail-open) is an 'error' event of the cache. A cache
        // passed in is heard by its owner; one the adapter opened has only the host to hear it.
        opened.on('error', this.#report)
      },
      () => {},
    ) // an open that failed: reported by the first call that awaits it
    return ready
  }

  /**
   * Runs a call that cannot break the host library: whatever goes wrong (a failing disk, a
   * value larder cannot store or return, a cache that failed to open) is reported through the
   * host's error channel, and the call answers `fallback` (a miss for a read, the host's
   * "not stored" for a write). The exception is a cache opened with `failOpen: false`: its
   * user asked for `ERR_UNAVAILABLE`, so that is thrown.
   *
   * Once the cache is open, this is the hot path of every host library's read (a Keyv get
   * answered by the memory tier costs about a microsecond in the core): one `then` on the
   * call's own promise, no async frame, no promise or closure made for a call that succeeds.
   * `arg` is handed to `call`, so that a hot read passes a function made once (and its key)
   * instead of a closure made per call; a read whose fallback is a miss (`undefined`) shares
   * one failure handler too.
   */
  guarded<T, A = undefined>(fallback: T, call: (cache: Larder, arg: A) => Promise<T>, arg?: A): Promise<T> {
    const cache = this.#cache
    if (cache === undefined) return this.track(this.#opening(fallback, (opened) => call(opened, arg as A)))
    this.#inFlight++
    let work: Promise<T>
    try {
      work = call(cache, arg as A)
    } catch (error) {
      work = Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    return work.then(
      this.#settled<T>,
      fallback === undefined
        ? (this.#missed as (error: unknown) => T)
        : (error: unknown) => {
            this.#settle()
            return this.#failed(error, fallback)
          },
    )
  }

  /** The failure handler of every call whose fallback is `undefined` (made once). */
  readonly #missed = (error: unknown): undefined => {
    this.#settle()
    return this.#failed(error, undefined)
  }

  /**
   * A read the memory tier answers at once: get()'s own promise for `key` (already settled, so
   * nothing is in flight for close() to wait for, and nothing to report), or undefined: then
   * `guarded`. A host library's hot read, where the adapter's promise around get()'s was a
   * tenth of a Keyv get answered from memory.
   */
  answeredAtOnce(key: string): Promise<unknown> | undefined {
    return this.#cache?.[memoryAnswer]?.(key)
  }

  /**
   * Counts `work` as in flight until it settles, so `close()` waits for it. Host libraries
   * do not always await what they ask of a store (undici fires `delete` after a POST and lets
   * the response reach the app at once): a process that closes the adapter right after must
   * not lose that work, or other processes sharing the cache keep serving what it changed.
   */
  track<T>(work: Promise<T>): Promise<T> {
    this.#inFlight++
    const settled = (): void => this.#settle()
    work.then(settled, settled)
    return work
  }

  /** A call made before the cache is open: it waits for the open, whose failure it reports. */
  async #opening<T>(fallback: T, call: (cache: Larder) => Promise<T>): Promise<T> {
    try {
      return await call(this.#cache ?? (await this.ready))
    } catch (error) {
      return this.#failed(error, fallback)
    }
  }

  /** Reports `error` through the host's channel, whatever it is: for work no caller waits
   *  for (a timer's), where an `ERR_UNAVAILABLE` thrown as `failOpen: false` asks would reach
   *  no one and end the process as an unhandled rejection. */
  report(error: unknown): void {
    this.#report(error instanceof Error ? error : new Error(String(error)))
  }

  /** `fallback`, once `error` is reported; or `error` thrown, when the user asked for it
   *  (the rule `guarded` applies, for a failure met outside it). */
  fail<T>(error: unknown, fallback: T): T {
    return this.#failed(error, fallback)
  }

  #failed<T>(error: unknown, fallback: T): T {
    if (isLarderError(error, 'ERR_UNAVAILABLE') && !this.#failOpen) throw error
    this.#report(error instanceof Error ? error : new Error(String(error)))
    return fallback
  }

  #settle(): void {
    if (--this.#inFlight === 0 && this.#drained !== undefined) {
      this.#drained.resolve()
      this.#drained = undefined
    }
  }

  /** Waits for the calls in flight, then closes the cache if the adapter opened it (a cache
   *  passed in stays open for its owner). */
  async close(): Promise<void> {
    // A call that settles may start another (a host's follow-up): wait until none is left.
    while (this.#inFlight > 0) {
      if (this.#drained === undefined) {
        let resolve!: () => void
        const promise = new Promise<void>((done) => (resolve = done))
        this.#drained = { promise, resolve }
      }
      await this.#drained.promise
    }
    if (!this.owned || this.#closed !== undefined) return
    const closing = this.#ready.then(
      (opened) => opened.close(),
      () => {},
    )
    if (this.#reopens) {
      this.#cache = undefined
      this.#closed = closing.catch(() => {}) // a close that failed: opened anew all the same
    }
    await closing
  }
}

/** Whether `value` is an open cache rather than options (see CacheSource on `instanceof`). */
export function isCache(value: unknown): value is Larder {
  const candidate = value as Partial<Larder> | null | undefined
  return (
    typeof candidate?.getMany === 'function' && typeof candidate.invalidateTags === 'function' && typeof candidate.setStream === 'function'
  )
}

/** Options for a cache an ORM adapter opens itself: the `v8` serializer unless one is named,
 *  as drivers hand over `Date`s, `BigInt`s and binary values (an ArrayBuffer for a blob) that
 *  JSON changes or cannot store. A cache passed in keeps its own. */
export function withV8Default(cache: CacheOrOptions | undefined): CacheOrOptions {
  if (isCache(cache)) return cache
  const options: LarderOptions = cache ?? {}
  return options.serializer === undefined ? { ...options, serializer: 'v8' } : options
}
