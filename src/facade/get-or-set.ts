import { LarderError } from '../errors.js'
import type { KeyOrder } from '../key-order.js'
import type { ResolvedOptions } from '../options.js'
import type { CreationClock } from '../store/creation-clock.js'
import type { TierName } from '../stats/counters.js'
import type { TierRead } from '../tiers/tier.js'
import type { TierStack } from '../tiers/tier-stack.js'
import type { CountedReads } from './counted-reads.js'
import type { InFlight } from './in-flight.js'
import type { RefreshAhead } from './refresh-ahead.js'
import type { Flight, Loads } from './loads.js'
import type { OrderedWrites } from './ordered-writes.js'
import { readBackValue } from './prepare.js'
import type { SharedParts } from './shared-parts.js'

/** What a load gave its callers: the value, and whether the cache had it (a hit). */
export interface Loaded {
  value: unknown
  cached: boolean
  /** A hit's entry times, for refresh-ahead. */
  entry?: { createdAt: number; expiresAt: number }
  /** The tier that answered a hit, as the callers who joined the load hear it ('hit'). */
  tier?: TierName | undefined
}

/** getOrSet's options, validated. */
export interface LoadOptions {
  ttl: number | undefined
  tags: readonly string[]
  grace: number
  lock: boolean
  /** 0: off. */
  refreshAhead: number
  /** ms; undefined: none. */
  timeout: number | undefined
  hardTimeout: number | undefined
}

export interface GetOrSetParts {
  options: Readonly<ResolvedOptions>
  order: KeyOrder
  loads: Loads<Loaded>
  reads: CountedReads
  writes: OrderedWrites
  stack: TierStack
  shared: SharedParts | undefined
  clock: CreationClock
  refreshAhead: RefreshAhead
  inFlight: InFlight
  emitError(error: Error): void
}

/**
 * getOrSet once its arguments are valid: the memory tier, else a load of the key in progress
 * to join (loads.ts, singleflight), else a new load: the tiers below (counted for its first
 * caller), then, with `lock` and Redis, another instance's loader if one holds the lock, and
 * last the caller's loader, whose value is stored unless a change superseded the load.
 *
 * With `timeout` (and a value within `grace`) or `hardTimeout`, the callers may be answered
 * before the loader settles (the stale value, or ERR_TIMEOUT): the load then goes on in the
 * background (loads.ts: detach), stores its value when it comes, and later callers of the key
 * wait for it rather than call their loader again.
 */
export class GetOrSet {
  readonly #p: GetOrSetParts

  constructor(parts: GetOrSetParts) {
    this.#p = parts
  }

  async run(key: string, loader: () => unknown, o: LoadOptions): Promise<unknown> {
    const { order, reads, loads, clock } = this.#p
    const waiting = order.pending(key)
    if (waiting !== undefined) await waiting
    const memory = reads.fromMemory(key)
    if (memory.found) {
      if (o.refreshAhead > 0) this.#p.refreshAhead.consider(key, memory, loader, o)
      return memory.value
    }
    // A load to join may have to be asked of the change log first; one another process's
    // change superseded is retired, and the load begun since (by another caller) asked in turn.
    let joinable = loads.joinable(key)
    while (joinable instanceof Promise) {
      const joined = await joinable
      joinable = joined ?? loads.joinable(key)
    }
    if (joinable !== undefined) return this.#join(key, joinable)
    const loaded = await loads.run(key, o.tags, clock.createdAt(o.tags), (flight) => this.#load(key, loader, o, flight))
    // Once the load is over (a refresh must not wait behind it).
    if (o.refreshAhead > 0 && loaded.entry !== undefined) this.#p.refreshAhead.consider(key, loaded.entry, loader, o)
    return loaded.value
  }

  /**
   * The load, shared by every caller that joins it: the cache (counted and timed for the first
   * caller), then the loader. Its result is stored unless the load was superseded or its tags
   * invalidated since it began (the entry would be older than what replaced it).
   */
  async #load(key: string, loader: () => unknown, o: LoadOptions, flight: Flight<Loaded>): Promise<Loaded> {
    const started = performance.now()
    const found = await this.#p.reads.belowMemory(key, o.grace)
    if (found.found && !found.stale) return { value: found.value, cached: true, entry: found, tier: found.tier }
    // An earlier caller's loader, still running after its timeout: wait for it, not a second one.
    // Each answered at once when nothing is to wait for (no background load; no directory).
    const inBackground = this.#p.loads.inBackground(key)
    const background = inBackground instanceof Promise ? await inBackground : inBackground
    if (background !== undefined) return this.#awaitBackground(key, flight, background.result, o, found)
    const shared = this.#p.shared
    // Redis just failed to answer the read (down, paused, slow): the lock's commands would wait
    // as long again before the loader runs; no lock is better than a late answer.
    if (!o.lock || shared === undefined || this.#p.stack.redisReadFailedSince(started))
      return this.#loadAndStore(key, loader, o, flight, found, false, started)
    // Another instance may be loading it: wait for its value in Redis (bounded), or load. Each
    // look is part of this one read, which counted what it found already (one `expired`).
    const arrived = async (): Promise<Loaded | undefined> => {
      const read = await this.#p.stack.lookup(key, 0, false)
      return read.found && !read.stale ? { value: read.value, cached: true, tier: read.tier } : undefined
    }
    // Stored write-through even under write-back: the lock is released once the value is
    // stored, and the instances waiting for it look for the value in Redis. The time limits
    // run from here: a caller waiting for another instance's loader (it holds the lock) is
    // held no longer than for its own, so the loader under the lock runs without one of its own.
    const limit = timeLimit(o, found)
    const locked = shared.withLock(key, arrived, () => this.#loadAndStore(key, loader, o, flight, found, true, undefined, false))
    if (limit === undefined) return locked
    const answered = await within(locked, limit)
    if (answered.settled) return answered.value
    // The callers are answered now; the wait (and the load after it, if it comes to that) goes on.
    const stored = locked.then((loaded) => loaded.value)
    this.#p.loads.detach(key, flight, stored)
    void this.#p.inFlight.track(stored).catch((error: unknown) => this.#p.emitError(asError(error)))
    return this.#timedOut(key, flight, o, found)
  }

  async #loadAndStore(
    key: string,
    loader: () => unknown,
    o: LoadOptions,
    flight: Flight<Loaded>,
    found: TierRead,
    through: boolean,
    started?: number,
    limited = true,
  ): Promise<Loaded> {
    const loading = call(loader)
    let value: unknown
    try {
      const limit = limited ? timeLimit(o, found) : undefined
      if (limit === undefined) value = await loading
      else {
        const answered = await within(loading, limit)
        if (!answered.settled) {
          // The callers are answered now; the loader goes on and stores what it gives.
          const stored = loading.then((late) => this.#store(key, late, o, flight, through, started).then((loaded) => loaded.value))
          this.#p.loads.detach(key, flight, stored)
          void this.#p.inFlight.track(stored).catch((error: unknown) => this.#p.emitError(asError(error)))
          return await this.#timedOut(key, flight, o, found)
        }
        value = answered.value
      }
    } catch (error) {
      if (found.found && (await this.#p.loads.mayStandIn(key, flight, found))) return { value: found.value, cached: false } // stale-if-error
      throw error
    }
    return this.#store(key, value, o, flight, through, started)
  }

  /** The loaded value stored (unless the load was superseded) and read back as every later
   *  read will give it. */
  async #store(key: string, value: unknown, o: LoadOptions, flight: Flight<unknown>, through: boolean, started?: number): Promise<Loaded> {
    if (value === undefined) return { value, cached: false }
    const { writes, loads, options } = this.#p
    const write = writes.prepare(value, o.ttl, flight.tags, o.grace, 'value', flight.createdAt)
    write.through = through
    if (started !== undefined) write.redisFailedSince = started
    // What every later read returns, so this caller gets it too.
    write.value = readBackValue(options, write.serialized)
    // flight.superseded checked again after the await, in the turn the change is queued: a
    // change of the key called while mayStore's answer was on its way is queued first, and
    // this older value would undo it.
    const mayStore = loads.mayStore(key, flight)
    if ((mayStore instanceof Promise ? await mayStore : mayStore) && !flight.superseded)
      await writes.change(key, () => writes.write(key, write))
    return { value: write.value, cached: false }
  }

  /** A caller whose load is another caller's background load: its value, within this call's
   *  own time limits (the load is not detached again: it is in the background already). */
  async #awaitBackground(key: string, flight: Flight<Loaded>, stored: Promise<unknown>, o: LoadOptions, found: TierRead): Promise<Loaded> {
    let answered: Awaited<ReturnType<typeof within<unknown>>>
    try {
      const limit = timeLimit(o, found)
      if (limit === undefined) return { value: await stored, cached: false }
      answered = await within(stored, limit)
    } catch (error) {
      if (found.found && (await this.#p.loads.mayStandIn(key, flight, found))) return { value: found.value, cached: false } // stale-if-error
      throw error
    }
    return answered.settled ? { value: answered.value, cached: false } : await this.#timedOut(key, flight, o, found)
  }

  /** A load past its time limit: the value within grace, or ERR_TIMEOUT. */
  async #timedOut(key: string, flight: Flight<Loaded>, o: LoadOptions, found: TierRead): Promise<Loaded> {
    if (found.found && (await this.#p.loads.mayStandIn(key, flight, found))) return { value: found.value, cached: false }
    const [field, ms] =
      found.found && o.timeout !== undefined && (o.hardTimeout === undefined || o.timeout <= o.hardTimeout)
        ? ['timeout', o.timeout]
        : ['hardTimeout', o.hardTimeout]
    throw new LarderError(
      'ERR_TIMEOUT',
      field === 'timeout'
        ? `getOrSet: the loader did not answer within timeout (${ms} ms), and the value within grace was changed or invalidated since; the loader's value is stored when it comes`
        : `getOrSet: the loader did not answer within hardTimeout (${ms} ms); its value is stored when it comes`,
      { field },
    )
  }

  /** A caller that joined a load in progress: counted as the load turned out. */
  async #join(key: string, flight: Flight<Loaded>): Promise<unknown> {
    try {
      const loaded = await flight.result
      if (loaded.cached) this.#p.reads.hit(key, loaded.tier ?? 'file')
      else this.#p.reads.miss(key)
      return loaded.value
    } catch (error) {
      this.#p.reads.miss(key)
      throw error
    }
  }
}

/** The loader's result as a promise, a synchronous throw included. */
async function call(loader: () => unknown): Promise<unknown> {
  return await loader() // in an async function, a synchronous throw rejects, as `await loader()` threw it
}

/** How long a caller waits for the loader: `timeout` when a value within grace stands in,
 *  `hardTimeout` in any case; the shorter of those that apply. */
function timeLimit(o: LoadOptions, found: TierRead): number | undefined {
  const soft = found.found ? o.timeout : undefined
  if (soft === undefined) return o.hardTimeout
  return o.hardTimeout === undefined ? soft : Math.min(soft, o.hardTimeout)
}

/** `work`'s value if it settles within `ms` (its failure if it fails), else `settled: false`. */
function within<T>(work: Promise<T>, ms: number): Promise<{ settled: true; value: T } | { settled: false }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve({ settled: false }), ms)
    work.then(
      (value) => {
        clearTimeout(timer)
        resolve({ settled: true, value })
      },
      (error: unknown) => {
        clearTimeout(timer)
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the loader's own rejection, passed on as it is
        reject(error)
      },
    )
  })
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}
