import { Larder, isLarderError, type LarderOptions } from 'larder'

/**
 * What every adapter is given: an open cache (the caller's, shared with whatever else uses
 * it, and never closed by the adapter), or the options to open one (the adapter's own, which
 * it closes when its host library disconnects).
 */
export type CacheOrOptions = Larder | LarderOptions

/** The cache behind an adapter, once it is open. Host libraries construct their stores
 *  synchronously while `Larder.open()` is asynchronous, so adapters await `ready` per call. */
export interface CacheSource {
  readonly ready: Promise<Larder>
  /** The adapter opened it, so the adapter closes it. */
  readonly owned: boolean
  /** The cache's `failOpen` (as given, when it failed to open). */
  readonly failOpen: boolean
}

/**
 * Opens the cache an adapter was given options for, or takes the one it was given. A cache is
 * recognised by its methods, not by `instanceof`: an app that `import`s larder while a library
 * `require`s an adapter holds two copies of the class (the ESM and the CJS build).
 *
 * A failure to open (bad options, a directory others control) is not thrown here, where the
 * host library is still constructing its store: `ready` rejects, and each call reports that
 * error through the host library's error channel (see `absorb`), as `report` does for the
 * 'error' events of a cache the adapter opened.
 */
export function cacheSource(given: CacheOrOptions | undefined, report: (error: Error) => void): CacheSource {
  if (isCache(given)) return { ready: Promise.resolve(given), owned: false, failOpen: given.options.failOpen }
  const ready = Larder.open(given)
  // Disk trouble larder absorbs (fail-open) is an 'error' event of the cache. A cache passed
  // in is heard by its owner; one the adapter opened has only the host library to hear it.
  ready.then((opened) => opened.on('error', report), () => {}) // an open that failed: reported by the first call that awaits it
  return { ready, owned: true, failOpen: given?.failOpen !== false }
}

function isCache(value: unknown): value is Larder {
  const candidate = value as Partial<Larder> | null | undefined
  return typeof candidate?.getMany === 'function' && typeof candidate.invalidateTags === 'function' && typeof candidate.setStream === 'function'
}

/**
 * The one rule for an error met inside an adapter: the host library hears of it through its
 * own error channel (`report`), and the call it happened in reads as a miss or a dropped write,
 * so a failing disk or a value larder cannot store never breaks the host. The exception is a
 * cache opened with `failOpen: false`: its user asked for `ERR_UNAVAILABLE`, so it is thrown.
 */
export function absorb(error: unknown, source: CacheSource, report: (error: Error) => void): void {
  if (isLarderError(error, 'ERR_UNAVAILABLE') && !source.failOpen) throw error
  report(error instanceof Error ? error : new Error(String(error)))
}
