import { EventEmitter } from 'node:events'
import type { Cluster, Redis } from 'ioredis'
import { closeClient, connectTo } from './connection.js'

/** Reconnections to one node before the next node is tried (then 'end'). */
const TRIES_PER_NODE = 3
/** How soon another node is tried when none could be picked or reached. */
const NEXT_NODE_MS = 100

/**
 * The bus's subscriber in a Redis Cluster: a plain connection to one node of the cluster (a
 * PUBLISH reaches every node, replicas too), moved to another node when it ends. It shows the
 * bus what a standalone subscriber shows: 'close' when the connection goes, 'ready' when one is
 * back, on which the bus subscribes again and runs the outage rule.
 *
 * Not `Cluster.duplicate()`: its subscriber moves to another node by itself when its node
 * dies, re-sending SUBSCRIBE while the cluster object stays 'ready', so the bus never learnt
 * that messages were lost in between, and an instance kept serving what another overwrote
 * then (a review reproduced it by killing the subscriber's node).
 */
export class NodeSubscriber extends EventEmitter {
  readonly #cluster: Cluster
  readonly #commandTimeout: number
  #connection: Redis | undefined
  #next = 0
  #closed = false
  #timer: NodeJS.Timeout | undefined

  constructor(cluster: Cluster, commandTimeout: number) {
    super()
    this.#cluster = cluster
    this.#commandTimeout = commandTimeout
    this.#connect()
  }

  get status(): string {
    return this.#connection?.status ?? 'connecting'
  }

  subscribe(channel: string): Promise<unknown> {
    if (this.#connection === undefined) return Promise.reject(new Error('No node to subscribe on yet'))
    return this.#connection.subscribe(channel)
  }

  get commandQueue(): { readonly length: number } {
    return this.#connection?.commandQueue ?? { length: 0 }
  }

  ping(): Promise<unknown> {
    if (this.#connection === undefined) return Promise.reject(new Error('No node to ping yet'))
    return this.#connection.ping()
  }

  /** Drops the connection (it went silent: see bus/bus.ts) and, with `reconnect`, moves to the
   *  next node, as when a node ends. */
  disconnect(reconnect = false): void {
    const connection = this.#connection
    if (connection === undefined) return
    this.#connection = undefined
    connection.disconnect()
    this.emit('close')
    if (reconnect) this.#later()
    else this.#closed = true
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    if (this.#connection !== undefined) await closeClient(this.#connection)
    this.#connection = undefined
  }

  #connect(): void {
    this.#timer = undefined
    if (this.#closed) return
    // The cluster's current view of its nodes (its slots refresh keeps it), in turn.
    const nodes = this.#cluster.nodes('all')
    const node = nodes[this.#next++ % Math.max(1, nodes.length)]
    if (node === undefined) return this.#later()
    const { host, port, username, password, tls } = node.options
    const connection = connectTo({
      host,
      port,
      username,
      password,
      tls,
      commandTimeout: this.#commandTimeout,
      connectTimeout: Math.max(1000, this.#commandTimeout),
      // Only SUBSCRIBE is sent, once per 'ready'; ioredis's own resubscribe sends one nobody
      // waits for (see duplicateForSubscribing).
      autoResubscribe: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      keepAlive: 1000,
      retryStrategy: (times) => (times > TRIES_PER_NODE ? null : 50 * times),
    })
    connection.on('error', () => {}) // counted where it matters: the breaker, the outage rule
    connection.on('messageBuffer', (channel: Buffer, bytes: Buffer) => this.emit('messageBuffer', channel, bytes))
    // Only the current connection's: one dropped for its silence closes after its successor
    // may be subscribed, which a late 'close' would mark unsubscribed for good.
    connection.on('ready', () => this.#connection === connection && this.emit('ready'))
    connection.on('close', () => this.#connection === connection && this.emit('close'))
    connection.once('end', () => {
      if (this.#connection !== connection) return
      this.#connection = undefined
      this.#later()
    })
    this.#connection = connection
  }

  #later(): void {
    if (this.#closed || this.#timer !== undefined) return
    this.#timer = setTimeout(() => this.#connect(), NEXT_NODE_MS)
    this.#timer.unref()
  }
}
