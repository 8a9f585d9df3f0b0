import type { ChangeMark } from '../store/change-watch.js'

/**
 * getOrSet's shared loads (singleflight): one loader call per key however many callers ask at
 * once, and the rule that keeps a load from storing what a later change replaced.
 *
 * A load is stamped with a creation time when it begins. A change of its key (set, delete,
 * clear, a stream) called while the loader runs supersedes it: it stores nothing, and callers
 * after the change do not join it. So does an invalidation of one of its tags, by any process
 * (asked of the tag clock when the load ends, and when a caller would join it), and a change of
 * its key by another process sharing the directory (asked of the change log before it stores:
 * `KeyChanges`, store/change-watch.ts) or another instance on the bus (remote-changes.ts supersedes it).
 */

/** Changes of a key by every writer of the directory since a mark (store/change-clock.ts). */
export interface KeyChanges {
  mark(): ChangeMark | undefined
  changedSince(mark: ChangeMark | undefined, key: string): Promise<boolean>
  release(mark: ChangeMark | undefined): void
}

/** A getOrSet load in progress, which callers of the same key join. */
export interface Flight<T> {
  tags: readonly string[]
  /** The creation time of what it stores: stamped when the load began. */
  createdAt: number
  /** A change of the key (or of its tags) was called since it began: it stores nothing. */
  superseded: boolean
  /** Where the directory's change log stood when it began. */
  mark?: ChangeMark | undefined
  result: Promise<T>
  /** Its callers were answered before its loader settled (getOrSet's timeouts): it goes on
   *  as a background load, which owns the mark from then on. */
  detached?: boolean
  /** Superseded by close(), not by a change: what it loaded was not stored because the cache
   *  closed (warm reports it as failed, not as superseded). */
  closed?: boolean
}

export class Loads<T> {
  readonly #flights = new Map<string, Flight<T>>()
  /** Refresh-ahead's background loads (refresh-ahead.ts): one per key at most, never joined
   *  (their callers were served already), superseded like the others. */
  readonly #refreshes = new Map<string, Flight<unknown>>()
  /** Loads whose callers were answered before their loader settled (getOrSet's `timeout` and
   *  `hardTimeout`): one per key, until the loader settles; `result` is the value stored.
   *  Later getOrSet calls of the key wait for it instead of calling their loader again. */
  readonly #background = new Map<string, Flight<unknown>>()
  /** Loads of keys by a batch loader (warm.ts): never joined, superseded like the others. */
  readonly #batched = new Map<string, Flight<unknown>>()
  readonly #tagsStale: (tags: readonly string[], createdAt: number) => boolean
  readonly #changes: KeyChanges | undefined
  /** close() began: a batch load begun from now on stores nothing either. */
  #closing = false

  /** `tagsStale` answers whether any of the tags was invalidated at or after a time, and
   *  never throws (a failing tag clock counts as stale); `changes` (with a directory) what
   *  other processes changed. */
  constructor(tagsStale: (tags: readonly string[], createdAt: number) => boolean, changes?: KeyChanges) {
    this.#tagsStale = tagsStale
    this.#changes = changes
  }

  /** The load of `key` a caller may join: in progress, and neither its tags invalidated nor
   *  its key changed (by any process sharing the directory) since it began. Resolves at once
   *  (no promise) when no load is in progress. */
  joinable(key: string): Flight<T> | undefined | Promise<Flight<T> | undefined> {
    const flight = this.#flights.get(key)
    if (flight === undefined || this.invalidatedSince(flight)) return undefined
    return this.#unchanged(key, flight)
  }

  /** `flight`, unless another process changed `key` since it began: then it is superseded
   *  (it stores nothing, and nobody else joins it either: the next load of the key is the one
   *  they share) and the answer is undefined. */
  #unchanged<F extends Flight<unknown>>(key: string, flight: F): F | Promise<F | undefined> {
    if (this.#changes === undefined) return flight
    return this.#changes.changedSince(flight.mark, key).then((changed) => {
      if (changed) this.#retire(key, flight)
      return flight.superseded ? undefined : flight
    })
  }

  /** `flight` of `key` superseded and forgotten, wherever it is held. */
  #retire(key: string, flight: Flight<unknown>): void {
    flight.superseded = true
    for (const flights of [this.#flights, this.#background] as Map<string, Flight<unknown>>[]) {
      if (flights.get(key) === flight) flights.delete(key)
    }
  }

  /** Starts a load of `key` (run receives its flight, to stamp what it stores) and forgets it
   *  once it settles. */
  async run(key: string, tags: readonly string[], createdAt: number, load: (flight: Flight<T>) => Promise<T>): Promise<T> {
    const flight: Flight<T> = { tags, createdAt, superseded: false, mark: this.#changes?.mark(), result: undefined as never }
    flight.result = load(flight)
    this.#flights.set(key, flight)
    try {
      return await flight.result
    } finally {
      if (flight.detached !== true) this.#changes?.release(flight.mark)
      if (this.#flights.get(key) === flight) this.#flights.delete(key)
    }
  }

  /**
   * The load's callers are answered (a stale value, or ERR_TIMEOUT) while its loader goes on:
   * it becomes `key`'s background load until `stored` (the value it stored, or the loader's
   * failure) settles, superseded like the others.
   */
  detach(key: string, flight: Flight<unknown>, stored: Promise<unknown>): void {
    flight.detached = true
    const background: Flight<unknown> = flight
    background.result = stored
    this.#background.set(key, background)
    const done = (): void => {
      this.#changes?.release(flight.mark)
      if (this.#background.get(key) === background) this.#background.delete(key)
    }
    stored.then(done, done)
  }

  /** `key`'s background load, while it may still store (see detach): not superseded, and
   *  neither its tags invalidated nor its key changed by another process since it began. */
  inBackground(key: string): Flight<unknown> | undefined | Promise<Flight<unknown> | undefined> {
    const flight = this.#background.get(key)
    if (flight === undefined || flight.superseded || this.invalidatedSince(flight)) return undefined
    return this.#unchanged(key, flight)
  }

  /** Whether a load or a refresh of `key` is in progress (a refresh would be one too many). */
  busy(key: string): boolean {
    return this.#flights.has(key) || this.#refreshes.has(key) || this.#background.has(key)
  }

  /** Starts a background refresh of `key`, stamped like a load; forgotten once it settles. */
  async refresh<R>(key: string, tags: readonly string[], createdAt: number, load: (flight: Flight<unknown>) => Promise<R>): Promise<R> {
    const flight: Flight<unknown> = { tags, createdAt, superseded: false, mark: this.#changes?.mark(), result: undefined as never }
    const result = load(flight)
    flight.result = result
    this.#refreshes.set(key, flight)
    try {
      return await result
    } finally {
      this.#changes?.release(flight.mark)
      if (this.#refreshes.get(key) === flight) this.#refreshes.delete(key)
    }
  }

  /** Begins the load of `key` by a batch loader (warm), stamped like a load: the caller asks
   *  mayStore before it stores, and ends it (`endBatched`) either way. */
  beginBatched(key: string, createdAt: number): Flight<unknown> {
    const flight: Flight<unknown> = { tags: [], createdAt, superseded: false, mark: this.#changes?.mark(), result: Promise.resolve() }
    if (this.#closing) flight.superseded = flight.closed = true
    // A second batch load of the key (another warm): the later one stores, the earlier not.
    const earlier = this.#batched.get(key)
    if (earlier !== undefined) earlier.superseded = true
    this.#batched.set(key, flight)
    return flight
  }

  endBatched(key: string, flight: Flight<unknown>): void {
    this.#changes?.release(flight.mark)
    flight.mark = undefined
    if (this.#batched.get(key) === flight) this.#batched.delete(key)
  }

  /** The cache is closing: no refresh, background or batch load stores anything, those begun
   *  later included; a batch load's value is let go because of that (`closed`). */
  close(): void {
    this.#closing = true
    for (const flight of this.#batched.values()) if (!flight.superseded) flight.closed = true
    this.supersedeRefreshes()
  }

  /** No refresh, background or batch load in progress stores anything. */
  supersedeRefreshes(): void {
    for (const flights of [this.#refreshes, this.#background, this.#batched]) {
      for (const flight of flights.values()) flight.superseded = true
      flights.clear()
    }
  }

  /** Whether the load of `key` may still store: not superseded, none of its tags invalidated
   *  and the key not changed, by any process, since it began. A change recorded after this
   *  answer and before the store lands is not seen (between processes: a window of one write). */
  mayStore(key: string, flight: Flight<unknown>): boolean | Promise<boolean> {
    if (flight.superseded || this.invalidatedSince(flight)) return false
    // Without a directory there is no other process's change to ask about: answered at once.
    if (this.#changes === undefined) return true
    return this.#changes.changedSince(flight.mark, key).then((changed) => !changed && !flight.superseded)
  }

  /**
   * Whether `found`, the value within grace a load read before its loader ran, may still stand
   * in for the loader's value (its failure, or a `timeout`): not if a change of the key or its
   * tags (by any process) came since the load began, nor if the entry's own tags were
   * invalidated since it was written. Grace never serves an invalidated value.
   */
  async mayStandIn(key: string, flight: Flight<unknown>, found: { createdAt: number; tags: readonly string[] }): Promise<boolean> {
    if (found.tags.length > 0 && this.#tagsStale(found.tags, found.createdAt)) return false
    return this.mayStore(key, flight) // no change of the key or its tags since the load began
  }

  /** Whether a tag of the load was invalidated, by any process, since the load began. */
  invalidatedSince(flight: Flight<unknown>): boolean {
    return flight.tags.length > 0 && this.#tagsStale(flight.tags, flight.createdAt)
  }

  /** A change of `key` was called: its load in progress must not store, and callers after the
   *  change must not join it. */
  supersede(key: string): void {
    // Every set passes here, and most find no load at all: four lookups (and an array) saved.
    if (this.#flights.size + this.#refreshes.size + this.#background.size + this.#batched.size === 0) return
    for (const flights of [this.#flights, this.#refreshes, this.#background, this.#batched] as Map<string, Flight<unknown>>[]) {
      const flight = flights.get(key)
      if (flight === undefined) continue
      flight.superseded = true
      flights.delete(key)
    }
  }

  /** Every load carrying one of `tags` began before their invalidation. */
  supersedeTagged(tags: readonly string[]): void {
    for (const flights of [this.#flights, this.#refreshes, this.#background, this.#batched] as Map<string, Flight<unknown>>[])
      for (const [key, flight] of flights) {
        if (flight.tags.some((t) => tags.includes(t))) this.supersede(key)
      }
  }

  /** A clear: every load in progress began before it. */
  supersedeAll(): void {
    for (const flight of this.#flights.values()) flight.superseded = true
    this.#flights.clear()
    this.supersedeRefreshes()
  }
}
