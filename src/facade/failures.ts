import { isLarderError, LarderError, SourceError } from '../errors.js'
import { isBreakerOpen } from '../resilience/disk-breaker.js'
import type { Counters, TierName } from '../stats/counters.js'

/** ioredis's words for a command sent while its connection is down, which say no more. */
const NOT_CONNECTED = /^(Stream isn't writeable|Connection is closed)/

const WHAT: Record<TierName, string> = { memory: 'Memory tier', file: 'Cache disk', redis: 'Shared tier (Redis)' }

/**
 * What a tier's failure means to the caller: `failOpen` (the default) makes a failed read a
 * miss and a failed write a counted drop, with an `error` event for whoever listens; with
 * `failOpen: false` both reject with `ERR_UNAVAILABLE`. LarderErrors (a caller's mistake, a
 * value too large) are the caller's and always rethrown. A breaker that refused the call is
 * not counted as another error: the failures that opened it were.
 */
export class Failures {
  readonly #counters: Counters
  readonly #failOpen: boolean
  readonly #emitError: (error: LarderError) => void
  /** Why Redis is not connected, when a connection larder opened said (SharedParts). */
  whyRedisDown: (() => string | undefined) | undefined

  constructor(counters: Counters, failOpen: boolean, emitError: (error: LarderError) => void) {
    this.#counters = counters
    this.#failOpen = failOpen
    this.#emitError = emitError
  }

  /** A read of `tier` failed: a miss, or ERR_UNAVAILABLE with failOpen false. */
  readFailed(error: unknown, tier: TierName = 'file'): void {
    if (isLarderError(error)) throw error
    this.#trouble(error, tier)
  }

  /** A write to `tier` failed: a counted drop, or ERR_UNAVAILABLE with failOpen false. */
  writeFailed(error: unknown, tier: TierName = 'file'): void {
    if (isLarderError(error)) throw error
    this.dropped(tier)
    this.#trouble(error, tier)
  }

  /** `count` changes for `tier` let go unsent (a deferred change the full queue dropped). */
  dropped(tier: TierName, count = 1): void {
    this.#counters.counts.dropped += count
    const counts = this.#counters.tiers[tier]
    if (counts !== undefined) counts.dropped += count
  }

  /** A change `tier` failed to take that is kept to be sent again when the tier is back (the
   *  write-back queue, held tag stamps, a missed clear): an error, as failOpen says, but not a
   *  drop. It is counted as dropped only if the queue later lets it go. */
  writeDeferred(error: unknown, tier: TierName): void {
    if (isLarderError(error)) throw error
    this.#trouble(error, tier)
  }

  /** A failure that the caller is told of whatever failOpen says (maintenance, bookkeeping
   *  asked for): ERR_UNAVAILABLE, at once and without touching the tier while its breaker is
   *  open. */
  async operation<T>(run: () => Promise<T>, tier: TierName = 'file'): Promise<T> {
    try {
      return await run()
    } catch (error) {
      if (error instanceof SourceError) throw error.original // the caller's own (onProgress)
      if (isLarderError(error)) throw error
      if (isBreakerOpen(error))
        throw new LarderError('ERR_UNAVAILABLE', `${WHAT[tier]} unavailable: ${this.#explained('circuit breaker is open', tier)}`, {
          cause: error,
        })
      this.#count(tier)
      throw new LarderError(
        'ERR_UNAVAILABLE',
        tier === 'file'
          ? `Cache maintenance failed: ${(error as Error).message}`
          : `${WHAT[tier]} failed: ${this.#explained((error as Error).message, tier)}`,
        { cause: error },
      )
    }
  }

  #trouble(error: unknown, tier: TierName): void {
    const open = isBreakerOpen(error)
    if (!open) this.#count(tier)
    const reason = this.#explained(open ? 'circuit breaker is open' : error instanceof Error ? error.message : String(error), tier)
    const unavailable = new LarderError('ERR_UNAVAILABLE', `${WHAT[tier]} unavailable: ${reason}`, { cause: error })
    if (!open) this.#emitError(unavailable)
    if (!this.#failOpen) throw unavailable
  }

  /** `reason` with, for Redis while it is not connected, what its connection last said
   *  (WRONGPASS, ECONNREFUSED…): ioredis's own message then is only "Stream isn't writeable". */
  #explained(reason: string, tier: TierName): string {
    const why = tier === 'redis' ? this.whyRedisDown?.() : undefined
    if (why === undefined || reason.includes(why)) return reason
    return NOT_CONNECTED.test(reason) ? `not connected: ${why}` : `${reason} (not connected: ${why})`
  }

  #count(tier: TierName): void {
    this.#counters.counts.errors++
    const counts = this.#counters.tiers[tier]
    if (counts !== undefined) counts.errors++
  }
}
