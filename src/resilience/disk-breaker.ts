import CircuitBreaker from 'opossum'
import { LarderError, SourceError } from '../errors.js'
import type { ResolvedBreakerOptions } from '../options.js'
import { errorCode } from '../store/disk.js'

export type BreakerState = 'closed' | 'open' | 'halfOpen'

/**
 * Which errors say "the disk is unwell". Like Turborepo's remote-cache breaker, which trips
 * on transport and server failures but not on a plain miss, we count only errors that mean
 * the storage itself is failing: a system error, named by its errno code (EIO, ENOSPC,
 * EACCES, EROFS, ENOTDIR, EMFILE…, and ETIMEDOUT from the breaker's own timeout). A missing
 * file is a miss (ENOENT is never counted), a damaged entry is handled as a miss by the
 * reader, and a caller's mistake or a failing source stream says nothing about the disk.
 * Neither does anything else: a RangeError (a buffer too large for a value), a Node `ERR_*`
 * code, an error with no code at all (a bug). Those still never reach the host from a read
 * (a counted miss), but they must not stop the cache for every other key.
 */
const ERRNO_CODE = /^E[A-Z0-9]+$/
const NOT_DISK_FAILURES = new Set(['ENOENT', 'EEXIST'])

export function isDiskFailure(error: unknown): boolean {
  if (error instanceof LarderError || error instanceof SourceError) return false
  const code = errorCode(error)
  return code !== undefined && ERRNO_CODE.test(code) && !NOT_DISK_FAILURES.has(code)
}

/** The error opossum rejects with while open. */
export function isBreakerOpen(error: unknown): boolean {
  return errorCode(error) === 'EOPENBREAKER'
}

export interface BreakerSnapshot {
  state: BreakerState
  /** Disk operations that failed in the current rolling window. */
  failures: number
  /** Operations refused because the breaker was open, since the cache opened. */
  rejected: number
  /** Times the breaker opened since the cache opened. */
  opened: number
}

/**
 * An opossum circuit breaker around every disk operation of one cache (and, with
 * `isRedisFailure`, around every Redis command: see resilience/redis-failure.ts). It wraps a
 * single pass-through action, `(op) => op()`, so any sync or async step can run through it
 * and share one health record. opossum calls the action synchronously inside `fire`, so a
 * synchronous read still completes within the call.
 */
export class DiskBreaker {
  readonly #breaker: CircuitBreaker<[() => unknown], unknown>
  #rejected = 0
  #opened = 0

  constructor(options: ResolvedBreakerOptions, onState: (state: BreakerState) => void, isFailure: (error: unknown) => boolean = isDiskFailure) {
    // opossum reads `.then` of whatever the action returns, so always hand it a promise.
    this.#breaker = new CircuitBreaker((op: () => unknown) => Promise.resolve(op()), {
      timeout: options.timeout === 0 ? false : options.timeout,
      errorThresholdPercentage: options.errorThresholdPercentage,
      volumeThreshold: options.volumeThreshold,
      resetTimeout: options.resetTimeout,
      rollingCountTimeout: options.rollingCountTimeout,
      // opossum would keep every call's latency in its window and sort them all whenever its
      // stats are read: 10 ms per stats() after 100,000 calls. larder keeps its own latencies.
      rollingPercentilesEnabled: false,
      // true = "not a failure": opossum then counts the call as a success.
      errorFilter: (error: unknown) => !isFailure(error),
    })
    this.#breaker.on('open', () => {
      this.#opened++
      onState('open')
    })
    this.#breaker.on('halfOpen', () => onState('halfOpen'))
    this.#breaker.on('close', () => onState('closed'))
    this.#breaker.on('reject', () => {
      this.#rejected++
    })
  }

  run<T>(op: () => T | Promise<T>): Promise<T> {
    return this.#breaker.fire(op) as Promise<T>
  }

  get state(): BreakerState {
    return this.#breaker.opened ? 'open' : this.#breaker.halfOpen ? 'halfOpen' : 'closed'
  }

  snapshot(): BreakerSnapshot {
    return { state: this.state, failures: this.#breaker.stats.failures, rejected: this.#rejected, opened: this.#opened }
  }

  shutdown(): void {
    this.#breaker.shutdown()
  }
}
