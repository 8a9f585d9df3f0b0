import { constants as bufferConstants } from 'node:buffer'
import path from 'node:path'
import zlib from 'node:zlib'
import ms from 'ms'
import bytesIec from 'bytes-iec'
import type { Cluster, Redis } from 'ioredis'
import { keyShaped, resolveEncryption, type EncryptionOptions, type Keyring } from './crypto/keys.js'
import { LarderError, shownValue } from './errors.js'
import { clusterSeeds } from './redis/cluster-seeds.js'
import type { Sharing } from './store/owned-tree.js'
import type { ConfigChoice } from './config/layered-options.js'
import type { ProfileName } from './config/profiles.js'

/** A duration: milliseconds, or a string such as `'90s'`, `'15m'`, `'7d'`. */
export type Duration = number | string
/** A size: bytes, or a string such as `'500MB'`, `'1.5GB'`, `'1GiB'` (GB = 10⁹, GiB = 2³⁰). */
export type Size = number | string

export type CompressionName = 'gzip' | 'deflate' | 'brotli' | 'zstd' | 'none'
export type SerializerName = 'json' | 'v8' | 'msgpack' | 'raw'
export type EvictionPolicy = 'lru' | 'lfu' | 'fifo' | 'random'
export type StreamCompression = 'adaptive' | 'full'
export type { Sharing }

/** A user-supplied serializer. It must round-trip every value it accepts. */
export interface CustomSerializer {
  serialize(value: unknown): Uint8Array | string
  deserialize(bytes: Buffer): unknown
}

export interface MemoryTierOptions {
  /** Most entries the memory tier holds. Default 10,000 (when neither bound is given). */
  maxEntries?: number
  /** Most bytes the memory tier holds, each entry counted as its serialized size, its key's
   *  length and 150 bytes for the objects holding it. Default: unbounded by size. */
  maxSize?: Size
  /**
   * How long a value may be served from memory before the file tier is asked again.
   * Default 0: only the entry's own expiry bounds it. Another process's `set`, `delete`,
   * `clear` or tag invalidation on the same directory reaches this tier through the
   * namespace's change log and tags directory within about 5 ms (README, Options, `memory`),
   * so this ttl is not needed for that; it bounds a value's time here on top of it (and
   * across NFS clients, which the change log does not reach).
   */
  ttl?: Duration
}

/** Background maintenance: budgets kept, expired entries and stray temp files reclaimed.
 *  Scans and evictions run in a piscina worker pool, never on the main thread. */
export interface MaintenanceOptions {
  /** Prune every this often (a duration; 0 = never). Default `'1h'`. The timer never keeps
   *  the process alive. A write that pushes the running totals over a budget also starts
   *  a prune, whatever this says. */
  interval?: Duration
  /** Worker threads for scans and evictions. Default 1: maintenance should cost the host
   *  at most one core. Idle workers exit after a second. */
  workers?: number
  /** An over-budget cache is evicted down to this share of each budget (0.5–1). Default 0.9,
   *  as ccache does: evicting to exactly the budget would prune again on the next write. */
  lowWater?: number
  /** A disk hit refreshes an entry's mtime (its last use, for LRU and `maxAge`) at once when
   *  it is older than this; a hit on a fresher entry is remembered and written, merged with the
   *  others, once per this period, before this process prunes, and at close and exit (see
   *  maintenance/last-use.ts). Default `'1m'`: a hot key costs one `utimes` a minute, not one
   *  per get; no hit is lost, and other processes' prunes see it within a minute. atime is not
   *  used: it is often off (noatime). */
  touchAfter?: Duration
  /** For the `'lfu'` policy: a hit counts half as much after this long, a quarter after twice
   *  as long, and so on, so old popularity fades with time (not with how often prunes run).
   *  Default `'1h'`: a key read 64 times an hour ago weighs as much as one read 32 times now,
   *  and is forgotten (weighs less than 1/100 of a hit) after about 13 hours without reads. */
  lfuHalfLife?: Duration
  /** Temp files (and `clear()` trash) older than this are strays of a dead writer and are
   *  removed. Default `'15m'`; at least `'1s'`. A live stream refreshes its temp file's mtime
   *  through its open handle every 200 ms however slow its source, so only a writer whose
   *  process died (or whose event loop stalls for longer than this) loses its temp file. */
  tempMaxAge?: Duration
}

/** Thresholds for the opossum circuit breaker that guards every disk operation. */
export interface BreakerOptions {
  /** Failure percentage in the rolling window that opens the breaker. Default 50. */
  errorThresholdPercentage?: number
  /** Fewest operations in the window before the breaker may open, so one early failure
   *  does not stop the cache. Default 5. */
  volumeThreshold?: number
  /** How long the breaker stays open before one trial operation may close it. Default 10 s. */
  resetTimeout?: Duration
  /** Length of the rolling statistics window. Default 10 s. */
  rollingCountTimeout?: Duration
  /** Fail a disk read that takes longer than this (a miss, counted toward opening the
   *  breaker); 0 (default) disables it, since a timer per operation costs more than most reads
   *  on a healthy disk. Writes, streams and removals are never timed out: one answered while it
   *  went on would land after its caller heard it failed (resilience/disk-breaker.ts). */
  timeout?: Duration
}

/** Where each write goes and when `set()` resolves (see README, Shared tier). */
export type WriteStrategy = 'write-through' | 'write-back' | 'cache-aside'

/** The shared tier: a Redis server or cluster every instance of the cache reaches. */
export interface RedisOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`). Default `redis://127.0.0.1:6379`
   *  when neither `client` nor `cluster` is given. */
  url?: string
  /** Your own ioredis `Redis` or `Cluster`. larder uses it and never closes it (it opens one
   *  duplicate connection of it for the bus, and closes that). */
  client?: Redis | Cluster
  /** Seed nodes of a Redis Cluster: larder opens an ioredis `Cluster` on them. `'host:port'`,
   *  `{ host, port }`, or `redis[s]://[user:password@]host:port`, whose scheme (`rediss`: TLS)
   *  and credentials apply to every node (seeds that disagree on them are refused). */
  cluster?: Array<string | { host: string; port: number }>
  /** Prefix of every Redis key and channel larder uses (not empty: every name under it is
   *  larder's, and `clear()` removes them). Default `'larder:'`. Keys are
   *  `<prefix><ns>:<key>`, ns being `default` or `ns-<xxhash64(namespace)>`. */
  prefix?: string
  /** Entries whose stored bytes are larger stay in the local tiers only. Default `'1MB'`:
   *  a large value in Redis blocks its single thread while it is copied. Streams always stay
   *  local. */
  maxValueSize?: Size
  /** The longest an entry stays in Redis (an entry without expiry included). Default: its own
   *  expiry (plus its grace). */
  ttl?: Duration
  /** No Redis command waits longer than this: it fails (a miss, or a counted drop) and counts
   *  toward the Redis breaker. Default `'500ms'`. */
  commandTimeout?: Duration
  /** The Redis tier's own breaker. Defaults as for the disk's, but `resetTimeout` `'5s'`. */
  breaker?: BreakerOptions
}

export interface WriteBackOptions {
  /** Most writes waiting for Redis; past it the oldest is dropped (and counted). Default 10,000. */
  maxQueue?: number
  /** Most bytes of entries waiting for Redis; past it the oldest are dropped (and counted); the
   *  newest write is always kept. Default `'64MiB'`. */
  maxBytes?: Size
  /** The longest a write waits before its batch is sent. Default `'50ms'`. */
  maxDelay?: Duration
}

export interface LarderOptions {
  /** Presets for an environment, overridden by every other source (README, Configuration,
   *  Profiles): `'development'` (the defaults), `'production'` (durable writes, memory tier,
   *  maintenance), `'test'` (a fresh temp directory removed at close, no maintenance timer, a
   *  memory tier without a ttl of its own). With `config`, `LARDER_PROFILE` (then `NODE_ENV`
   *  when it is one of the three) picks it if the call does not. Default: none. */
  profile?: ProfileName
  /** Read options from the environment (`LARDER_…` variables) and a config file
   *  (`larder.config.json` or `.mjs`, found from the working directory up) too: `true`, or
   *  `{ env?, file?, cwd? }` to choose. Precedence: the call's options > environment > file >
   *  profile > defaults. Default false: a library reads only what its caller passes. */
  config?: boolean | ConfigChoice
  /** The cache directory; created if missing. Default `node_modules/.cache/larder` under the
   *  current working directory (the convention build tools already git-ignore). `false`: no
   *  file tier at all (memory, and Redis if set: the memory tier is then on by default). */
  dir?: string | false
  /** Separates caches sharing one directory; entries of one namespace never see another's.
   *  Default `''`. At most 256 bytes of UTF-8, well-formed (no lone surrogate), without NUL. */
  namespace?: string
  /** TTL for entries set without one. Default 0 (no expiry). */
  defaultTtl?: Duration
  /** Codec for stored payloads. Default `'deflate'` (raw DEFLATE: our own checksum makes
   *  zlib's adler32 and gzip's crc32 redundant). `'zstd'` needs a Node that has it. */
  compression?: CompressionName
  /** Codec level. Default 1: for a cache, write speed matters more than the last few
   *  percent of ratio (zlib level 6 is ~3× slower for ~10 % smaller output on JSON). */
  compressionLevel?: number
  /** Payloads smaller than this are stored uncompressed. Default 4096: a file smaller
   *  than one file-system block takes one block however well it compresses, so compressing
   *  it only costs CPU. */
  compressThreshold?: Size
  /** How `setStream` spends CPU on compression. `'adaptive'` (default): a block arriving while
   *  every compressor is busy is stored raw, so compression never slows a stream below the
   *  speed of its source and the disk; a source slower than zlib is compressed whole. `'full'`:
   *  every compressible block is compressed, at zlib's speed (about 120 MB/s per core at
   *  level 1 on mixed data); the smallest files, the same on every run. */
  streamCompression?: StreamCompression
  /** A value of at least this size (serialized) is written by `set` uncompressed, and a
   *  maintenance worker compresses it moments later (swapping the compressed file in only if
   *  the entry is still the one written): the set does not wait for the codec, and the disk
   *  ends up as compressed as before. Default `'32KiB'` (32,768 bytes); `true`: that default; `false` (or
   *  0, or the words `'off'`, `'no'`, `'false'`, as from `LARDER_COMPRESS_LATER`): every value
   *  is compressed before its set resolves. Not with `durable` or `encryption` (compressed before as before),
   *  nor for `setStream` (its frames are compressed as they come) or a value Redis also holds. */
  compressLater?: Size | boolean
  /**
   * The largest value `get` returns (and `getOrSet`, `getMany`, `increment` read) and `set`
   * stores, in bytes of the serialized value. Default `'64MiB'`. A value read with `get` is
   * held whole, and more than once while it is decoded (the file's bytes, the decompressed
   * bytes, the object they become), on the main thread: anything bigger belongs in
   * `setStream`/`getStream`, which move 1 MiB at a time. It is also the most that one `get`
   * of a forged or damaged entry can make larder allocate, since a length an entry claims is
   * checked against it before anything is allocated. Past it, `get` rejects with
   * `ERR_TOO_LARGE` (naming `getStream`, which serves the entry) and `set` stores nothing.
   */
  maxValueSize?: Size
  /** How values become bytes. Default `'json'` (Buffer and Uint8Array values are stored as
   *  raw bytes and come back as Buffers). */
  serializer?: SerializerName | CustomSerializer
  /** An in-process LRU tier in front of the files: `false` (default), `true`, or bounds.
   *  Write-through; a file hit is promoted into it. */
  memory?: boolean | MemoryTierOptions
  /** On a failing disk, reads miss and writes are dropped (counted, `error` event) instead of
   *  rejecting. Default true. With false, such operations reject with `ERR_UNAVAILABLE`. */
  failOpen?: boolean
  /** Circuit-breaker thresholds. */
  breaker?: BreakerOptions
  /** fsync each entry before its rename. Default false: a torn file after a power cut is
   *  caught by the checksum and read as a miss, so fsync would only buy durability a cache
   *  does not need, at ~10× the write latency. */
  durable?: boolean
  /** Budget in bytes on disk; maintenance evicts beyond it. Default: none. */
  maxSize?: Size
  /** Budget in entries; maintenance evicts beyond it. Default: none. */
  maxEntries?: number
  /** Which entries maintenance evicts first once a budget is exceeded. Default `'lru'`:
   *  least recently used (mtime, refreshed on hits). `'lfu'`: fewest hits (counts shared by
   *  processes through hit logs, each weighed by its age: halved every
   *  `maintenance.lfuHalfLife`, so old popularity fades with time). `'fifo'`: oldest
   *  created. `'random'`: uniformly at random among the live entries (no bookkeeping of use;
   *  the memory tier, when full, also drops a random entry instead of its least recently used).
   *  Expired and tag-invalidated entries always go first. */
  evictionPolicy?: EvictionPolicy
  /** Open an existing cache to read it, writing nothing at all: no directory or `CACHEDIR.TAG`
   *  is created, no bookkeeping is written (running totals, activity records, LFU hit counts,
   *  the budget record, the mtime a hit refreshes), and nothing is removed (an expired or
   *  damaged entry a read finds is a miss, left for a writer or a prune). A directory that
   *  does not exist, or holds no cache, reads as empty. `set`, `setMany`, `setStream`,
   *  `getOrSet`, `increment`, `decrement`, `delete`, `deleteMany`, `clear`, `invalidateTags`,
   *  `prune` (but for a dry run, which takes no lock then) and `verify` with `repair` reject
   *  with `ERR_READ_ONLY`. Default false. The `larder` CLI's stats, ls, get, verify and
   *  prune --dry-run open caches this way. */
  readOnly?: boolean
  /** Automatic maintenance: `false` turns off the interval and the over-budget trigger
   *  (`prune()` and `verify()` still work); `true` is the default, `{}` (the defaults below),
   *  as `LARDER_MAINTENANCE=true` is. */
  maintenance?: boolean | MaintenanceOptions
  /**
   * Who besides this user may use the cache directory. Default `false`: the tree is created
   * owner-only (directories 0700, files 0600), and `open()` refuses (`ERR_UNSAFE_DIR`) a
   * directory owned by another user (root excepted) or writable by group or others without
   * the sticky bit, since whoever can write the directory can plant entries this process
   * would serve (a checksum is not a signature). `'group'`: directories 2770 (setgid, so
   * files keep the directory's group) and files 0660, and a directory owned by another user
   * or writable by its group is accepted (one writable by others still is not). `'everyone'`:
   * directories 0777 and files 0666, nothing checked. Choose sharing only for a directory
   * whose every writer you trust (a CI cache volume of one project, a build farm's group).
   */
  shared?: Sharing
  /** The shared tier below the files (see `RedisOptions`): a URL, or options. Default: none. */
  redis?: string | RedisOptions
  /** Default `'write-through'`. `'write-back'` and `'cache-aside'` need `redis`. */
  writeStrategy?: WriteStrategy
  /** The write-back queue's bounds (`writeStrategy: 'write-back'`). */
  writeBack?: WriteBackOptions
  /** Redis pub/sub between the instances sharing `redis` (each drops its local copies of what
   *  another changed). Default true whenever `redis` is set. */
  bus?: boolean
  /** Watching the process's memory (see `MemoryPressureOptions`): `false`, `true` (`{}`: the
   *  default thresholds), or thresholds. Default on (`{}`) when the memory tier is on, off
   *  otherwise. Without the memory tier and without `redis` (whose write-back queue it also
   *  bounds) there is nothing to shed: off whatever is given (thresholds still checked). */
  memoryPressure?: boolean | MemoryPressureOptions
  /**
   * Encryption at rest (AES-256-GCM) of every entry this cache writes, in files and in Redis:
   * `{ keys: { id: key }, activeKey: id }`, each key 32 bytes (a Uint8Array, 64 hex digits, or
   * base64), ids of 1-64 characters `A-Z a-z 0-9 . _ -` not shaped like a key (64 hex digits,
   * or 43 characters without a `.`: refused, in case an id and its key were swapped). New
   * entries are sealed under `activeKey` (which may be left out when there is one key);
   * entries sealed under any listed key are read (rotation, `larder rekey`). An
   * entry sealed under a key not listed is a miss that stays on disk; one that fails
   * authentication is corrupt and removed (README "Encryption at rest"). Default: none.
   * `cache.options.encryption` shows the key ids only.
   */
  encryption?: EncryptionOptions
}

export interface ResolvedRedisOptions {
  url: string | undefined
  client: Redis | Cluster | undefined
  cluster: Array<string | { host: string; port: number }> | undefined
  prefix: string
  maxValueSize: number
  ttl: number
  commandTimeout: number
  breaker: ResolvedBreakerOptions
}

/** `maintenance` as resolved: every default filled in, durations in ms. */
export interface ResolvedMaintenanceOptions {
  auto: boolean
  interval: number
  workers: number
  lowWater: number
  touchAfter: number
  lfuHalfLife: number
  tempMaxAge: number
}

/** `breaker` as resolved: every default filled in, durations in ms. */
export interface ResolvedBreakerOptions {
  errorThresholdPercentage: number
  volumeThreshold: number
  resetTimeout: number
  rollingCountTimeout: number
  timeout: number
}

/** The options a cache runs with (`cache.options`): every default filled in, sizes in bytes,
 *  durations in ms. See `LarderOptions` for what each means. */
export interface ResolvedOptions {
  dir: string | false
  shared: Sharing
  namespace: string
  defaultTtl: number
  compression: CompressionName
  compressionLevel: number
  compressThreshold: number
  streamCompression: StreamCompression
  compressLater: number | false
  serializer: SerializerName | CustomSerializer
  maxValueSize: number
  memory: false | { maxEntries: number | undefined; maxSize: number | undefined; ttl: number }
  failOpen: boolean
  breaker: ResolvedBreakerOptions
  durable: boolean
  maxSize: number | undefined
  maxEntries: number | undefined
  evictionPolicy: EvictionPolicy
  readOnly: boolean
  maintenance: ResolvedMaintenanceOptions
  redis: ResolvedRedisOptions | undefined
  writeStrategy: WriteStrategy
  writeBack: { maxQueue: number; maxBytes: number; maxDelay: number }
  bus: boolean
  memoryPressure: ResolvedMemoryPressure | false
  /** The keys (ids only when printed or serialized), or undefined: entries are not encrypted. */
  encryption: Keyring | undefined
}

/** Longest key, in UTF-8 bytes. Keys are stored inside entries, not in paths, so this
 *  only bounds the header; 8 KiB fits any sensible composite key. */
export const MAX_KEY_BYTES = 8 * 1024
/** Longest tag and most tags per entry: tags live in every entry's header. */
export const MAX_TAG_BYTES = 1024
export const MAX_TAGS = 64
/** Longest namespace, in UTF-8 bytes (it is hashed into the directory name). */
export const MAX_NAMESPACE_BYTES = 256
/** See `LarderOptions.maxValueSize`. */
export const DEFAULT_MAX_VALUE_SIZE = 64 * 1024 * 1024

const OPTION_NAMES = new Set<string>([
  'dir',
  'namespace',
  'defaultTtl',
  'compression',
  'compressionLevel',
  'compressThreshold',
  'streamCompression',
  'compressLater',
  'serializer',
  'maxValueSize',
  'memory',
  'failOpen',
  'breaker',
  'durable',
  'maxSize',
  'maxEntries',
  'evictionPolicy',
  'readOnly',
  'maintenance',
  'shared',
  'redis',
  'writeStrategy',
  'writeBack',
  'bus',
  'memoryPressure',
  'encryption',
])
const REDIS_NAMES = new Set(['url', 'client', 'cluster', 'prefix', 'maxValueSize', 'ttl', 'commandTimeout', 'breaker'])
const WRITE_BACK_NAMES = new Set(['maxQueue', 'maxBytes', 'maxDelay'])
const STRATEGIES: readonly WriteStrategy[] = ['write-through', 'write-back', 'cache-aside']
const MAINTENANCE_NAMES = new Set(['interval', 'workers', 'lowWater', 'touchAfter', 'lfuHalfLife', 'tempMaxAge'])
const BREAKER_NAMES = new Set(['errorThresholdPercentage', 'volumeThreshold', 'resetTimeout', 'rollingCountTimeout', 'timeout'])
const MEMORY_NAMES = new Set(['maxEntries', 'maxSize', 'ttl'])
const COMPRESSIONS: readonly CompressionName[] = ['gzip', 'deflate', 'brotli', 'zstd', 'none']
const SERIALIZERS: readonly SerializerName[] = ['json', 'v8', 'msgpack', 'raw']
const POLICIES: readonly EvictionPolicy[] = ['lru', 'lfu', 'fifo', 'random']
const STREAM_COMPRESSIONS: readonly StreamCompression[] = ['adaptive', 'full']
const SHARINGS: readonly Sharing[] = [false, 'group', 'everyone']
/** The smallest `maintenance.tempMaxAge`: five heartbeats of a live stream (stream-writer.ts). */
export const MIN_TEMP_MAX_AGE = 1000

/** Whether `value` names an eviction policy (a recorded budget read back, say). */
/** `text` with the user:password of any URL in it hidden: an error message is no place for a
 *  Redis password. Whatever stands between a scheme and the last `@` of its line goes, so a
 *  mistyped URL (`redis:/:pw@host`, `redis:pw@host`, a password with an `@` or a space in it)
 *  hides it too; hiding more than the credentials costs a message some detail, never a secret. */
export function withoutCredentials(text: string): string {
  return (
    text
      .replace(/\b([a-z][a-z0-9+.-]*:\/*)[^\n]*@/gi, '$1(credentials hidden)@')
      // ioredis also takes them from the query string (`?password=…`, merged into its options).
      .replace(/([?&;](?:password|username|user|pass)=)[^&#\s"]*/gi, '$1(hidden)')
  )
}

/** A value given as a URL, for an error message: its credentials hidden, and anything before an
 *  `@` even without a scheme (`:pw@host`); a value with no scheme at all is not shown (a
 *  password pasted into the wrong variable is one). */
export function shownUrl(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(value)) return '(a value that is not a URL, not shown)'
  return withoutCredentials(value)
}

export function isEvictionPolicy(value: unknown): value is EvictionPolicy {
  return POLICIES.includes(value as EvictionPolicy)
}

export function zstdAvailable(): boolean {
  return typeof (zlib as { zstdCompressSync?: unknown }).zstdCompressSync === 'function'
}

function invalid(field: string, message: string): LarderError {
  return new LarderError('ERR_INVALID_OPTION', `Invalid option "${field}": ${message}`, { field })
}

/**
 * Parses a duration to milliseconds. 0 means "never expires"; negative, NaN, infinite or
 * unparseable input is an error. `code` lets the same parser serve options and `ttl` args.
 * Whole milliseconds, rounded to the nearest, except that a positive duration is at least
 * 1 ms: 0 means "never" (or "off"), so rounding 0.4 down to it would turn a short ttl into
 * no expiry at all.
 */
export function parseDuration(
  value: unknown,
  field: string,
  code: 'ERR_INVALID_OPTION' | 'ERR_INVALID_TTL' = 'ERR_INVALID_OPTION',
): number {
  let milliseconds: number | undefined
  if (typeof value === 'number') milliseconds = value
  else if (typeof value === 'string' && value.trim() !== '' && value.length <= 100) {
    const trimmed = value.trim()
    // ms reads its units in any case, so `1M` is a minute; whoever writes a capital M most
    // likely means a month (a unit ms does not have), and would get a ttl 43,200 times too
    // short. Refused, saying what to write; every other unit reads the same in either case.
    if (/^-?\d*\.?\d+ *M$/.test(trimmed))
      throw new LarderError(
        code,
        `Invalid ${field}: "${trimmed}" is ambiguous (a month? it would read as a minute): write "${trimmed.slice(0, -1)}m" for minutes, or days ("30d") for a month`,
        { field },
      )
    milliseconds = /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : ms(trimmed as ms.StringValue)
  }
  if (milliseconds === undefined || !Number.isFinite(milliseconds) || milliseconds < 0) {
    const shown = shownValue(value, 'quoted')
    throw new LarderError(
      code,
      `Invalid ${field}: ${shown} is not a duration (a non-negative number of milliseconds, or a string such as "90s", "15m", "7d")`,
      { field },
    )
  }
  return milliseconds > 0 && milliseconds < 1 ? 1 : Math.round(milliseconds)
}

/** Parses a size to bytes (`'500MB'`, `'1.5GB'`, `'1GiB'`, or a number). */
export function parseSize(value: unknown, field: string, code: 'ERR_INVALID_OPTION' | 'ERR_INVALID_VALUE' = 'ERR_INVALID_OPTION'): number {
  let size: number | null = null
  if (typeof value === 'number') size = value
  else if (typeof value === 'string' && value.trim() !== '' && value.length <= 100) {
    const trimmed = value.trim()
    size = /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : bytesIec.parse(trimmed)
  }
  if (size === null || !Number.isFinite(size) || size < 0) {
    const shown = shownValue(value, 'quoted')
    throw new LarderError(code, `Invalid ${field}: ${shown} is not a size (bytes, or a string such as "500MB", "1.5GB", "1GiB")`, { field })
  }
  return Math.floor(size)
}

/** The most entries a memory tier may be given: lru-cache allocates its index for `max`
 *  entries when it is made (~24 bytes each: 1e8 took 2.2 GiB of an empty cache's memory, and
 *  1e12 threw a RangeError from inside it). */
export const MAX_MEMORY_ENTRIES = 10_000_000

function positiveInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw invalid(field, `expected a positive integer, got ${shownValue(value)}`)
  }
  return value
}

function rejectUnknown(input: object, known: Set<string>, prefix: string): void {
  for (const name of Object.keys(input)) {
    if (known.has(name)) continue
    // An encryption key pasted where an option's name belongs is not shown, in the message or
    // in the field (logged too): see crypto/keys.ts.
    if (keyShaped(name)) throw invalid(prefix === '' ? 'options' : prefix.slice(0, -1), 'holds an unknown option shaped like a key')
    throw invalid(prefix + name, `unknown option (known: ${[...known].join(', ')})`)
  }
  // null (a config file's way of writing "nothing") meant the default for some options, "off"
  // for `memory`, and was refused by others: it is refused for every one, naming it, so no
  // source's null decides anything silently. Leaving an option out gives its default.
  for (const [name, value] of Object.entries(input))
    if (value === null) throw invalid(prefix + name, 'expected a value, got null (leave the option out for its default)')
}

export function defaultCacheDir(): string {
  return path.join(process.cwd(), 'node_modules', '.cache', 'larder')
}

/** Validates `Larder.open` options, fills defaults, and names the field of any mistake. */
export function resolveOptions(input: unknown): ResolvedOptions {
  if (input === undefined) input = {}
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalid('options', 'expected an object')
  }
  const o = input as LarderOptions
  rejectUnknown(o, OPTION_NAMES, '')

  if (o.dir !== undefined && o.dir !== false && (typeof o.dir !== 'string' || o.dir === '' || o.dir.includes('\0'))) {
    throw invalid('dir', 'expected a non-empty path string, or false (no file tier)')
  }
  const dir = o.dir === false ? false : path.resolve(o.dir ?? defaultCacheDir())

  const namespace = o.namespace ?? ''
  if (typeof namespace !== 'string' || namespace.includes('\0') || Buffer.byteLength(namespace) > MAX_NAMESPACE_BYTES) {
    throw invalid('namespace', `expected a string of at most ${MAX_NAMESPACE_BYTES} bytes of UTF-8 without NUL`)
  }
  // A lone surrogate becomes U+FFFD in UTF-8, so 'n\uD800' and 'n\uFFFD' would hash to one
  // directory: rejected, as in keys.
  if (!namespace.isWellFormed()) throw invalid('namespace', 'not well-formed Unicode (lone surrogate)')

  const compression = o.compression ?? 'deflate'
  if (!COMPRESSIONS.includes(compression)) {
    throw invalid('compression', `expected one of ${COMPRESSIONS.join(', ')}, got ${shownValue(compression, 'json')}`)
  }
  if (compression === 'zstd' && !zstdAvailable()) {
    throw invalid('compression', `"zstd" needs a Node.js with zlib zstd support (22.15 or later); this is ${process.version}`)
  }
  const compressionLevel = o.compressionLevel ?? defaultLevel(compression)
  const [minLevel, maxLevel] = levelRange(compression)
  if (
    typeof compressionLevel !== 'number' ||
    !Number.isInteger(compressionLevel) ||
    compressionLevel < minLevel ||
    compressionLevel > maxLevel
  ) {
    throw invalid(
      'compressionLevel',
      `expected an integer from ${minLevel} to ${maxLevel} for ${compression}, got ${shownValue(compressionLevel)}`,
    )
  }

  const serializer = o.serializer ?? 'json'
  if (typeof serializer === 'string') {
    if (!SERIALIZERS.includes(serializer)) {
      throw invalid(
        'serializer',
        `expected one of ${SERIALIZERS.join(', ')} or { serialize, deserialize }, got ${shownValue(serializer, 'json')}`,
      )
    }
  } else if (
    serializer === null ||
    typeof serializer !== 'object' ||
    typeof serializer.serialize !== 'function' ||
    typeof serializer.deserialize !== 'function'
  ) {
    throw invalid('serializer', 'a custom serializer needs serialize(value) and deserialize(bytes) functions')
  }

  let memory: ResolvedOptions['memory'] = false
  const memoryInput = o.memory ?? dir === false
  if (memoryInput === true || (typeof memoryInput === 'object' && memoryInput !== null && !Array.isArray(memoryInput))) {
    const m: MemoryTierOptions = memoryInput === true ? {} : memoryInput
    rejectUnknown(m, MEMORY_NAMES, 'memory.')
    const maxEntries = m.maxEntries === undefined ? undefined : positiveInteger(m.maxEntries, 'memory.maxEntries')
    if (maxEntries !== undefined && maxEntries > MAX_MEMORY_ENTRIES)
      throw invalid(
        'memory.maxEntries',
        `at most ${MAX_MEMORY_ENTRIES.toLocaleString('en-US')} (the memory tier's index is made for this many at once, ~24 bytes each), got ${maxEntries}`,
      )
    const maxSize = m.maxSize === undefined ? undefined : parseSize(m.maxSize, 'memory.maxSize')
    if (maxSize === 0) throw invalid('memory.maxSize', 'must be greater than 0')
    memory = {
      maxEntries: maxEntries ?? (maxSize === undefined ? 10_000 : undefined),
      maxSize,
      ttl: m.ttl === undefined ? 0 : parseDuration(m.ttl, 'memory.ttl'),
    }
  } else if (memoryInput !== false) {
    throw invalid('memory', 'expected false, true or { maxEntries?, maxSize?, ttl? }')
  }

  const breaker = resolveBreaker(o.breaker, 'breaker.', 10_000)

  const evictionPolicy = o.evictionPolicy ?? 'lru'
  if (!POLICIES.includes(evictionPolicy)) {
    throw invalid('evictionPolicy', `expected one of ${POLICIES.join(', ')}, got ${shownValue(evictionPolicy, 'json')}`)
  }
  for (const flag of ['failOpen', 'durable', 'readOnly', 'bus'] as const) {
    if (o[flag] !== undefined && typeof o[flag] !== 'boolean') throw invalid(flag, `expected a boolean, got ${shownValue(o[flag])}`)
  }
  const streamCompression = o.streamCompression ?? 'adaptive'
  if (!STREAM_COMPRESSIONS.includes(streamCompression)) {
    throw invalid('streamCompression', `expected one of ${STREAM_COMPRESSIONS.join(', ')}, got ${shownValue(streamCompression, 'json')}`)
  }
  const maxSize = o.maxSize === undefined ? undefined : parseSize(o.maxSize, 'maxSize')
  if (maxSize === 0) throw invalid('maxSize', 'must be greater than 0 (omit it for no budget)')
  const maxValueSize = parseSize(o.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE, 'maxValueSize')
  if (maxValueSize === 0 || maxValueSize > bufferConstants.MAX_LENGTH) {
    throw invalid(
      'maxValueSize',
      `expected a size from 1 byte to ${bufferConstants.MAX_LENGTH} bytes (the largest Buffer), got ${shownValue(o.maxValueSize)}`,
    )
  }
  const shared = o.shared ?? false
  if (!SHARINGS.includes(shared)) {
    throw invalid('shared', `expected false, 'group' or 'everyone', got ${shownValue(shared, 'quoted')}`)
  }

  return {
    dir,
    shared,
    namespace,
    defaultTtl: parseDuration(o.defaultTtl ?? 0, 'defaultTtl'),
    compression,
    compressionLevel,
    compressThreshold: parseSize(o.compressThreshold ?? 4096, 'compressThreshold'),
    streamCompression,
    compressLater: resolveCompressLater(o.compressLater),
    serializer,
    maxValueSize,
    memory,
    failOpen: o.failOpen ?? true,
    breaker,
    durable: o.durable ?? false,
    maxSize,
    maxEntries: o.maxEntries === undefined ? undefined : positiveInteger(o.maxEntries, 'maxEntries'),
    evictionPolicy,
    readOnly: o.readOnly ?? false,
    // A read-only instance never prunes by itself (it removes nothing).
    maintenance: o.readOnly === true ? { ...resolveMaintenance(o.maintenance), auto: false } : resolveMaintenance(o.maintenance),
    ...resolveShared(o, dir, memory),
    memoryPressure: resolveMemoryPressure(o.memoryPressure, memory !== false, o.redis !== undefined),
    encryption: resolveEncryption(o.encryption),
  }
}

/** `compressLater`'s switch words, read alike from a variable, a file and code (in any case). */
const ON_WORDS = new Set(['true', 'on', 'yes'])
const OFF_WORDS = new Set(['false', 'off', 'no'])
const DEFAULT_COMPRESS_LATER = 32 * 1024

/**
 * `compressLater`: a size, or off. 0 is off, as for the other options where 0 would mean
 * "always" or "never" (`maintenance.interval`, `breaker.timeout`): a threshold of 0 bytes sent
 * even values too small to compress (`compressThreshold`) to the worker, and an operator writing
 * `LARDER_COMPRESS_LATER=0` means off, as `0` is for every boolean variable. `true` (or `on`,
 * `yes`) is the default size, as `memory: true` is the tier's defaults.
 */
function resolveCompressLater(value: unknown): number | false {
  const word = typeof value === 'string' ? value.trim().toLowerCase() : undefined
  if (value === undefined || value === true || (word !== undefined && ON_WORDS.has(word))) return DEFAULT_COMPRESS_LATER
  if (value === false || (word !== undefined && OFF_WORDS.has(word))) return false
  let size: number
  try {
    size = parseSize(value, 'compressLater')
  } catch {
    throw invalid(
      'compressLater',
      `expected a size ("64KB", or bytes), or false (off; also 0, "off", "no"), got ${shownValue(value, 'quoted')}`,
    )
  }
  return size === 0 ? false : size
}

/** The breaker thresholds at `prefix` (`breaker.` or `redis.breaker.`). */
function resolveBreaker(input: unknown, prefix: string, resetTimeout: number, timeout = 0): ResolvedBreakerOptions {
  const b = (input === undefined ? {} : input) as BreakerOptions
  const field = prefix.slice(0, -1)
  if (b === null || typeof b !== 'object' || Array.isArray(b)) throw invalid(field, 'expected an object of thresholds')
  rejectUnknown(b, BREAKER_NAMES, prefix)
  const errorThresholdPercentage = b.errorThresholdPercentage ?? 50
  if (typeof errorThresholdPercentage !== 'number' || !(errorThresholdPercentage > 0 && errorThresholdPercentage <= 100)) {
    throw invalid(`${prefix}errorThresholdPercentage`, `expected a number in (0, 100], got ${shownValue(errorThresholdPercentage)}`)
  }
  const volumeThreshold = b.volumeThreshold ?? 5
  if (typeof volumeThreshold !== 'number' || !Number.isInteger(volumeThreshold) || volumeThreshold < 0) {
    throw invalid(`${prefix}volumeThreshold`, `expected a non-negative integer, got ${shownValue(volumeThreshold)}`)
  }
  const breaker: ResolvedBreakerOptions = {
    errorThresholdPercentage,
    volumeThreshold,
    resetTimeout: timerDuration(b.resetTimeout ?? resetTimeout, `${prefix}resetTimeout`),
    rollingCountTimeout: timerDuration(b.rollingCountTimeout ?? 10_000, `${prefix}rollingCountTimeout`),
    timeout: timerDuration(b.timeout ?? timeout, `${prefix}timeout`),
  }
  if (breaker.resetTimeout === 0) throw invalid(`${prefix}resetTimeout`, 'must be greater than 0')
  if (breaker.rollingCountTimeout === 0) throw invalid(`${prefix}rollingCountTimeout`, 'must be greater than 0')
  return breaker
}

/** `redis`, `writeStrategy`, `writeBack` and `bus`, checked against each other and `dir`. */
function resolveShared(
  o: LarderOptions,
  dir: string | false,
  memory: ResolvedOptions['memory'],
): Pick<ResolvedOptions, 'redis' | 'writeStrategy' | 'writeBack' | 'bus'> {
  const redis = resolveRedis(o.redis)
  const writeStrategy = o.writeStrategy ?? 'write-through'
  if (!STRATEGIES.includes(writeStrategy)) {
    throw invalid('writeStrategy', `expected one of ${STRATEGIES.join(', ')}, got ${shownValue(writeStrategy, 'json')}`)
  }
  if (writeStrategy !== 'write-through' && redis === undefined)
    throw invalid('writeStrategy', `"${writeStrategy}" needs a shared tier: set the redis option`)
  if (dir === false && redis === undefined && memory === false)
    throw invalid('dir', 'with dir: false, a cache needs the memory tier or redis to keep anything')
  if (dir === false && o.readOnly === true) throw invalid('readOnly', 'readOnly needs a dir to read')
  const w = o.writeBack ?? {}
  if (w === null || typeof w !== 'object' || Array.isArray(w)) throw invalid('writeBack', 'expected { maxQueue?, maxBytes?, maxDelay? }')
  rejectUnknown(w, WRITE_BACK_NAMES, 'writeBack.')
  const writeBack = {
    maxQueue: w.maxQueue === undefined ? 10_000 : positiveInteger(w.maxQueue, 'writeBack.maxQueue'),
    maxBytes: parseSize(w.maxBytes ?? '64MiB', 'writeBack.maxBytes'),
    maxDelay: timerDuration(w.maxDelay ?? '50ms', 'writeBack.maxDelay'),
  }
  if (writeBack.maxBytes === 0) throw invalid('writeBack.maxBytes', 'must be greater than 0')
  if (o.bus === true && redis === undefined) throw invalid('bus', 'the bus runs over Redis: set the redis option')
  return { redis, writeStrategy, writeBack, bus: redis !== undefined && o.bus !== false }
}

/** What ioredis would take and fail on later, out of reach of any caller: a database that is
 *  not a number (`SELECT NaN`, a rejection nothing handles: the process ended), and a user or
 *  password that does not percent-decode (a bare URIError). */
function checkRedisUrlParts(url: URL): void {
  if (!/^\/?\d*$/.test(url.pathname))
    throw invalid('redis.url', `the part after the host is the database number (redis://host:6379/0), got "${url.pathname}"`)
  try {
    decodeURIComponent(url.username)
    decodeURIComponent(url.password)
  } catch {
    throw invalid('redis.url', 'its user or password holds a "%" not followed by two hex digits (write "%" as "%25")')
  }
}

function isPort(port: unknown): boolean {
  return Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535
}

function resolveRedis(input: unknown): ResolvedRedisOptions | undefined {
  if (input === undefined) return undefined
  const r = (typeof input === 'string' ? { url: input } : input) as RedisOptions
  if (r === null || typeof r !== 'object' || Array.isArray(r))
    throw invalid(
      'redis',
      'expected a redis:// URL or { url?, client?, cluster?, prefix?, maxValueSize?, ttl?, commandTimeout?, breaker? }',
    )
  rejectUnknown(r, REDIS_NAMES, 'redis.')
  if (r.url !== undefined && (typeof r.url !== 'string' || !/^rediss?:\/\//.test(r.url)))
    throw invalid('redis.url', `expected a redis:// or rediss:// URL, got ${shownUrl(shownValue(r.url))}`)
  // What ioredis would refuse later with a bare TypeError (a port past 65535 or not a number).
  if (r.url !== undefined && !URL.canParse(r.url)) throw invalid('redis.url', `not a valid URL: ${shownUrl(r.url)}`)
  if (r.url !== undefined) checkRedisUrlParts(new URL(r.url))
  if (
    r.client !== undefined &&
    (r.client === null || typeof r.client !== 'object' || typeof (r.client as { duplicate?: unknown }).duplicate !== 'function')
  ) {
    throw invalid('redis.client', 'expected an ioredis Redis or Cluster')
  }
  if (r.cluster !== undefined) {
    const ok =
      Array.isArray(r.cluster) &&
      r.cluster.length > 0 &&
      r.cluster.every((n) =>
        typeof n === 'string'
          ? n.trim() !== '' && isPort(Number(/:(\d+)$/.exec(n)?.[1] ?? 6379))
          : n !== null && typeof n === 'object' && typeof n.host === 'string' && n.host !== '' && isPort(n.port),
      )
    if (!ok) throw invalid('redis.cluster', 'expected a non-empty array of "host:port" strings, redis[s]:// URLs or { host, port }')
    const seeds = clusterSeeds(r.cluster, 'redis.cluster')
    if (typeof seeds === 'string') throw invalid('redis.cluster', seeds)
  }
  if ([r.url, r.client, r.cluster].filter((v) => v !== undefined).length > 1) throw invalid('redis', 'give one of url, client and cluster')
  const prefix = r.prefix ?? 'larder:'
  if (typeof prefix !== 'string' || prefix.length > 256) throw invalid('redis.prefix', 'expected a string of at most 256 characters')
  // Every name under the prefix is taken for larder's: clear() and prune unlink what they find
  // there. Without one, another application's `default:…` keys would be removed too.
  if (prefix === '') throw invalid('redis.prefix', "must not be empty (every key under it is larder's: clear() removes them)")
  const maxValueSize = parseSize(r.maxValueSize ?? '1MB', 'redis.maxValueSize')
  if (maxValueSize === 0) throw invalid('redis.maxValueSize', 'must be greater than 0')
  const commandTimeout = timerDuration(r.commandTimeout ?? '500ms', 'redis.commandTimeout')
  if (commandTimeout === 0) throw invalid('redis.commandTimeout', 'must be greater than 0')
  return {
    url: r.url,
    client: r.client,
    cluster: r.cluster,
    prefix,
    maxValueSize,
    commandTimeout,
    ttl: r.ttl === undefined ? 0 : parseDuration(r.ttl, 'redis.ttl'),
    breaker: resolveBreaker(r.breaker, 'redis.breaker.', 5000, commandTimeout),
  }
}

function resolveMaintenance(input: unknown): ResolvedMaintenanceOptions {
  if (typeof input !== 'boolean' && input !== undefined && (input === null || typeof input !== 'object' || Array.isArray(input))) {
    throw invalid('maintenance', 'expected a boolean or { interval?, workers?, lowWater?, touchAfter?, lfuHalfLife?, tempMaxAge? }')
  }
  const m = (typeof input === 'boolean' || input === undefined ? {} : input) as MaintenanceOptions
  rejectUnknown(m, MAINTENANCE_NAMES, 'maintenance.')
  const lowWater = m.lowWater ?? 0.9
  if (typeof lowWater !== 'number' || !(lowWater >= 0.5 && lowWater <= 1)) {
    throw invalid('maintenance.lowWater', `expected a number from 0.5 to 1, got ${shownValue(lowWater)}`)
  }
  const workers = m.workers === undefined ? 1 : positiveInteger(m.workers, 'maintenance.workers')
  if (workers > 16) throw invalid('maintenance.workers', `expected at most 16, got ${workers}`)
  const tempMaxAge = parseDuration(m.tempMaxAge ?? '15m', 'maintenance.tempMaxAge')
  if (tempMaxAge < MIN_TEMP_MAX_AGE) {
    throw invalid(
      'maintenance.tempMaxAge',
      `expected at least 1s (a live writer refreshes its temp file every 200 ms; a shorter age could take it for a dead one's), got ${shownValue(m.tempMaxAge)}`,
    )
  }
  return {
    auto: input !== false,
    interval: timerDuration(m.interval ?? '1h', 'maintenance.interval'),
    workers,
    lowWater,
    touchAfter: parseDuration(m.touchAfter ?? '1m', 'maintenance.touchAfter'),
    lfuHalfLife: positiveDuration(m.lfuHalfLife ?? '1h', 'maintenance.lfuHalfLife'),
    tempMaxAge,
  }
}

function positiveDuration(value: unknown, field: string): number {
  const ms = parseDuration(value, field)
  if (ms === 0) throw invalid(field, 'must be greater than 0')
  return ms
}

/** The longest delay Node's timers hold (2^31 − 1 ms, 24.8 days): a longer one is taken as
 *  1 ms (with a TimeoutOverflowWarning), so an interval meant as a month fired every ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A duration that becomes a timer's delay or interval: at most MAX_TIMER_MS. */
export function timerDuration(value: unknown, field: string): number {
  const ms = parseDuration(value, field)
  if (ms > MAX_TIMER_MS)
    throw invalid(field, `expected at most 24 days (Node's timers hold no longer: a longer one would fire at once), got ${ms} ms`)
  return ms
}

function defaultLevel(compression: CompressionName): number {
  return compression === 'none' ? 0 : 1
}

function levelRange(compression: CompressionName): [number, number] {
  switch (compression) {
    case 'none':
      return [0, 0]
    case 'brotli':
      return [0, 11]
    case 'zstd':
      return [1, 19]
    default:
      return [0, 9]
  }
}

// ── memoryPressure: declaration, resolved form and validation, in one block ─────────────────

/**
 * Memory pressure (see resilience/memory-watch.ts): one unref'd timer per process, shared by
 * every open cache, reads the heap used against V8's limit (`heap_size_limit`) and the resident
 * set against the process's cgroup limit (`process.constrainedMemory()`) or else the machine's
 * memory; the larger share is the reading's level. At or above `highWater` the memory tier
 * sheds entries and stops growing, a write-back queue stops growing (writes go straight to
 * Redis) and a `pressure` event fires; below `lowWater` it all recovers (another event).
 */
export interface MemoryPressureOptions {
  /** How often memory is read. Default `'1s'`. The process's one timer runs at the shortest
   *  interval any open cache asks for; a burst of memory-tier writes also takes a reading
   *  every 2 MiB admitted, since a loop of writes may give the timer no turn. */
  interval?: Duration
  /** Share of a limit (heap or memory) at or above which the pressure is high. Default 0.85. */
  highWater?: number
  /** Share below which a high pressure is over. Default 0.7 (with a `highWater` at or below
   *  that, four fifths of it); less than `highWater`. */
  lowWater?: number
  /** Share of the memory tier's entries (and, with `memory.maxSize`, bytes) kept by each shed;
   *  the least recently used go. Default 0.5; 0 empties it. */
  shedTo?: number
}

/** `memoryPressure` as resolved: every default filled in, the interval in ms. */
export interface ResolvedMemoryPressure {
  interval: number
  highWater: number
  lowWater: number
  shedTo: number
}

const MEMORY_PRESSURE_NAMES = new Set(['interval', 'highWater', 'lowWater', 'shedTo'])

/**
 * `memoryPressure`: on by default when the memory tier is (`memoryTier`), off otherwise. Asked
 * for (`true` or thresholds, from any source) it is on where it has something to shed: the
 * memory tier, or with `redis` a write-back queue (`writeStrategy` may become write-back
 * while the cache runs, and this cannot). Without either it is off, whatever asked: a
 * `LARDER_MEMORY_PRESSURE_…` variable set for every service of a host must not give one
 * without a memory tier a timer that reads memory for nothing. Its fields are checked all the
 * same, so a mistake is found before the tier is turned on.
 */
export function resolveMemoryPressure(input: unknown, memoryTier: boolean, redis: boolean): ResolvedMemoryPressure | false {
  if (input === false || (input === undefined && !memoryTier)) return false
  if (input !== undefined && input !== true && (input === null || typeof input !== 'object' || Array.isArray(input)))
    throw invalid('memoryPressure', 'expected a boolean or { interval?, highWater?, lowWater?, shedTo? }')
  const p = (input === true ? {} : (input ?? {})) as MemoryPressureOptions
  rejectUnknown(p, MEMORY_PRESSURE_NAMES, 'memoryPressure.')
  const share = (value: unknown, field: string, fallback: number, low: number, lowIncluded: boolean, high: number): number => {
    const v = value ?? fallback
    if (typeof v !== 'number' || !(lowIncluded ? v >= low : v > low) || !(v <= high))
      throw invalid(
        `memoryPressure.${field}`,
        `expected a number in ${lowIncluded ? '[' : '('}${low}, ${high}], got ${shownValue(v, 'json')}`,
      )
    return v
  }
  const highWater = share(p.highWater, 'highWater', 0.85, 0, false, 1)
  // 0.7, or under a highWater at or below it, four fifths of that.
  const lowWater = share(p.lowWater, 'lowWater', highWater > 0.7 ? 0.7 : highWater * 0.8, 0, false, 1)
  if (lowWater >= highWater)
    throw invalid('memoryPressure.lowWater', `expected less than highWater (${highWater}), got ${shownValue(lowWater)}`)
  const resolved = {
    interval: positiveDuration(timerDuration(p.interval ?? '1s', 'memoryPressure.interval'), 'memoryPressure.interval'),
    highWater,
    lowWater,
    shedTo: share(p.shedTo, 'shedTo', 0.5, 0, true, 1),
  }
  return memoryTier || redis ? resolved : false
}
