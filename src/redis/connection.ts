import type { Cluster, ClusterNode, Command, Redis, RedisOptions as IORedisOptions } from 'ioredis'
import { type ClusterSeeds, clusterSeeds } from './cluster-seeds.js'
import { CommandDeadlines, type WatchedCommand } from './command-deadlines.js'
import type { ResolvedRedisOptions } from '../options.js'

export type RedisClient = Redis | Cluster

/** ioredis, loaded by the first cache that has `redis` (`loadRedisClient`): a cache without
 *  Redis, and every CLI command but those given --redis, never pays for loading it. */
let ioredis: { Redis: typeof Redis; Cluster: typeof Cluster } | undefined

export async function loadRedisClient(): Promise<void> {
  if (ioredis !== undefined) return
  const { Redis, Cluster } = await import('ioredis')
  ioredis = { Redis, Cluster }
}

function loaded(): { Redis: typeof Redis; Cluster: typeof Cluster } {
  if (ioredis === undefined) throw new Error('larder: loadRedisClient() must run before a Redis connection opens')
  return ioredis
}

/**
 * How a connection larder opened closes. ioredis ends a socket it disconnects gracefully and
 * destroys it `disconnectTimeout` later if it has not closed by then: 2 s by default, a timer
 * that held the host's process that long after `close()` while Redis could not be reached.
 */
const CLOSING = { disconnectTimeout: 100 } satisfies IORedisOptions

/**
 * The connections larder uses to reach Redis: one for commands (the caller's `client`, or one
 * larder opens from `url` or `cluster`) and, for the bus, one subscriber of its own (pub/sub
 * takes a connection over). larder closes only what it opened.
 *
 * Commands never wait for a connection: `enableOfflineQueue: false` makes a command sent while
 * Redis is unreachable fail at once (a miss or a counted drop), instead of queueing without
 * bound until it returns; `maxRetriesPerRequest: 0` fails a command whose connection dropped
 * mid-flight instead of resending it after the reconnect (a write resent later could land
 * after a newer one). `commandTimeout` bounds a command that was sent and gets no answer (a
 * paused or sleeping server); the tier's breaker applies the same bound to a caller's client.
 * The client itself reconnects for ever, backing off to 1 s; a connection whose command timed
 * out is dropped and opened again (`keepInStep`).
 *
 * No auto-pipelining: it holds every command back until `setImmediate` to batch it with
 * others (and builds a pipeline object for it), which more than doubled the latency of a
 * lone GET on loopback (W8, bench/README.md). Commands sent in one tick still go out one
 * after another without waiting for replies (a write-back batch, concurrent reads).
 */
export function openClient(options: ResolvedRedisOptions): { client: RedisClient; owned: boolean } {
  if (options.client !== undefined) return { client: options.client, owned: false }
  const connection: IORedisOptions = {
    commandTimeout: options.commandTimeout,
    connectTimeout: Math.max(1000, options.commandTimeout),
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableAutoPipelining: false,
    retryStrategy: (times) => Math.min(50 * times, 1000),
    // TCP keep-alive finds a peer that is gone; a server (or a proxy) that keeps the socket
    // open and answers nothing is found by commandTimeout (then keepInStep) and, on the bus's
    // connection, by its heartbeat (bus/bus.ts).
    keepAlive: 1000,
    lazyConnect: true, // connectNow, once guardStreams is in place
    ...CLOSING,
  }
  if (options.cluster !== undefined) {
    // Validated at open (options.ts): a string here is an ioredis-safe seed.
    const seeds = clusterSeeds(options.cluster, 'redis.cluster') as ClusterSeeds
    const nodes: ClusterNode[] = seeds.nodes.map((node) => (typeof node === 'string' ? node : { host: node.host, port: node.port }))
    const client = new (loaded().Cluster)(nodes, {
      // The seeds' TLS and credentials reach every node (cluster-seeds.ts).
      redisOptions: { ...connection, ...seeds.every },
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
      slotsRefreshTimeout: Math.max(1000, options.commandTimeout),
      lazyConnect: true,
    })
    keepInStep(client)
    client.on('+node', (node: Redis) => guardStreams(node)) // a cluster's nodes connect lazily
    return { client: connectNow(client), owned: true }
  }
  const client = new (loaded().Redis)(options.url ?? 'redis://127.0.0.1:6379', connection)
  keepInStep(client)
  return { client: connectNow(guardStreams(client)), owned: true }
}

/**
 * Keeps a connection larder opened in step with its replies. Redis answers a connection's
 * commands in the order they were sent, and ioredis gives each reply to the oldest command
 * waiting; one that timed out keeps its place, so that a late reply still goes to it. But a
 * command whose bytes never reached Redis (a proxy or a half-dead link that swallowed them and
 * kept the socket open) is never answered, and every reply after it went to the command before
 * its own, for as long as the connection lived: GETs got other keys' values (the checksum
 * refused them: counted corrupt misses), a SET or a lock the reply of another command. A
 * connection whose command timed out cannot be known to be in step, so it is dropped (the
 * commands still waiting on it fail, as on any lost connection) and opened again: the client
 * reconnects by itself; a cluster's node is dropped from its pool and reconnected on the next
 * command for its slots. A caller's `client` is the caller's to configure: left alone.
 */
function keepInStep(client: RedisClient): void {
  type Send = (command: Command, ...rest: unknown[]) => unknown
  const send = client.sendCommand.bind(client) as Send
  const deadlines = new CommandDeadlines((late) => {
    const command = late as unknown as Command
    const connection = client.isCluster ? nodeHolding(client as Cluster, command) : stillWaiting(client as Redis, command)
    ;(late as TimedCommand).reject(new Error(TIMED_OUT))
    if (connection?.status !== 'ready' || dropping.has(connection)) return
    // Once per connection: the commands waiting on it time out together, and each call of
    // disconnect() adds a listener and a timer to its socket until it closes.
    dropping.add(connection)
    connection.once('close', () => dropping.delete(connection))
    // The client's connection says why it is down until it is ready again (SharedParts
    // whyNotConnected): a drop of ours emits no error of its own, and the commands sent while
    // it reconnects would fail with ioredis's bare "Stream isn't writeable".
    if (!client.isCluster) client.emit('error', new Error(TIMED_OUT))
    connection.disconnect(!client.isCluster)
  })
  // ioredis calls it on the command, with the connection's commandTimeout, as it sends it.
  const watch = function (this: TimedCommand, ms: number): void {
    deadlines.watch(this, ms)
  }
  ;(client as { sendCommand: Send }).sendCommand = (command, ...rest) => {
    ;(command as unknown as TimedCommand).setTimeout = watch // read by the connection that sends it
    return send(command, ...rest)
  }
}

/** What of ioredis's Command keepInStep replaces and uses: its own `setTimeout` (whose timer
 *  field `_clearTimers` clears when the command settles: command-deadlines.ts) and `reject`. */
interface TimedCommand extends WatchedCommand {
  setTimeout(ms: number): void
  reject(error: Error): void
}

/**
 * Gives every socket `connection` opens an 'error' listener of its own, and returns it. ioredis
 * listens for a socket's first errors only (two `once` listeners), and a TLS socket refused in
 * its handshake (a certificate the process does not trust) can emit one more (the server's
 * alert after the client's refusal): an 'error' event no one listens for takes the process down
 * (one CI run's child died of `tlsv1 alert decode error`). ioredis still hears the first ones,
 * as before; what follows on a socket it has given up is nothing to act on.
 */
function guardStreams<T extends Redis>(connection: T): T {
  type Connect = (...args: unknown[]) => Promise<NodeJS.EventEmitter>
  const connector = (connection as unknown as { connector: { connect: Connect } }).connector
  const connect = connector.connect.bind(connector)
  connector.connect = async (...args) => {
    const stream = await connect(...args)
    stream.on('error', ignore)
    return stream
  }
  return connection
}

function ignore(): void {}

/** Starts a connection made with `lazyConnect`: made lazily so that guardStreams
 *  is in place before its first socket, then connected at once, as without it. A failure is
 *  heard as its own 'error' events and retried by its retry strategy. */
function connectNow<T extends RedisClient>(connection: T): T {
  connection.connect().catch(ignore)
  return connection
}

/** Connections keepInStep is dropping, until they close. */
const dropping = new WeakSet<Redis>()

/** Whether keepInStep is dropping `client`'s connection: its status still says 'ready' until
 *  the socket closes, though no command can be sent on it any more. */
export function beingDropped(client: RedisClient): boolean {
  return !client.isCluster && dropping.has(client as Redis)
}

/** ioredis's message for a command that got no reply within commandTimeout. */
const TIMED_OUT = 'Command timed out'

/** `connection`, if `command` still waits there for its reply. */
function stillWaiting(connection: Redis, command: Command): Redis | undefined {
  return connection.commandQueue.toArray().some((item) => item.command === command) ? connection : undefined
}

/** The node connection of `cluster` where `command` still waits for its reply. */
function nodeHolding(cluster: Cluster, command: Command): Redis | undefined {
  return cluster.nodes('all').find((node) => stillWaiting(node, command) !== undefined)
}

/** A plain connection to one server (a cluster's node for the bus: node-subscriber.ts). */
export function connectTo(options: IORedisOptions): Redis {
  return connectNow(guardStreams(new (loaded().Redis)({ ...CLOSING, ...options, lazyConnect: true })))
}

/** A second connection like `client`, for pub/sub (a cluster's: see node-subscriber.ts). */
export function duplicateForSubscribing(client: Redis): Redis {
  // The subscriber may queue its SUBSCRIBE until connected: it sends nothing else. The bus
  // subscribes again itself on every 'ready' (and counts it as a reconnect); ioredis's own
  // autoResubscribe sends a SUBSCRIBE whose promise nobody holds, so a connection closing
  // before its reply (Redis killed again, close() while reconnecting) became an unhandled
  // rejection in the host ("Connection is closed.").
  return connectNow(
    guardStreams(
      client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false, lazyConnect: true, ...CLOSING }),
    ),
  )
}

/** Resolves when `client` is ready, or after `ms` (Redis down at open: the cache opens and
 *  its reads fall through, writes drop, until Redis comes). */
export async function readyWithin(client: RedisClient, ms: number): Promise<boolean> {
  if (client.status === 'ready') return true
  return new Promise<boolean>((resolve) => {
    const done = (ready: boolean): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      resolve(ready)
    }
    const onReady = (): void => done(true)
    const timer = setTimeout(() => done(false), ms)
    client.on('ready', onReady)
  })
}

/** Closes a connection larder opened: QUIT if it can be sent, else disconnect. */
export async function closeClient(client: RedisClient): Promise<void> {
  client.removeAllListeners('error')
  client.on('error', () => {}) // a last socket error must not become an unhandled 'error'
  if (client.status === 'ready') {
    await Promise.race([client.quit().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 500).unref())])
  }
  client.disconnect()
}
