import { randomBytes } from 'node:crypto'
import type { DiskBreaker } from '../resilience/disk-breaker.js'
import type { RedisClient } from '../redis/connection.js'
import { decodeMessage, encodeMessage, encoderFor, sentBy, type BusMessage, type DistributiveOmit } from './messages.js'
import { Outbox } from './outbox.js'
import { RetrySoon } from '../resilience/retry-soon.js'

/** Messages (keys and tags) queued at most while Redis is unreachable; see Outbox. */
const OUTBOX_MAX = 10_000
/** How often the subscription is checked: a PING on the bus's connection (see Bus). */
export const HEARTBEAT_MS = 1000

/** What the bus needs of its connection: a standalone `Redis`, or a cluster's NodeSubscriber
 *  ('ready', 'close' and 'messageBuffer' events). */
export interface Subscriber {
  readonly status: string
  subscribe(channel: string): Promise<unknown>
  /** Answered on a subscribed connection too; fails after commandTimeout without an answer. */
  ping(): Promise<unknown>
  /** The commands sent and not yet answered. */
  readonly commandQueue: { readonly length: number }
  /** Drops the connection; with `reconnect`, one is opened again ('close', then 'ready'). */
  disconnect(reconnect?: boolean): void
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
  on(event: string, listener: (...args: any[]) => void): unknown
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
  once(event: string, listener: (...args: any[]) => void): unknown
}

export interface BusParts {
  /** Publishes (the tier's command connection, through the Redis breaker). */
  client: RedisClient
  breaker: DiskBreaker
  /** The bus's own connection, which SUBSCRIBE takes over. */
  subscriber: Subscriber
  channel: string
  /** Another instance's message. */
  received(message: BusMessage): void
  /** What must reach Redis before queued messages go out: the tag stamps that waited with
   *  them. An outbox that overflowed sends one `all` message, whose receivers read the stamps
   *  from Redis instead of hearing the tags. */
  beforeFlush(): Promise<void>
  /** The subscription is (again) in place after the bus was down, or for the first time: what
   *  was published meanwhile was missed (the outage rule, see tiers/tier-stack.ts). */
  connected(): void
  /** The subscription went silent while commands may still reach Redis: what was published
   *  since the last heartbeat may have been missed, and what is published until it is back
   *  will be (the outage rule now, and again at each attempt that fails). */
  lost(): void
}

/**
 * The invalidation bus: Redis pub/sub on one channel per prefix and namespace, on a connection
 * of its own. Every instance publishes what it changed and drops its local copies of what the
 * others changed; its own messages (recognised by a random id) are ignored.
 *
 * While Redis cannot be reached, messages wait in a bounded, deduplicated outbox and are
 * published when it can be again (the Redis breaker closing, the connection coming back).
 * A subscriber that was disconnected cannot know what it missed: when its subscription is back
 * in place, `connected()` runs the outage rule.
 *
 * A subscription can also go silent with its socket open (a half-dead link, a proxy that
 * drops bytes): no 'close' comes, and an instance whose commands still work went on serving
 * copies that others had overwritten or deleted, for as long as the silence lasted (a review
 * reproduced 20 s). So the bus PINGs its connection every HEARTBEAT_MS; a PING or a SUBSCRIBE
 * unanswered within commandTimeout means the connection cannot be trusted: the outage rule
 * runs at once (`lost()`: what was published since the last answer may be lost), the
 * connection is dropped and opened again, and the rule runs again when the subscription is
 * back. A silence is found within HEARTBEAT_MS + commandTimeout (1.5 s by default); while it
 * lasts, each new attempt runs the rule again.
 */
export class Bus {
  readonly id = randomBytes(8).toString('hex')
  readonly #p: BusParts
  readonly #outbox = new Outbox(OUTBOX_MAX)
  readonly #encode = encoderFor(this.id)
  #subscribed = false
  #flushing = false
  #closed = false
  /** A publish that failed while the breaker stayed closed and the connection up flushes the
   *  outbox again soon (the breaker's and the connection's events flush it otherwise); a message
   *  left waiting for the next publish, however long, would let the others serve what it drops. */
  readonly #retry = new RetrySoon(() => void this.flush())
  readonly #heartbeat: NodeJS.Timeout
  #beating = false

  constructor(parts: BusParts) {
    this.#p = parts
    const { subscriber, channel } = parts
    const own = sentBy(this.id)
    const channelBytes = Buffer.from(channel)
    subscriber.on('error', () => {}) // reconnects by itself; the Redis breaker counts what fails
    // The bytes as Redis delivered them ('messageBuffer'; with no 'message' listener ioredis
    // makes no strings): this instance's own message, one per write it publishes, is
    // recognised by its first bytes and never decoded.
    subscriber.on('messageBuffer', (from: Buffer, bytes: Buffer) => {
      if (!channelBytes.equals(from) || own(bytes)) return
      const message = decodeMessage(bytes.toString())
      if (message !== undefined && message.from !== this.id) parts.received(message)
    })
    subscriber.on('close', () => {
      this.#subscribed = false
    })
    subscriber.on('ready', () => void this.#subscribe())
    this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS).unref()
  }

  /** Subscribes, waiting at most `ms` (Redis may be down: the subscription follows when it
   *  comes, and counts as a reconnect). */
  async start(ms: number): Promise<void> {
    if (this.#p.subscriber.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms)
        this.#p.subscriber.once('ready', () => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    if (this.#p.subscriber.status === 'ready') await this.#subscribe()
  }

  /** Whether the subscription is in place (messages are arriving). */
  get subscribed(): boolean {
    return this.#subscribed
  }

  /** Messages waiting for Redis. */
  get queued(): number {
    return this.#outbox.size
  }

  /** Publishes `message` (its `from` filled in), or queues it while Redis cannot be reached. */
  publish(message: DistributiveOmit<BusMessage, 'from'>): void {
    if (this.#closed) return
    const full = { ...message, from: this.id }
    if (this.#outbox.size > 0 || this.#p.breaker.state === 'open') {
      this.#outbox.add(full)
      void this.flush()
      return
    }
    void this.#send(full) // nobody waits: #send never rejects (a failed publish goes back to the outbox)
  }

  /**
   * `message` as a command that writes to Redis may publish itself (see SET_IF_NEWER): the
   * channel and the encoded message, when it may go out now, i.e. when nothing waits before
   * it and Redis is not known to be down. Undefined otherwise: then `publish` it once the
   * write has been tried, as usual. A write that fails before its script ran has published
   * nothing, and its caller publishes it then (queued).
   */
  inline(message: DistributiveOmit<BusMessage, 'from'>): Announcement | undefined {
    if (this.#closed || this.#outbox.size > 0 || this.#p.breaker.state === 'open') return undefined
    return { channel: this.#p.channel, text: this.#encode(message) }
  }

  /** Publishes what waited (the Redis breaker closed, the connection is back); resolves once
   *  tried (close() waits for one try: a message that failed just before it is not lost). */
  flush(): Promise<void> {
    if (this.#flushing || this.#outbox.size === 0 || this.#p.breaker.state === 'open' || this.#p.client.status !== 'ready')
      return Promise.resolve()
    this.#flushing = true
    return this.#p
      .beforeFlush()
      .catch(() => {}) // a stamp Redis refused is retried by its owner; the messages go anyway
      .then(() => Promise.all(this.#outbox.take(this.id).map((m) => this.#send(m))))
      .then(() => {
        this.#flushing = false
      })
  }

  close(): void {
    this.#closed = true
    this.#retry.stop()
    clearInterval(this.#heartbeat)
  }

  /** One PING while subscribed (one at a time); unanswered: the subscription is silent. */
  #beat(): void {
    if (!this.#subscribed || this.#beating) return
    this.#beating = true
    this.#p.subscriber.ping().then(
      () => {
        this.#beating = false
      },
      () => {
        this.#beating = false
        this.#silent()
      },
    )
  }

  /**
   * A command timed out on the bus's connection. Its timer may have fired late, after a stall
   * of this process while the answer waited to be read (timers run before the loop polls for
   * I/O): what arrived is read first (an immediate runs after that poll). Still unanswered:
   * the connection is silent, and nothing heard on it can be trusted to be complete.
   */
  #silent(): void {
    setImmediate(() => {
      const { subscriber } = this.#p
      if (this.#closed || subscriber.status !== 'ready') return // closing, or already reconnecting
      if (this.#subscribed && subscriber.commandQueue.length === 0) return // answered after all
      this.#subscribed = false
      this.#p.lost()
      subscriber.disconnect(true)
    })
  }

  async #send(message: BusMessage): Promise<void> {
    try {
      await this.#p.breaker.run(() => this.#p.client.publish(this.#p.channel, encodeMessage(message)))
    } catch {
      this.#outbox.add(message)
      this.#retry.schedule()
    }
  }

  #subscribing: Promise<void> | undefined

  /** Subscribes once per connection; the first success after a disconnection is a reconnect. */
  #subscribe(): Promise<void> {
    this.#subscribing ??= this.#subscribeOnce().finally(() => {
      this.#subscribing = undefined
    })
    return this.#subscribing
  }

  async #subscribeOnce(): Promise<void> {
    if (this.#closed || this.#subscribed) return
    try {
      await this.#p.subscriber.subscribe(this.#p.channel)
    } catch {
      // The connection dropped again: the next 'ready' tries again. Still up (the command timed
      // out on a slow or paused server, or one that drops what it is sent): no 'ready' would
      // come, and this instance would never run the outage rule for what it missed; nor can a
      // connection with a command unanswered be trusted to be in step: opened again.
      this.#silent()
      return
    }
    this.#subscribed = true
    this.#p.connected()
    void this.flush()
  }
}

/** A bus message for a Redis script to publish: where, and the encoded message. */
export interface Announcement {
  channel: string
  text: string
}
