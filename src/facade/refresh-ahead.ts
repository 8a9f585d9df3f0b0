import type { EventEmitter } from 'node:events'
import { LarderError } from '../errors.js'
import type { Counters } from '../stats/counters.js'
import type { CreationClock } from '../store/creation-clock.js'
import type { TierEntry } from '../tiers/tier.js'
import type { InFlight } from './in-flight.js'
import type { LarderEvents } from './events.js'
import type { Flight, Loads } from './loads.js'
import type { OrderedWrites } from './ordered-writes.js'
import type { SharedParts } from './shared-parts.js'
import { oldestKey } from '../oldest-key.js'

/** How a background refresh ended (the `refresh` event). */
export type RefreshOutcome = 'refreshed' | 'failed' | 'superseded' | 'elsewhere'

/** What the `refresh` event carries. */
export interface RefreshReport {
  key: string
  outcome: RefreshOutcome
}

/** How many times a failing refresh is tried within an entry's refresh window (see RefreshAhead). */
const RETRIES_PER_WINDOW = 8
/** At most this many keys are remembered as held back after a failed refresh. */
const MAX_HELD_BACK = 10_000

/** The getOrSet options a refresh stores with. */
export interface RefreshOptions {
  ttl: number | undefined
  tags: readonly string[]
  grace: number
  refreshAhead: number
}

export interface RefreshAheadParts {
  loads: Loads<unknown>
  writes: OrderedWrites
  shared: SharedParts | undefined
  clock: CreationClock
  counters: Counters
  inFlight: InFlight
  events: EventEmitter<LarderEvents>
  emitError(error: Error): void
}

/**
 * getOrSet's `refreshAhead`: a hit on an entry past that share of its lifetime (from its
 * creation to its expiry, both in the entry in every tier) is served as it is, and starts one
 * background load of the key, which stores like getOrSet's own load:
 *
 * - Once per key here: not while a load or another refresh of the key is in progress
 *   (loads.ts), whichever tier the hit came from.
 * - Once across instances with `redis`: the refresh takes the key's getOrSet lock, and loads
 *   nothing if Redis already holds a newer version of the key (another instance refreshed it,
 *   before or while it waited).
 * - Stamped when it begins, so a set, delete, clear or tag invalidation of the key made while
 *   the loader runs supersedes it: it stores nothing (outcome `superseded`).
 * - A failing loader (or one resolving to `undefined`, or a value that cannot be stored) keeps
 *   the old entry until it expires: counted, heard as `error` (when someone listens), never
 *   thrown into a caller. The entry's next refresh waits an eighth of its refresh window
 *   (from the mark to its expiry), so a loader that keeps failing (its database down) is
 *   retried about eight times before the entry expires, at a pace its lifetime sets, not at
 *   the pace of hits. A new entry under the key (set, loaded, refreshed elsewhere) starts afresh.
 * - close() stops refreshes from storing, then waits for them as for writes.
 */
export class RefreshAhead {
  readonly #p: RefreshAheadParts
  /** Keys whose last refresh failed: the entry it was for, and when the next may start. Bounded:
   *  past MAX_HELD_BACK the oldest is forgotten (its key may retry at its next hit). */
  readonly #heldBack = new Map<string, { createdAt: number; until: number }>()

  constructor(parts: RefreshAheadParts) {
    this.#p = parts
  }

  /** A hit on `entry`: starts a refresh if it is past the mark and none is under way. */
  consider(key: string, entry: Pick<TierEntry, 'createdAt' | 'expiresAt'>, loader: () => unknown, o: RefreshOptions): void {
    const { createdAt, expiresAt } = entry
    if (expiresAt === 0) return
    const mark = createdAt + (expiresAt - createdAt) * o.refreshAhead
    const now = Date.now()
    if (now < mark) return
    const { loads, clock, inFlight, counters } = this.#p
    if (loads.busy(key)) return
    const held = this.#heldBack.get(key)
    if (held !== undefined) {
      if (held.createdAt === createdAt && now < held.until) return
      this.#heldBack.delete(key)
    }
    counters.refreshes.started++
    const retryAfter = (expiresAt - mark) / RETRIES_PER_WINDOW
    const refresh = loads.refresh(key, o.tags, clock.createdAt(o.tags), (flight) =>
      this.#run(key, createdAt, retryAfter, loader, o, flight),
    )
    void inFlight.track(refresh).catch(() => {}) // #run settles every failure itself
  }

  /** After a failed refresh of the entry created at `createdAt`: none again for `retryAfter` ms. */
  #holdBack(key: string, createdAt: number, retryAfter: number): void {
    this.#heldBack.delete(key)
    this.#heldBack.set(key, { createdAt, until: Date.now() + retryAfter })
    if (this.#heldBack.size > MAX_HELD_BACK) this.#heldBack.delete(oldestKey(this.#heldBack)!)
  }

  async #run(
    key: string,
    seen: number,
    retryAfter: number,
    loader: () => unknown,
    o: RefreshOptions,
    flight: Flight<unknown>,
  ): Promise<void> {
    const shared = this.#p.shared
    let outcome: RefreshOutcome
    if (shared === undefined) outcome = await this.#loadAndStore(key, loader, o, flight)
    else {
      // Another instance has stored a version newer than the one this hit saw: it refreshed.
      const elsewhere = async (): Promise<RefreshOutcome | undefined> => {
        const version = await shared.tier.versionOf(key).catch(() => undefined)
        return version !== undefined && version > seen ? 'elsewhere' : undefined
      }
      outcome = await shared.withLock(key, elsewhere, () => this.#loadAndStore(key, loader, o, flight))
    }
    if (outcome === 'failed') this.#holdBack(key, seen, retryAfter)
    this.#p.counters.refreshes[outcome]++
    try {
      this.#p.events.emit('refresh', { key, outcome })
    } catch (error) {
      // A listener's throw, which no caller waits to hear (consider() drops the refresh's
      // failures, settled here): heard as 'error', as the corrupt, progress and breaker ones are.
      this.#p.emitError(error instanceof Error ? error : new Error(String(error)))
    }
  }

  async #loadAndStore(key: string, loader: () => unknown, o: RefreshOptions, flight: Flight<unknown>): Promise<RefreshOutcome> {
    const { writes, loads } = this.#p
    try {
      const value = await loader()
      if (value === undefined) {
        this.#p.emitError(
          new LarderError(
            'ERR_INVALID_VALUE',
            `refresh-ahead of ${JSON.stringify(key)}: the loader resolved to undefined; the old value is kept`,
            {
              field: 'loader',
            },
          ),
        )
        return 'failed'
      }
      // Read back as a set's value is (facade/prepare.ts storedEntry): nobody waits for it here.
      const write = writes.prepare(value, o.ttl, flight.tags, o.grace, 'value', flight.createdAt)
      // Checked again after the await, in the turn the change is queued: a change of the key
      // called while mayStore's answer was on its way is queued first, and would be undone.
      if (!(await loads.mayStore(key, flight)) || flight.superseded) return 'superseded'
      await writes.change(key, () => writes.write(key, write))
      return 'refreshed'
    } catch (error) {
      this.#p.emitError(error instanceof Error ? error : new Error(String(error)))
      return 'failed'
    }
  }
}
