import net from 'node:net'
import type { LarderOptions } from '../options.js'
import type { NamespaceToken } from './auth.js'

/**
 * Everything `larder serve` is configured with, resolved (the command line and environment are
 * read in cli/commands/serve.ts). Tests build servers from these directly.
 */
export interface ServeOptions {
  /** The cache directory: every namespace (one per tool and team) lives in it. */
  dir: string
  host: string
  /** 0 asks the system for a free port. */
  port: number
  /** Tokens that may read and write. Empty with `readTokens` empty: no authentication, and
   *  then only a loopback host is allowed (`assertSafeBinding`). */
  tokens: readonly string[]
  /** Tokens that may only read: a write answers 403. */
  readTokens: readonly string[]
  /** Tokens that open only the namespaces they are given for (auth.ts, namespace-access.ts). */
  namespaceTokens: readonly NamespaceToken[]
  /** Each namespace's budget in bytes (larder's `maxSize`, kept per namespace). */
  maxSize: number | undefined
  /** The largest request body accepted; larger ones answer 413, naming the limit. */
  maxBody: number
  /** Read-through origin for `GET /api/cache/:key` misses. */
  origin: string | undefined
  /** The shared tier (`redis://…`) of the cache API's namespace: larder's `redis` option,
   *  passed to `Larder.open` as it is. Credentials in it are never logged. */
  redis: string | undefined
  dashboard: boolean
  /** The cache API's memory tier (the seeds' `CACHE_L1_MAX_ENTRIES`); 0 turns it off. */
  memoryEntries: number
  /** ttl of cache API entries stored without one, in ms (the seeds' `CACHE_DEFAULT_TTL` is in seconds); 0 = never. */
  defaultTtl: number
  /** Requests per client IP per minute; 0 turns the limit off. */
  rateLimit: number
  /** How long a connection may send and take nothing (ms; 0: no limit) before it is closed: a
   *  stalled upload (a client gone quiet mid-body) would otherwise hold its socket, its temp
   *  file and its key (later uploads of the key wait behind it) for good. */
  idleTimeout: number
  /** How long a shutdown waits for requests in flight before it cuts them. */
  shutdownGrace: number
  /** How many team namespaces (`turbo:<team>`, `nx:<team>`) stay open at once (namespaces.ts). */
  maxTeams: number
  /** One line per request on stderr (method, path, status, time; never a header). */
  logRequests: boolean
  /** HTTPS with this certificate (PEM, its chain after it) and key; undefined: plain HTTP.
   *  The server takes another with `LarderServer.setTls` (SIGHUP in cli/commands/serve.ts). */
  tls: TlsFiles | undefined
  /** Options of every namespace from the config file and `LARDER_…` variables (without `dir`
   *  and `namespace`), under the ones this server chooses per protocol (namespaces.ts). A
   *  reload (SIGHUP, the file changed) replaces them. */
  cacheOptions: LarderOptions
}

/** A certificate and its key, as read from their files (PEM). */
export interface TlsFiles {
  cert: Buffer
  key: Buffer
}

export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 4000,
  maxBody: 1024 * 1024 * 1024,
  memoryEntries: 10_000,
  defaultTtl: 0,
  rateLimit: 60_000,
  shutdownGrace: 10_000,
  idleTimeout: 30_000,
  maxTeams: 256,
} as const

/** The largest JSON body the cache API parses, whatever `maxBody` says: a value is held whole
 *  (and `get` refuses values past larder's 64 MiB `maxValueSize` anyway). */
export const MAX_JSON_BODY = 64 * 1024 * 1024

export function serveOptions(partial: Partial<ServeOptions> & { dir: string }): ServeOptions {
  return {
    host: SERVE_DEFAULTS.host,
    port: SERVE_DEFAULTS.port,
    tokens: [],
    readTokens: [],
    namespaceTokens: [],
    maxSize: undefined,
    maxBody: SERVE_DEFAULTS.maxBody,
    origin: undefined,
    redis: undefined,
    dashboard: true,
    memoryEntries: SERVE_DEFAULTS.memoryEntries,
    defaultTtl: SERVE_DEFAULTS.defaultTtl,
    rateLimit: SERVE_DEFAULTS.rateLimit,
    shutdownGrace: SERVE_DEFAULTS.shutdownGrace,
    idleTimeout: SERVE_DEFAULTS.idleTimeout,
    logRequests: false,
    maxTeams: SERVE_DEFAULTS.maxTeams,
    tls: undefined,
    cacheOptions: {},
    ...partial,
  }
}

/** Whether `host` can only be reached from this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  const bare = host.replace(/^\[|\]$/g, '')
  if (net.isIPv4(bare)) return bare.startsWith('127.')
  if (net.isIPv6(bare)) return bare === '::1' || /^::ffff:127\./i.test(bare)
  return false
}

/** `http://HOST:PORT` (`https://` with TLS) as a client would write it (IPv6 in brackets). */
export function serverUrl(host: string, port: number, secure = false): string {
  const bare = host.replace(/^\[|\]$/g, '')
  return `${secure ? 'https' : 'http'}://${net.isIPv6(bare) ? `[${bare}]` : bare}:${port}`
}

/** A server without a token answers anyone who can reach it: only loopback may be that. */
export class UnsafeBindingError extends Error {}

export function assertSafeBinding(options: ServeOptions): void {
  if (options.tokens.length + options.readTokens.length + options.namespaceTokens.length === 0 && !isLoopback(options.host)) {
    throw new UnsafeBindingError(
      `refusing to listen on ${options.host} without a token: anyone who can reach it could read and write the cache. Pass --token (or LARDER_TOKEN), or listen on 127.0.0.1`,
    )
  }
}
