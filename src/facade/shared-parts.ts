import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { setTimeout as delay } from 'node:timers/promises'
import { Bus } from '../bus/bus.js'
import type { BusMessage } from '../bus/messages.js'
import type { ResolvedOptions, ResolvedRedisOptions } from '../options.js'
import { beingDropped, closeClient, duplicateForSubscribing, openClient, readyWithin, type RedisClient } from '../redis/connection.js'
import { NodeSubscriber } from '../redis/node-subscriber.js'
import { keyPrefixOf } from '../redis/sweep.js'
import { FOLD_STAMPS, RAISE_FLOOR, RAISE_STAMPS, RELEASE_LOCK, runScript, TAKE_LOCK } from '../redis/scripts.js'
import { DiskBreaker, type BreakerState } from '../resilience/disk-breaker.js'
import { isRedisFailure } from '../resilience/redis-failure.js'
import type { ActivityCounters } from '../stats/activity-log.js'
import type { CorruptReport } from '../tiers/file-tier.js'
import { RedisTier, type RedisTagStamps } from '../tiers/redis-tier.js'

export interface SharedHooks {
  counts: ActivityCounters
  tags: RedisTagStamps
  corrupt: (report: CorruptReport) => void
  breaker: (state: BreakerState) => void
  /** Another instance's message. */
  received: (message: BusMessage) => void
  /** What must reach Redis before queued bus messages go out (see BusParts.beforeFlush). */
  beforeFlush: () => Promise<void>
  /** The bus's subscription is in place (again): the outage rule. */
  connected: () => void
  /** The bus's subscription went silent (bus/bus.ts): the outage rule too. */
  lost: () => void
  /** Redis can be reached again (the breaker closed): send what waited. */
  recovered: () => void
}

/**
 * The Redis breaker's options. On a connection larder opened, ioredis's own `commandTimeout`
 * already fails every command that gets no answer in time, so a breaker timeout that is not
 * shorter would only time the same thing again: it is dropped, and the breaker takes its fast
 * path (no opossum `fire()`, no timer per command; resilience/disk-breaker.ts). A caller's
 * client may have no timeout of its own: the breaker keeps timing its commands.
 */
function breakerOptions(redis: ResolvedRedisOptions, owned: boolean): ResolvedRedisOptions['breaker'] {
  return owned && redis.breaker.timeout >= redis.commandTimeout ? { ...redis.breaker, timeout: 0 } : redis.breaker
}

/** Fields of the tag-stamp hash asked for per HSCAN (a hint Redis follows closely for a hash
 *  this large): a command that holds Redis a millisecond or so, not the whole hash at once. */
const STAMPS_PER_SCAN = 1000
/** Stamps removed per script call of a fold (each call holds Redis for its length). */
const FOLD_PER_CALL = 500

/** How long a lock is held at most (its holder died, or its loader hangs). */
export const LOCK_TTL_MS = 10_000
/** How long a getOrSet waits for another instance's loader before calling its own. */
export const LOCK_WAIT_MS = 10_000

/**
 * Everything a cache with `redis` owns: the command connection (the caller's, or its own),
 * the Redis tier's breaker, the tier, the bus and its connection, the tag stamps kept in Redis
 * and getOrSet's cross-instance lock.
 */
export class SharedParts {
  readonly client: RedisClient
  readonly breaker: DiskBreaker
  readonly tier: RedisTier
  readonly bus: Bus | undefined
  readonly #owned: boolean
  readonly #subscriber: Redis | NodeSubscriber | undefined
  readonly #options: ResolvedRedisOptions
  readonly #stampsKey: string
  /** The floor of the stamps folded out of the hash (TagInvalidation's fold): a time. */
  readonly #floorKey: string
  /** What waits for the command connection to be ready (whenReady). */
  readonly #waiting = new Set<() => void>()
  /** The last error of a connection larder opened, until it is ready again. */
  #connectionError: string | undefined

  constructor(options: ResolvedOptions & { redis: ResolvedRedisOptions }, hooks: SharedHooks) {
    this.#options = options.redis
    const { client, owned } = openClient(options.redis)
    this.client = client
    this.#owned = owned
    // It reconnects by itself; failed commands are counted. What went wrong last is kept: a
    // command sent while it is not connected fails with ioredis's "Stream isn't writeable",
    // which names neither a wrong password nor a refused port (whyNotConnected).
    if (owned) client.on('error', (error: Error) => (this.#connectionError = withoutPassword(error.message, options.redis.url)))
    this.breaker = new DiskBreaker(
      breakerOptions(options.redis, owned),
      (state) => {
        hooks.breaker(state)
        if (state === 'closed') hooks.recovered()
        // Only a command closes a half-open breaker, and an idle instance (or one answered
        // from memory) sends none: what waits for Redis (queued writes, bus messages, tag
        // stamps, a missed clear) would wait for ever. One read is the trial: it closes the
        // breaker (then `recovered`) or opens it again for another resetTimeout. A keyed read,
        // not a PING: in a cluster a PING goes to any live node, and succeeds while the slots
        // are down (CLUSTERDOWN), closing the breaker for calls that all fail.
        if (state === 'halfOpen') this.breaker.run(() => this.client.exists(this.#stampsKey)).catch(() => {})
      },
      isRedisFailure,
    )
    this.tier = new RedisTier({
      client,
      options,
      redis: options.redis,
      breaker: this.breaker,
      tags: hooks.tags,
      counts: hooks.counts,
      corrupt: hooks.corrupt,
    })
    this.#stampsKey = `${this.tier.base}\0tags`
    this.#floorKey = `${this.tier.base}\0tagfloor`
    client.on('ready', () => {
      this.#connectionError = undefined
      for (const task of this.#waiting) task()
      this.#waiting.clear()
      hooks.recovered()
    })
    if (options.bus) {
      this.#subscriber = client.isCluster
        ? new NodeSubscriber(client as Cluster, options.redis.commandTimeout)
        : duplicateForSubscribing(client as Redis)
      this.bus = new Bus({
        client,
        breaker: this.breaker,
        subscriber: this.#subscriber,
        // ioredis puts a client's keyPrefix before keys, never before channels: put here, so
        // caches kept apart by their clients' keyPrefix do not hear each other's clears and tags.
        channel: `${keyPrefixOf(client)}${options.redis.prefix}bus:${this.tier.base.slice(options.redis.prefix.length, -1)}`,
        received: hooks.received,
        beforeFlush: hooks.beforeFlush,
        connected: hooks.connected,
        lost: hooks.lost,
      })
    }
  }

  /** Why the command connection is not ready, as its last error said (a caller's client is the
   *  caller's to hear): undefined when it is ready or nothing was heard. */
  whyNotConnected(): string | undefined {
    return this.client.status === 'ready' && !beingDropped(this.client) ? undefined : this.#connectionError
  }

  /** Waits (at most commandTimeout, or a second) for Redis and the bus: Redis down at open
   *  still opens the cache, whose reads fall through and writes drop until it comes. */
  async start(): Promise<void> {
    const ms = Math.max(1000, this.#options.commandTimeout)
    // A caller's client made with `lazyConnect` waits for a first command, and larder sends
    // none until it is ready (whenReady): connected here.
    if (this.client.status === 'wait') this.client.connect().catch(() => {}) // failures: its own 'error' events
    await Promise.all([readyWithin(this.client, ms), this.bus?.start(ms)])
  }

  /** Runs `task` once the command connection is ready: now, or at its next 'ready' (once,
   *  however often it is asked meanwhile). A command sent before that fails at once (no offline
   *  queue) and counts against Redis: the bus's subscriber, a connection of its own, may be
   *  subscribed first, at open and after an outage. */
  whenReady(task: () => void): void {
    if (this.client.status === 'ready') task()
    else this.#waiting.add(task)
  }

  /**
   * Every tag stamp recorded in Redis (an instance that starts later sees old invalidations).
   * The hash grows by a field per tag invalidated (up to the fold's bound: TagInvalidation), so it is read in chunks, an HSCAN
   * of about STAMPS_PER_SCAN fields at a time, each through the breaker as any command: one
   * HGETALL of 200k fields held Redis 0.3–0.4 s for every client, and ran past commandTimeout.
   * A field there from the first chunk to the last is seen (HSCAN's guarantee; one seen twice
   * keeps its higher stamp); one added or raised meanwhile comes over the bus, subscribed
   * before the read begins.
   */
  async tagStamps(): Promise<Map<string, number>> {
    const stamps = new Map<string, number>()
    let cursor = '0'
    do {
      const from = cursor
      const [next, flat] = await this.breaker.run(() => this.client.hscan(this.#stampsKey, from, 'COUNT', STAMPS_PER_SCAN))
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const tag = flat[i]!
        const at = Number(flat[i + 1])
        if (Number.isFinite(at)) stamps.set(tag, Math.max(at, stamps.get(tag) ?? at))
      }
      cursor = next
    } while (cursor !== '0')
    return stamps
  }

  /** The floor of the stamps folded out of the hash, 0 when none was. Read after the stamps
   *  (tagStamps): a fold raises it before it removes any stamp, so a read that missed a stamp
   *  the fold removed finds the floor that covers it. A value that is not a time reads as a
   *  floor raised now (never fewer misses for something not ours). */
  async tagFloor(): Promise<number> {
    const text = await this.breaker.run(() => this.client.get(this.#floorKey))
    if (text === null) return 0
    const at = Number(text)
    return Number.isFinite(at) ? at : Date.now()
  }

  /** Raises the floor to `floor` in Redis, then removes the stamps of `tags` at or below it
   *  (each checked in the script: one raised meanwhile stays), STAMPS_PER_CALL fields a call.
   *  The number removed. */
  async foldTagStamps(floor: number, tags: readonly string[]): Promise<number> {
    await this.breaker.run(() => runScript(this.client, RAISE_FLOOR, [this.#floorKey], [String(floor)]))
    let removed = 0
    for (let i = 0; i < tags.length; i += FOLD_PER_CALL) {
      const chunk = tags.slice(i, i + FOLD_PER_CALL)
      removed += Number(await this.breaker.run(() => runScript(this.client, FOLD_STAMPS, [this.#stampsKey], [String(floor), ...chunk])))
    }
    return removed
  }

  /** Raises the stamps of `tags` to `at` in Redis (never lowers one). */
  async recordTags(tags: readonly string[], at: number): Promise<void> {
    await this.recordStamps(tags.map((tag) => [tag, at]))
  }

  /** Raises each tag's stamp in Redis to its time (never lowers one): one script call. */
  async recordStamps(stamps: readonly (readonly [tag: string, at: number])[]): Promise<void> {
    await this.breaker.run(() =>
      runScript(
        this.client,
        RAISE_STAMPS,
        [this.#stampsKey],
        stamps.flatMap(([tag, at]) => [tag, String(at)]),
      ),
    )
  }

  /**
   * Runs `work` holding the lock of `key` (TAKE_LOCK: SET NX PX; released by a token-checked script), or,
   * while another instance holds it, polls `ready` (has that instance's value arrived?) until
   * the lock is free (or held by another than the holder it found) or LOCK_WAIT_MS have
   * passed, then runs `work` anyway: a bounded wait. An
   * unreachable Redis runs `work` at once (no lock is better than no answer).
   *
   * Round trips: `ready` is asked whether the lock was taken or not (a holder before us may
   * have stored the value just before we took it), so on one server it goes out behind the
   * `SET NX` on the same connection without waiting for its answer: Redis runs the two in
   * order, and the read sees whatever a holder stored before releasing. (A cluster may hold the
   * lock and the value on two nodes, which run them in either order: there it waits.) The
   * release is sent once `work` is done and not waited for: `work` has stored the value, which
   * is what the waiting instances look for, and a release that fails leaves the lock to expire.
   * A missing key costs its getOrSet three round trips after its first read, not five.
   */
  async withLock<T>(key: string, ready: () => Promise<T | undefined>, work: () => Promise<T>): Promise<T> {
    const name = `${this.tier.base}\0lock:${key}`
    const token = randomBytes(12).toString('hex')
    const deadline = Date.now() + LOCK_WAIT_MS
    let pause = 5
    // The token of the holder this call waits for (the first it found holding the lock).
    let holder: unknown
    for (;;) {
      // 1: taken; another holder's token (or 0); undefined: Redis could not be asked.
      const locking = this.breaker.run(() => runScript(this.client, TAKE_LOCK, [name], [token, LOCK_TTL_MS])).catch(() => undefined)
      const asked = this.client.isCluster ? undefined : ready()
      asked?.catch(() => {}) // awaited below, unless the lock failed
      const reply = await locking
      if (reply === undefined) return work()
      const acquired = reply === 1
      // The holder waited for let the lock go without a value (its loader failed, or its value
      // stays local) and another took it: that one's loader is not waited for in turn (each
      // waiter would wait for every loader before it), this call runs its own.
      const released = !acquired && holder !== undefined && reply !== holder
      if (!acquired && holder === undefined) holder = reply
      let found: T | undefined
      try {
        found = await (asked ?? ready())
        if (acquired) return found !== undefined ? found : await work()
      } finally {
        if (acquired) void this.breaker.run(() => runScript(this.client, RELEASE_LOCK, [name], [token])).catch(() => {})
      }
      if (found !== undefined) return found
      if (released || Date.now() >= deadline) return work()
      await delay(pause)
      pause = Math.min(pause * 2, 50)
    }
  }

  async close(): Promise<void> {
    this.#waiting.clear()
    this.bus?.close()
    if (this.#subscriber instanceof NodeSubscriber) await this.#subscriber.close()
    else if (this.#subscriber !== undefined) await closeClient(this.#subscriber)
    if (this.#owned) await closeClient(this.client)
    this.breaker.shutdown()
  }
}

/** `message` with the password of `url` (as written and decoded) masked: no key or token is
 *  ever told (ioredis's own messages hold none today; this keeps it so). */
function withoutPassword(message: string, url: string | undefined): string {
  let password: string | undefined
  try {
    password = url === undefined ? undefined : new URL(url).password
  } catch {
    return message
  }
  if (!password) return message
  let masked = message.split(password).join('***')
  try {
    masked = masked.split(decodeURIComponent(password)).join('***')
  } catch {
    // not percent-encoded text: the raw form was masked
  }
  return masked
}
