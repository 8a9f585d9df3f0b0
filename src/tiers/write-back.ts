import { justAfter } from '../store/creation-clock.js'

/**
 * write-back's queue of Redis writes: a set resolves once the local tiers have its entry, and
 * the entry reaches Redis from here.
 *
 * - Coalesced per key: a key queued again replaces what was queued for it (the last write
 *   wins) and moves to the back.
 * - Flushed in batches: once `maxDelay` after the first write queued since the last flush, or
 *   at once when BATCH writes are waiting. A batch is handed to `send` in one go (the Redis
 *   tier issues its commands in one tick, so ioredis pipelines them, per node in a cluster).
 * - Bounded: past `maxQueue` writes, or `maxBytes` of entry bytes, the oldest queued sets are
 *   dropped and counted (their keys are still local here; other instances read what Redis
 *   had); tombstones only when nothing else is left, a clear of Redis owed for them (#bound).
 *   Both bounds: 10,000 writes of Redis's largest values (1 MB) would hold 10 GB.
 * - A failed batch is put back (unless a newer write of the key was queued meanwhile) and
 *   retried `maxDelay` later while the breaker lets calls through, else by `resume()` (the
 *   breaker closing, the connection coming back).
 *
 * - Also what Redis missed: a change of any strategy that could not reach Redis (a set, or a
 *   delete as a tombstone; failOpen) waits here too, bound and coalesced the same way, and is
 *   sent when Redis can be reached again, its bus message after it (the stack holds the
 *   message back). Redis's scripts never let it replace anything newer. Without this, a delete
 *   made while Redis was away came back when Redis did, on every instance, and an overwrite
 *   left the others serving the old value.
 *
 * What a crash loses: the writes still queued (at most `maxQueue` / `maxBytes`, and normally those of the
 * last `maxDelay`). They stay in the files of this host; the outage rule (see bus/) makes every
 * instance, this one after its restart included, check such a file entry against Redis before
 * serving it, and one Redis does not have is dropped there too, so no instance serves it.
 */
export interface QueuedWrite {
  /** The entry file's bytes, as the Redis tier stores them; undefined: a delete (a tombstone
   *  stamped `createdAt`), replayed because Redis could not be reached when it was called. */
  bytes: Buffer | undefined
  /** When the entry was created (a delete: when it was called). */
  createdAt: number
  expiresAt: number
  grace: number
  /** A set Redis missed (a change of any strategy that could not reach it), not one write-back
   *  queued: what a crash must not undo (see owedRemovals). */
  missed?: true
}

/** How many queued writes start a flush without waiting for maxDelay. */
const BATCH = 256
/** How long a sent write is remembered for a clear heard after it (see #recall). */
const RECALL_WINDOW_MS = 10_000

/** A clear (every key) or a prune by pattern (`matches`) made at `at`: the writes created at or
 *  before then must not stay in Redis. */
interface Recall {
  matches: ((key: string) => boolean) | undefined
  at: number
}

/** Whether `recall` covers a write of `key` created at `createdAt`. */
function covers(recall: Recall, key: string, createdAt: number): boolean {
  return createdAt <= recall.at && (recall.matches?.(key) ?? true)
}
/** Failed sends in a row after which flush() callers stop waiting: a Redis that answers reads
 *  but refuses writes (a replica after a failover: READONLY; OOM) keeps the breaker closed. */
const FLUSH_GIVE_UP_FAILURES = 3

export interface WriteBackParts {
  maxQueue: number
  maxBytes: number
  maxDelay: number
  /** Sends a batch to Redis; rejects when Redis is unreachable. Resolves to the keys it stored. */
  send(batch: Map<string, QueuedWrite>): Promise<void>
  /** Writes dropped from the full queue. */
  dropped(count: number): void
  /** A tombstone let go from the full queue (see #bound): every value older than `at` in Redis
   *  must go instead (a clear of Redis owed, run when Redis can be reached). */
  lostTombstone(at: number): void
  /** May a flush run now (false while the Redis breaker is open). */
  ready(): boolean
}

export class WriteBackQueue {
  readonly #p: WriteBackParts
  #queue = new Map<string, QueuedWrite>()
  /** The entry bytes the queue holds (`#queue`'s; a batch being sent is not counted). */
  #bytes = 0
  /** The keys of `#queue` whose write is a set (not a tombstone), in the queue's order: #bound's
   *  oldest set found at once. Looked for in the queue, it cost a pass over every tombstone
   *  before it on each write past the bound: a queue of 10,000 tombstones took 2.8 s of the
   *  main thread for 10,000 more writes. */
  #sets = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> | undefined
  /** The batch on its way to Redis, as reads may still see it (`held`): what a later change
   *  (queued again, forgotten) replaced is taken out of it; the batch `send` works on is not. */
  #sending: Map<string, QueuedWrite> | undefined
  /** Sends that failed in a row (see FLUSH_GIVE_UP_FAILURES). */
  #failures = 0
  /** Callers of flush() waiting for an empty queue (true) or for Redis to be found out of
   *  reach (false). */
  #waiters: ((sent: boolean) => void)[] = []
  /** Writes Redis stored lately (key → when created, and when its batch came back), oldest
   *  first, at most maxQueue of them and RECALL_WINDOW_MS old. */
  readonly #sent = new Map<string, { createdAt: number; sentAt: number }>()
  /** Clears heard while a batch is on its way: applied to it once it is back. */
  #recalls: Recall[] = []

  constructor(parts: WriteBackParts) {
    this.#p = parts
  }

  get size(): number {
    return this.#queue.size
  }

  enqueue(key: string, write: QueuedWrite): void {
    this.#delete(key)
    this.#queue.set(key, write)
    if (write.bytes !== undefined) this.#sets.add(key)
    this.#bytes += write.bytes?.length ?? 0
    this.#bound()
    if (this.#queue.size >= BATCH) this.#kick()
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#kick(), this.#p.maxDelay)
      this.#timer.unref()
    }
  }

  /** Forgets what is queued for `key` (a delete or a local change overtook it). */
  forget(key: string): void {
    this.#delete(key)
  }

  /** Forgets what is queued for `key` if it is older than `at` (another instance changed the
   *  key then: what waits here would only be refused by Redis, or bring back what a clear or
   *  prune removed). A write stamped alike is sent: Redis keeps one of the two, and tells the
   *  other's writer to drop its copies (TierStack.sendBatch). */
  forgetIfOlder(key: string, at: number): void {
    const write = this.#queue.get(key)
    if (write !== undefined && write.createdAt < at) this.#delete(key)
    const sending = this.#sending?.get(key)
    if (sending !== undefined && sending.createdAt < at) this.#sending!.delete(key)
  }

  /** Forgets every queued write whose key `matches`, created at or before `at` (a prune by
   *  pattern, here or heard). */
  forgetMatching(matches: (key: string) => boolean, at: number): void {
    for (const [key, write] of this.#queue) if (write.createdAt <= at && matches(key)) this.#delete(key)
    if (this.#sending !== undefined)
      for (const [key, write] of this.#sending) if (write.createdAt <= at && matches(key)) this.#sending.delete(key)
    this.#recall({ matches, at })
    this.#settleWaiters()
  }

  /** When the write queued for `key` was created (undefined: none queued). */
  queuedAt(key: string): number | undefined {
    return this.#queue.get(key)?.createdAt
  }

  /** The latest change of `key` this instance made that Redis may not have yet (queued, or
   *  in the batch on its way): a read that finds nothing above it answers from this, not from
   *  Redis's older value (set() resolved, and a memory tier may have let its copy go). */
  held(key: string): QueuedWrite | undefined {
    return this.#queue.get(key) ?? this.#sending?.get(key)
  }

  /** Forgets every queued write created at or before `at` (a clear). */
  forgetBefore(at: number): void {
    for (const [key, write] of this.#queue) if (write.createdAt <= at) this.#delete(key)
    if (this.#sending !== undefined) for (const [key, write] of this.#sending) if (write.createdAt <= at) this.#sending.delete(key)
    this.#recall({ matches: undefined, at })
    this.#settleWaiters()
  }

  /**
   * A clear or a prune by pattern, here or heard: what is queued is forgotten (above), but a
   * write already sent can reach Redis after the clear's sweep passed its key (a batch on its
   * way, or one that landed just after: the clear's message comes once the sweep is done), and
   * would stay there for every instance, for good. So each write of a batch still on its way,
   * once back, and each write sent in the last RECALL_WINDOW_MS, that the clear covers
   * (created at or before it, its key matching) is followed by a tombstone stamped with the
   * clear's time: Redis keeps anything newer (DELETE_IF_OLDER), and the tombstones' message
   * makes the other instances drop their copies of what they read meanwhile. A key the clear
   * did remove gets a tombstone too: harmless (it expires; a read of it is a miss).
   */
  #recall(recall: Recall): void {
    if (this.#flushing !== undefined) this.#recalls.push(recall)
    const since = Date.now() - RECALL_WINDOW_MS
    for (const [key, sent] of this.#sent) {
      if (sent.sentAt >= since && covers(recall, key, sent.createdAt)) this.#tombstone(key, recall.at)
    }
  }

  /** Queues a tombstone of `key` stamped `at`, unless a newer write of it is queued. */
  #tombstone(key: string, at: number): void {
    const queued = this.#queue.get(key)
    if (queued !== undefined && queued.createdAt > at) return
    this.#sent.delete(key)
    this.enqueue(key, { bytes: undefined, createdAt: at, expiresAt: 0, grace: 0 })
  }

  /** A batch is back: what Redis stored is remembered (see #recall), and the clears heard
   *  meanwhile are applied to it. */
  #sentBack(sent: [string, QueuedWrite][], unsent: Map<string, QueuedWrite>): void {
    const recalls = this.#recalls
    this.#recalls = []
    const now = Date.now()
    for (const [key, write] of sent) {
      if (unsent.has(key) || write.bytes === undefined) continue
      this.#sent.delete(key)
      this.#sent.set(key, { createdAt: write.createdAt, sentAt: now })
      for (const recall of recalls) {
        if (covers(recall, key, write.createdAt)) this.#tombstone(key, recall.at)
      }
    }
    // Writes that failed, put back for a retry, are forgotten as the queue's were.
    for (const [key, write] of unsent) {
      if (recalls.some((recall) => covers(recall, key, write.createdAt))) unsent.delete(key)
    }
    for (const [key, { sentAt }] of this.#sent) {
      if (this.#sent.size <= this.#p.maxQueue && sentAt >= now - RECALL_WINDOW_MS) break
      this.#sent.delete(key)
    }
  }

  /** Resolves to true once every write queued before the call has been sent or dropped; to
   *  false once Redis is found out of reach (its breaker open, or FLUSH_GIVE_UP_FAILURES sends
   *  failed in a row: the writes stay queued for its return), or when `giveUp` resolves first
   *  (close()'s bound). */
  async flush(giveUp?: Promise<unknown>): Promise<boolean> {
    if (this.#queue.size === 0 && this.#flushing === undefined) return true
    const settled = new Promise<boolean>((resolve) => this.#waiters.push(resolve))
    this.#kick()
    return giveUp === undefined ? settled : Promise.race([settled, giveUp.then(() => this.#queue.size === 0)])
  }

  /**
   * What the next instance on the directory is to send for this one (left by close(), and
   * recorded while it runs: facade/owed-to-redis.ts), key and time: each delete waiting for
   * Redis (queued, or on its way), and each set Redis missed (`missed`) as a delete of the
   * value it replaced, stamped just after its own creation; `sets`, how many of those. The
   * set's value is not recorded (its copy in the directory is removed by the next open's
   * outage rule, Redis holding no such version: counted as dropped at close), but without the
   * delete the value it replaced came back on every host after a close or a crash. Just after,
   * so that the next instance does not take its own copy for the version queued (#stillValid)
   * and serve it, into memory too, while every other host misses; and a set that did land
   * before the crash is removed too (a miss). A write-back set is not in it: a crash loses it.
   */
  owedRemovals(): { removals: [string, number][]; sets: number } {
    const found = new Map<string, { at: number; set: boolean }>()
    for (const batch of [this.#sending, this.#queue]) {
      if (batch === undefined) continue
      for (const [key, write] of batch) {
        if (write.bytes === undefined) found.set(key, { at: write.createdAt, set: false })
        else if (write.missed === true) found.set(key, { at: justAfter(write.createdAt), set: true })
        else found.delete(key)
      }
    }
    let sets = 0
    const removals: [string, number][] = []
    for (const [key, { at, set }] of found) {
      removals.push([key, at])
      if (set) sets++
    }
    return { removals, sets }
  }

  /** How many sets are queued (tombstones left out): at close, what Redis will never get. */
  queuedSets(): number {
    return this.#sets.size
  }

  /** Redis is back: send what waited. */
  resume(): void {
    if (this.#queue.size > 0) this.#kick()
  }

  /** Stops the timer (close, after the last flush). */
  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (const resolve of this.#waiters.splice(0)) resolve(this.#queue.size === 0)
  }

  #kick(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#flushing !== undefined || this.#queue.size === 0) {
      this.#settleWaiters()
      return
    }
    if (!this.#p.ready()) {
      this.#settleWaiters() // resume() starts it when Redis is back; flush() callers hear now
      return
    }
    const batch = this.#queue
    const sending = [...batch]
    this.#queue = new Map()
    this.#sets = new Set()
    this.#bytes = 0
    const current = (this.#sending = new Map(sending))
    let failed = false
    this.#flushing = this.#p
      .send(batch) // deletes from `batch` what Redis took: what is left failed
      .finally(() => {
        // Redis has what it took (a read there finds it); what failed is put back below.
        this.#sending = undefined
        this.#sentBack(sending, batch)
      })
      .catch(() => {
        failed = true
        // Put back what no later change replaced or forgot meanwhile (a delete, another
        // instance's newer write, a clear), oldest first, within the bound.
        const newer = this.#queue
        this.#queue = new Map()
        for (const [key, write] of batch) if (!newer.has(key) && current.has(key)) this.#queue.set(key, write)
        for (const [key, write] of newer) this.#queue.set(key, write)
        this.#bytes = 0
        this.#sets = new Set()
        for (const [key, write] of this.#queue) {
          this.#bytes += write.bytes?.length ?? 0
          if (write.bytes !== undefined) this.#sets.add(key)
        }
        this.#bound()
      })
      .finally(() => {
        this.#flushing = undefined
        this.#failures = failed ? this.#failures + 1 : 0
        if (this.#failures >= FLUSH_GIVE_UP_FAILURES) for (const resolve of this.#waiters.splice(0)) resolve(false)
        if (this.#queue.size === 0 || !this.#p.ready()) this.#settleWaiters()
        else if (!failed) this.#kick()
        else if (this.#timer === undefined) {
          // Not at once: a batch refused without waiting (the breaker half-open, its one
          // trial call elsewhere) would be sent again and again in microtasks, and the event
          // loop, the trial's timeout with it, would never run again.
          // Held open only while someone awaits flush(): an exit must not drop what they wait for.
          this.#timer = setTimeout(() => this.#kick(), this.#p.maxDelay)
          if (this.#waiters.length === 0) this.#timer.unref()
        }
      })
  }

  /** Removes `key`'s queued write, if any, from the queue and its byte count (and from what
   *  reads see of the batch on its way: a later change replaced it). */
  #delete(key: string): void {
    this.#sending?.delete(key)
    const write = this.#queue.get(key)
    if (write === undefined) return
    this.#queue.delete(key)
    this.#sets.delete(key)
    this.#bytes -= write.bytes?.length ?? 0
  }

  /**
   * Drops the oldest queued writes (counted) while past either bound. Sets go first, tombstones
   * last: a set let go leaves its value in this host's tiers and Redis's older value to the
   * others (a counted drop, as documented), but a delete let go would bring the deleted value
   * back on every host once Redis returns. A tombstone goes only when the queue holds nothing
   * else, and then what it stood for is kept another way: a clear of every value in Redis
   * older than it, owed and run once Redis can be reached (misses, never a deleted value).
   */
  #bound(): void {
    let over = 0
    while (this.#queue.size > this.#p.maxQueue || (this.#bytes > this.#p.maxBytes && this.#queue.size > 1)) {
      let victim = this.#sets.values().next().value
      if (victim === undefined) {
        const [key, tombstone] = this.#queue.entries().next().value as [string, QueuedWrite]
        victim = key
        this.#p.lostTombstone(tombstone.createdAt)
      }
      this.#delete(victim)
      over++
    }
    if (over > 0) this.#p.dropped(over)
  }

  /** Wakes flush() callers when nothing is left to send (true), or when nothing can be sent
   *  now (false: the breaker is open, and a flush must not wait for as long as Redis is away). */
  #settleWaiters(): void {
    if (this.#flushing !== undefined) return
    if (this.#queue.size > 0 && this.#p.ready()) return
    const sent = this.#queue.size === 0
    for (const resolve of this.#waiters.splice(0)) resolve(sent)
  }
}
