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
/** The arguments `fire()` reports with its 'fire' event (nobody reads them). */
const NO_ARGS: unknown[] = []

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
 *
 * **The closed breaker's fast path.** `fire()` costs more than a small synchronous read: a
 * copy of its arguments, a new promise, a `.then`, events, and a timer when a timeout is set.
 * While the breaker is closed and has no timeout, `run` calls the operation itself and hands
 * opossum the events `fire()` would have emitted for a success (`fire`, then `success`), which
 * feed the same rolling counts. A failure goes through `fire()` as before (an action that
 * throws the same error), so opossum itself counts it at once, filters it (`isFailure`) and
 * decides whether to open: after exactly as many failures as without the fast path. Open,
 * half-open (its one trial), shut down or with a timeout, every operation goes through
 * `fire()`.
 */
export class DiskBreaker {
  readonly #breaker: CircuitBreaker<[() => unknown], unknown>
  /** Whether the fast path may be taken (no timeout: opossum's timer has nothing to time). */
  #direct: boolean
  #rejected = 0
  #opened = 0
  /** Set at close (lastChance). */
  #lastChance = false

  constructor(
    options: ResolvedBreakerOptions,
    onState: (state: BreakerState) => void,
    isFailure: (error: unknown) => boolean = isDiskFailure,
  ) {
    // opossum reads `.then` of whatever the action returns, so always hand it a promise.
    this.#direct = options.timeout === 0
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

  /** Calls `listener` each time the breaker closes again (its half-open trial succeeded). */
  whenClosed(listener: () => void): void {
    this.#breaker.on('close', listener)
  }

  run<T>(op: () => T | Promise<T>): Promise<T> {
    if (!this.#direct || !this.#breaker.closed) return this.#breaker.fire(op) as Promise<T>
    return this.#runDirect(op)
  }

  /**
   * `run`, answering at once (not a promise) what `op` answers at once while the breaker is
   * closed and fed directly: the file tier's plain get, a synchronous read, whose caller need
   * not wait a turn of the microtask queue for it (the whole get then makes one promise,
   * where each layer's async frame made one or two). Counted as `run` counts it.
   */
  runAtOnce<T>(op: () => T | Promise<T>): T | Promise<T> {
    if (!this.#direct || !this.#breaker.closed) return this.#breaker.fire(op) as Promise<T>
    return this.#runDirectAtOnce(op)
  }

  /**
   * `run` for a change of the disk (a write, a stream, a removal, a clear): never answered
   * before it has ended. opossum's `timeout` answers its caller while the action goes on; a
   * write answered so would land later, after its caller was told it failed and the key's
   * order had moved on (over a later write), and a slow healthy upload would count as a
   * failing disk. So while the breaker is closed a change runs as the fast path does, untimed
   * whatever `timeout` says (its failure still goes through fire(), and counts); open, it is
   * refused; half-open, it is the trial, and if opossum's timer answers first, the caller
   * still waits for the change's own outcome.
   */
  runChange<T>(op: () => T | Promise<T>): Promise<T> {
    if (this.#lastChance) return Promise.resolve().then(op)
    if (this.#breaker.closed) return this.#runDirect(op)
    let started: Promise<T> | undefined
    const fired = this.#breaker.fire(() => (started = Promise.resolve(op()))) as Promise<T>
    return fired.catch((error: unknown) => {
      if (started === undefined) throw error // refused, or threw before it began
      return started
    })
  }

  /**
   * `runChange` for a change that lasts as long as its caller's source (a stream). As the
   * half-open trial it would hold the trial, and with it every other disk call (refused
   * meanwhile), until the source ends: minutes of misses and dropped writes for a slow upload
   * to a disk healthy again, for ever for a stalled one. So its trial ends once the change
   * calls `begun()` (its first bytes are on the disk), or with the change if sooner; a failure
   * after that is counted as a closed breaker's operation's is. Closed, it is `runChange`.
   */
  runStream<T>(op: (begun: () => void) => Promise<T>): Promise<T> {
    const unheard = (): void => {}
    if (this.#lastChance) return Promise.resolve().then(() => op(unheard))
    if (this.#breaker.closed) return this.#runDirect(() => op(unheard))
    let started: Promise<T> | undefined
    const fired = this.#breaker.fire(
      () =>
        new Promise<unknown>((resolve, reject) => {
          started = op(() => resolve(undefined))
          started.then(resolve, reject)
        }),
    )
    return fired.then(
      () => started!.catch((error: unknown) => this.#failed<T>(error)),
      (error: unknown) => {
        if (started === undefined) throw error // refused, or threw before it began
        return started
      },
    )
  }

  /**
   * A change larder makes on its own behalf (a dropped change's older entry removed later:
   * tiers/refused-changes.ts). While the breaker is closed it runs unheard, so that it does not
   * dilute the failure rate the application's calls make (a disk that refuses every write still
   * opens the breaker after as many failures). Otherwise it is a change as any other
   * (runChange): refused while open, and while half-open it may be the trial, for it stands in
   * for the read of its key that asked for it, which would have been one.
   */
  runQuiet<T>(op: () => Promise<T>): Promise<T> {
    return this.#breaker.closed || this.#lastChance ? op() : this.runChange(op)
  }

  /**
   * The cache is closing: from now on changes run whatever the state, unheard. The file tier's
   * changes the disk refused (a delete, a clear, tag stamps) are tried once more before close
   * ends, for after it nothing in this process would ever try them again, and every other
   * process would go on reading what they were to remove. An open breaker guards the calls of
   * an application that goes on; these few are the last this instance makes, each tried once.
   */
  lastChance(): void {
    this.#lastChance = true
  }

  /** The fast path: `op` run here, its outcome fed to opossum as fire() would (see the class). */
  #runDirect<T>(op: () => T | Promise<T>): Promise<T> {
    const answer = this.#runDirectAtOnce(op)
    return answer instanceof Promise ? answer : Promise.resolve(answer)
  }

  /** #runDirect, a synchronous operation's value handed back as it is (runAtOnce). */
  #runDirectAtOnce<T>(op: () => T | Promise<T>): T | Promise<T> {
    let result: T | Promise<T>
    try {
      result = op()
    } catch (error) {
      return this.#failed(error)
    }
    if (result instanceof Promise) return this.#settled(result)
    this.#succeeded()
    return result
  }

  /** An operation's promise, its outcome fed to the breaker as `fire()` would. */
  #settled<T>(result: Promise<T>): Promise<T> {
    return result.then(
      (value) => {
        this.#succeeded()
        return value
      },
      (error: unknown) => this.#failed(error),
    )
  }

  /**
   * `run` for an operation whose result the caller must dispose of (an open stream). With a
   * timeout, the breaker may answer the caller (a timeout failure) while the operation goes
   * on; a result that arrives after that has no one to take it, so it is handed to `release`
   * instead of being left open.
   */
  runOwning<T>(op: () => Promise<T>, release: (late: T) => void): Promise<T> {
    let answered = false
    return this.run(() => {
      const result = op()
      result.then(
        (value) => {
          if (answered) release(value)
        },
        () => {},
      )
      return result
    }).finally(() => {
      answered = true
    })
  }

  /** What opossum's `fire()` emits for an action that succeeds: its counts listen to these. */
  #succeeded(): void {
    this.#breaker.emit('fire', NO_ARGS)
    this.#breaker.emit('success', undefined, 0)
  }

  /** A failure of the fast path, handed to opossum as an action that throws it: opossum
   *  counts it (or, filtered, counts a success), may open, and rejects with the same error.
   *  A throw, not a rejected promise: opossum judges a synchronous throw at once, so a
   *  failure is counted before the caller's next look at the breaker, as without the fast path. */
  #failed<T>(error: unknown): Promise<T> {
    // The breaker left closed while this operation ran (other failures opened it, and it may
    // be half-open by now): this late failure is not fed to fire(), where it would take the
    // half-open trial and open the breaker again for a failure from before the trial.
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the operation's own rejection reason, as it came
    if (!this.#breaker.closed) return Promise.reject(error)
    return this.#breaker.fire(() => {
      throw error
    }) as Promise<T>
  }

  /**
   * New thresholds (`configure()`): the failure percentage, the reset timeout and the operation
   * timeout, which opossum reads from its options each time it decides. The window's length
   * (rollingCountTimeout) and the volume threshold are fixed when opossum builds its window, so
   * they are not changed live (the option table says so). The rolling counts are kept.
   */
  reconfigure(options: ResolvedBreakerOptions): void {
    // opossum keeps its options on the instance and reads these three on every decision; its
    // types do not declare the field.
    const live = (
      this.#breaker as unknown as { options: { errorThresholdPercentage: number; resetTimeout: number; timeout: number | false } }
    ).options
    live.errorThresholdPercentage = options.errorThresholdPercentage
    live.resetTimeout = options.resetTimeout
    live.timeout = options.timeout === 0 ? false : options.timeout
    this.#direct = options.timeout === 0
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
