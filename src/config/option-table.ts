/**
 * **The one declaration of every `Larder.open` option as configuration sees it**: where it may
 * come from (its environment variable, derived from its path), how a string from the
 * environment becomes its value, whether `configure()` can change it while the cache runs, and
 * the line the README's table shows. The environment reader, the config-file merge, `cache.
 * optionSources`, `configure()` and `npm run docs:options` all read this table, so a new option
 * is one row here (and its validation in options.ts, the one validator).
 *
 * What an option means, its default and its checks stay in options.ts (documented where
 * declared); this table says only how configuration reaches it.
 */

/** How a string from the environment becomes an option value. Anything a parser does not
 *  recognise is passed on as the string it is, so that options.ts's validator (the only one)
 *  rejects it with its own words. */
export type EnvParser =
  /** Taken as written: strings, names, durations (`'90s'`), sizes (`'5GB'`). */
  | 'text'
  /** A number (`'5'`, `'0.9'`). */
  | 'number'
  /** `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); other text as written, for an
   *  option that is `false` or a name (`shared`: `LARDER_SHARED=false` was the string "false",
   *  which it refuses; `dir`: `LARDER_DIR=false` made a directory named "false" where a file's
   *  or code's `dir: false` means no file tier). */
  | 'boolean'
  /** `false` turns the group off, `true` on with its defaults (`memory`, `maintenance`). */
  | 'switch'
  /** A comma-separated list (`'host1:7000,host2:7000'`). */
  | 'list'
  /** Encryption keys, `id:key,id:key` (crypto/keys.ts `keysFromEnv`): the first is the active
   *  key unless `LARDER_ENCRYPTION_ACTIVE_KEY` names another. A key is never shown. */
  | 'keyring'

export interface OptionRow {
  /** The option's path in `LarderOptions` (`'memory.maxEntries'`). */
  path: string
  /** How its environment variable is read; `false` when it cannot come from the environment
   *  (objects with behaviour: a client, functions), with the reason in `doc`. */
  env: EnvParser | false
  /** A valid value from the environment (not the default): the README shows it, and the
   *  tests read every variable with it. Required when `env` is not false. */
  example?: string
  /** Whether `cache.configure()` may change it while the cache runs. */
  live: boolean
  /** Its value is never shown (not in `optionSources` details, errors or the reload log). */
  secret?: boolean
  /** One line for the README's table. */
  doc: string
}

// prettier-ignore
export const OPTION_ROWS: readonly OptionRow[] = [
  { path: 'profile', env: 'text', example: 'production', live: false, doc: 'preset: `development`, `production` or `test` (see Profiles); `NODE_ENV` is the fallback' },
  { path: 'dir', env: 'boolean', example: '/var/cache/app', live: false, doc: 'the cache directory (`false`: no file tier)' },
  { path: 'namespace', env: 'text', example: 'api', live: false, doc: 'separates caches sharing one directory' },
  { path: 'defaultTtl', env: 'text', example: '10m', live: true, doc: 'ttl of entries set without one (duration)' },
  { path: 'compression', env: 'text', example: 'brotli', live: true, doc: 'codec of new entries: `gzip`, `deflate`, `brotli`, `zstd`, `none`' },
  { path: 'compressionLevel', env: 'number', example: '4', live: true, doc: 'codec level of new entries' },
  { path: 'compressThreshold', env: 'text', example: '16KB', live: true, doc: 'smaller payloads are stored uncompressed (size)' },
  { path: 'compressLater', env: 'text', example: '64KB', live: true, doc: 'values this large are written uncompressed and compressed by a worker moments later (size; `false`, `off` or `0`: off)' },
  { path: 'streamCompression', env: 'text', example: 'full', live: true, doc: '`adaptive` or `full`, for new streams' },
  { path: 'serializer', env: 'text', example: 'v8', live: false, doc: '`json`, `v8`, `msgpack`, `raw` (a custom serializer only from a call or `larder.config.mjs`)' },
  { path: 'maxValueSize', env: 'text', example: '16MiB', live: false, doc: 'largest value `get` returns and `set` stores (size)' },
  { path: 'memory', env: 'switch', example: 'true', live: false, doc: 'the in-process memory tier on or off' },
  { path: 'memory.maxEntries', env: 'number', example: '50000', live: true, doc: 'most entries in the memory tier (shrinks at once)' },
  { path: 'memory.maxSize', env: 'text', example: '256MB', live: true, doc: 'most bytes in the memory tier: each entry its serialized size, its key and 150 bytes (shrinks at once)' },
  { path: 'memory.ttl', env: 'text', example: '30s', live: true, doc: 'longest a value is served from memory (duration)' },
  { path: 'failOpen', env: 'boolean', example: 'false', live: false, doc: 'a failing disk turns into misses and dropped writes' },
  { path: 'breaker.errorThresholdPercentage', env: 'number', example: '75', live: true, doc: 'failure percentage that opens the disk breaker' },
  { path: 'breaker.volumeThreshold', env: 'number', example: '20', live: false, doc: 'fewest operations before the disk breaker may open' },
  { path: 'breaker.resetTimeout', env: 'text', example: '30s', live: true, doc: 'how long the disk breaker stays open (duration)' },
  { path: 'breaker.rollingCountTimeout', env: 'text', example: '1m', live: false, doc: "length of the disk breaker's window (duration)" },
  { path: 'breaker.timeout', env: 'text', example: '2s', live: true, doc: 'a disk read slower than this fails (a miss, counted); writes, streams (the read of a whole entry by `getStream` with `verifyFirst` included) and removals are never timed out (duration; 0 = off)' },
  { path: 'durable', env: 'boolean', example: 'true', live: true, doc: 'fsync each new entry before its rename' },
  { path: 'maxSize', env: 'text', example: '5GB', live: true, doc: 'budget in bytes on disk (size); lowering it starts a prune' },
  { path: 'maxEntries', env: 'number', example: '100000', live: true, doc: 'budget in entries; lowering it starts a prune' },
  { path: 'evictionPolicy', env: 'text', example: 'lfu', live: true, doc: '`lru`, `lfu`, `fifo` or `random` (also the memory tier\'s, at once)' },
  { path: 'memoryPressure', env: 'switch', example: 'true', live: false, doc: 'memory-pressure watch (on by default with the memory tier; off without it and without Redis, whatever is set)' },
  { path: 'memoryPressure.interval', env: 'text', example: '5s', live: false, doc: 'how often memory is read (duration)' },
  { path: 'memoryPressure.highWater', env: 'number', example: '0.9', live: false, doc: 'share of the heap or RSS limit above which the memory tier sheds' },
  { path: 'memoryPressure.lowWater', env: 'number', example: '0.6', live: false, doc: 'share below which the memory tier recovers its bounds' },
  { path: 'memoryPressure.shedTo', env: 'number', example: '0.25', live: false, doc: 'share of the memory tier kept when it sheds' },
  { path: 'readOnly', env: 'boolean', example: 'true', live: false, doc: 'open an existing cache and write nothing' },
  { path: 'maintenance', env: 'switch', example: 'false', live: true, doc: '`false`: no automatic maintenance' },
  { path: 'maintenance.interval', env: 'text', example: '15m', live: true, doc: 'prune every this often (duration; 0 = never)' },
  { path: 'maintenance.workers', env: 'number', example: '2', live: false, doc: 'worker threads for scans and evictions' },
  { path: 'maintenance.lowWater', env: 'number', example: '0.8', live: true, doc: 'an over-budget cache is evicted down to this share' },
  { path: 'maintenance.touchAfter', env: 'text', example: '5m', live: false, doc: 'how often a hit refreshes an entry’s mtime (duration)' },
  { path: 'maintenance.lfuHalfLife', env: 'text', example: '6h', live: false, doc: 'half-life of LFU hit counts (duration)' },
  { path: 'maintenance.tempMaxAge', env: 'text', example: '1h', live: true, doc: 'temp files older than this are removed (duration)' },
  { path: 'shared', env: 'boolean', example: 'group', live: false, doc: 'who may use the directory: `false`, `group`, `everyone`' },
  { path: 'redis.url', env: 'text', example: 'redis://cache.internal:6379/2', live: false, doc: 'the shared tier: `redis://[user:password@]host:port[/db]` (credentials never shown)' },
  { path: 'redis.client', env: false, live: false, doc: 'your own ioredis client: from a call only' },
  { path: 'redis.cluster', env: 'list', example: '10.0.0.1:7000,10.0.0.2:7000', live: false, doc: 'Redis Cluster seed nodes, comma-separated `host:port` or `redis[s]://[user:password@]host:port` (the scheme and credentials apply to every node)' },
  { path: 'redis.prefix', env: 'text', example: 'app:', live: false, doc: 'prefix of every Redis key and channel' },
  { path: 'redis.maxValueSize', env: 'text', example: '256KB', live: false, doc: 'larger entries stay local (size)' },
  { path: 'redis.ttl', env: 'text', example: '1d', live: false, doc: 'longest an entry stays in Redis (duration)' },
  { path: 'redis.commandTimeout', env: 'text', example: '1s', live: false, doc: 'a Redis command slower than this fails (duration)' },
  { path: 'redis.breaker.errorThresholdPercentage', env: 'number', example: '75', live: false, doc: "the Redis breaker's failure percentage" },
  { path: 'redis.breaker.volumeThreshold', env: 'number', example: '20', live: false, doc: "the Redis breaker's fewest operations" },
  { path: 'redis.breaker.resetTimeout', env: 'text', example: '10s', live: false, doc: "how long the Redis breaker stays open (duration)" },
  { path: 'redis.breaker.rollingCountTimeout', env: 'text', example: '1m', live: false, doc: "length of the Redis breaker's window (duration)" },
  { path: 'redis.breaker.timeout', env: 'text', example: '2s', live: false, doc: 'a Redis command slower than this fails (duration)' },
  { path: 'writeStrategy', env: 'text', example: 'write-back', live: true, doc: '`write-through`, `write-back` or `cache-aside` (the last two need `redis`)' },
  { path: 'writeBack.maxQueue', env: 'number', example: '50000', live: false, doc: 'most writes waiting for Redis' },
  { path: 'writeBack.maxBytes', env: 'text', example: '256MiB', live: false, doc: 'most bytes of entries waiting for Redis (size)' },
  { path: 'writeBack.maxDelay', env: 'text', example: '200ms', live: false, doc: 'longest a write waits for its batch (duration)' },
  { path: 'bus', env: 'boolean', example: 'false', live: false, doc: 'Redis pub/sub between instances' },
  { path: 'encryption.keys', env: 'keyring', example: `k1:${'0'.repeat(64)}`, live: false, secret: true, doc: 'encryption keys, `id:key,…` (32 bytes each: 64 hex digits or base64; never shown); the first is active' },
  { path: 'encryption.activeKey', env: 'text', example: 'k2', live: false, secret: true, doc: 'the key id new entries are sealed under (one of the keys; with one key, that one)' },
]

/** `memory.maxEntries` → `LARDER_MEMORY_MAX_ENTRIES`. */
export function envName(path: string): string {
  return (
    'LARDER_' +
    path
      .replace(/\./g, '_')
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .toUpperCase()
  )
}

/** The option groups whose fields merge across sources (a file's `memory.maxEntries` and the
 *  environment's `memory.ttl` make one `memory`), derived from the rows' paths. */
export const OPTION_GROUPS: ReadonlySet<string> = new Set(
  OPTION_ROWS.flatMap((row) => {
    const parts = row.path.split('.')
    return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('.'))
  }),
)

export const ROWS_BY_PATH: ReadonlyMap<string, OptionRow> = new Map(OPTION_ROWS.map((row) => [row.path, row]))

/** The row of `field` (an option path, possibly deeper than any row, such as a custom
 *  serializer's), or of the nearest group above it that has one. */
export function rowOf(field: string): OptionRow | undefined {
  for (let path = field; path !== ''; path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : '') {
    const row = ROWS_BY_PATH.get(path)
    if (row !== undefined) return row
  }
  return undefined
}
