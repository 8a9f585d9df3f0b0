import type { Cluster, ClusterNode, Redis, RedisOptions as IORedisOptions } from 'ioredis'
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
 * The client itself reconnects for ever, backing off to 1 s.
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
    // A paused server answers nothing, and a connection to it looks healthy: pings find out.
    keepAlive: 1000,
  }
  if (options.cluster !== undefined) {
    const nodes: ClusterNode[] = options.cluster.map((node) => (typeof node === 'string' ? node : { host: node.host, port: node.port }))
    const client = new (loaded().Cluster)(nodes, {
      redisOptions: connection,
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
      slotsRefreshTimeout: Math.max(1000, options.commandTimeout),
    })
    return { client, owned: true }
  }
  return { client: new (loaded().Redis)(options.url ?? 'redis://127.0.0.1:6379', connection), owned: true }
}

/** A plain connection to one server (a cluster's node for the bus: node-subscriber.ts). */
export function connectTo(options: IORedisOptions): Redis {
  return new (loaded().Redis)(options)
}

/** A second connection like `client`, for pub/sub (a cluster's: see node-subscriber.ts). */
export function duplicateForSubscribing(client: Redis): Redis {
  // The subscriber may queue its SUBSCRIBE until connected: it sends nothing else. The bus
  // subscribes again itself on every 'ready' (and counts it as a reconnect); ioredis's own
  // autoResubscribe sends a SUBSCRIBE whose promise nobody holds, so a connection closing
  // before its reply (Redis killed again, close() while reconnecting) became an unhandled
  // rejection in the host ("Connection is closed.").
  return client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false })
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
