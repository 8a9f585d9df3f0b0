import { EventEmitter } from 'node:events'
import type { KeyvStoreAdapter, StoredData } from 'keyv'
import type { Larder } from 'larder'
import { entryBatches, taggedKeys } from '../facade/adapter-hooks.js'
import { MAX_KEY_BYTES } from '../options.js'
import { boundedKey, HASHED, looksHashed, TAG_BYTES } from './bounded-key.js'
import { CacheSource, type CacheOrOptions } from './cache-source.js'

export type { CacheOrOptions }

/**
 * A Keyv storage adapter (`new Keyv({ store: new KeyvLarder(options | cache) })`) for Keyv 5,
 * and so a store for cache-manager 7 and cacheable 2, which take Keyv 5 stores, and for Keyv 6.
 *
 * How Keyv 5 talks to a store: keys arrive prefixed with the namespace (`users:42`), values
 * as the string Keyv serialized (`{"value":…,"expires":…}`), ttl as relative milliseconds.
 * Each entry is stored under the key as given, with the ttl (so expired entries are reclaimed
 * by larder's maintenance, not only skipped by Keyv), tagged with its namespace: `clear()`
 * invalidates that one tag, which empties this namespace in every process at the cost of one
 * small file, and leaves every other namespace, and everything else in the cache, alone.
 *
 * Keyv takes any string as a key; larder does not (at most 8 KiB of UTF-8, no NUL, no lone
 * surrogate). A key larder would refuse is stored under its SHA-256 (boundedKey), its value
 * wrapped with the key itself (Hashed), so a read checks it is the key asked for and the
 * iterator gives the key back as Keyv knows it.
 *
 * Keyv 6 speaks another contract: `set`'s third argument is an absolute expiry instead of a
 * ttl, keys arrive without the namespace (the store owns it), and the batch deletes and sets
 * answer one boolean per key. It asks a store, as it takes it, for its `capabilities`; Keyv 5
 * never does. The adapter answers that it speaks the v6 contract and, from that question on,
 * does (`#v6`): it prefixes keys with the namespace as Keyv 6's own adapters do
 * (`users::42`), takes the expiry as one, and lists a namespace's keys without the prefix.
 * Without that answer Keyv 6 would wrap the store in its bridge, which leaves the prefix to a
 * store that has a `namespace` (as this one has, for Keyv 5), and namespaces would collide.
 */
export class KeyvLarder extends EventEmitter implements KeyvStoreAdapter {
  /**
   * What Keyv reads of a store's options. Keyv 5 wires a store's `iterator()` only when
   * `opts.dialect` is one of its own list (sqlite, postgres, mysql, mongo, redis, valkey, etcd)
   * and reads `opts.url` whenever the store has an iterator: `dialect` says `'sqlite'` for
   * that reason alone (Keyv uses it for nothing else).
   */
  opts: { dialect: string; url: string; [option: string]: unknown }
  /** Set by Keyv (its `namespace` option, `'keyv'` by default); the prefix of every key. */
  namespace?: string | undefined

  readonly #source: CacheSource
  /** Keyv 6 asked for `capabilities`: its contract, not Keyv 5's (see the class comment). */
  #v6 = false

  constructor(cache?: CacheOrOptions) {
    super()
    // Keyv subscribes to 'error'; without a listener an EventEmitter would throw it instead.
    this.#source = new CacheSource(cache, (error) => {
      if (this.listenerCount('error') > 0) this.emit('error', error)
    })
    const dir = (cache as { dir?: unknown } | undefined)?.dir
    this.opts = { dialect: 'sqlite', url: `larder:${typeof dir === 'string' ? dir : ''}` }
  }

  // The reads answer the call's own promise (no async frame of their own): a Keyv get answered
  // by the memory tier is a hot path (bench/adapters.mjs), given get()'s promise as it is.
  // The memory tier is asked first, before the key's checks (a scan or two of it, ~3 % of
  // such a get): it holds only keys larder took as they are, so a key it answers needed none,
  // and hashed keys, which a key taken as it is never looks like (looksHashed).
  get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    if (this.#v6) key = this.#withNamespace(key)
    const atOnce = looksHashed(key) ? undefined : this.#source.answeredAtOnce(key)
    if (atOnce !== undefined) return atOnce as Promise<StoredData<Value> | undefined>
    if (!takenAsIs(key))
      return this.#source.guarded(undefined, async (cache) => unwrap(key, await cache.get(hashedKey(key)))) as Promise<
        StoredData<Value> | undefined
      >
    return this.#source.guarded(undefined, getOf, key) as Promise<StoredData<Value> | undefined>
  }

  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    if (this.#v6) keys = keys.map(this.#withNamespace)
    return this.#source.guarded(
      keys.map(() => undefined),
      async (cache) => {
        const values = await cache.getMany(keys.map(larderKey))
        return values.map((value, i) => (takenAsIs(keys[i]!) ? value : unwrap(keys[i]!, value))) as Array<StoredData<Value | undefined>>
      },
    )
  }

  has(key: string): Promise<boolean> {
    return this.#source.guarded(false, (cache) => cache.has(this.#larderKey(key)))
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return this.#source.guarded(
      keys.map(() => false),
      (cache) => Promise.all(keys.map((key) => cache.has(this.#larderKey(key)))),
    )
  }

  /** Stores Keyv's serialized value; false (and an `error` event) when it was not stored.
   *  `ttlOrExpires`: Keyv 5's ttl, or Keyv 6's absolute expiry (a negative ttl or a past
   *  expiry deletes the key). */
  async set(key: string, value: unknown, ttlOrExpires?: number): Promise<boolean> {
    if (this.#v6) key = this.#withNamespace(key)
    const ttl = this.#v6 ? ttlUntil(ttlOrExpires) : ttlOf(ttlOrExpires)
    return this.#source.guarded(false, async (cache) => {
      if (ttl === 'past') await cache.delete(larderKey(key))
      else await cache.set(larderKey(key), wrapped(key, value), { ttl, tags: [this.#namespaceTag()] })
      return true
    })
  }

  /**
   * Stores a batch, whole or not at all (larder checks every item before writing any), and
   * answers one boolean per entry: Keyv 5 hands a store's answer to its caller as the
   * `boolean[]` of `keyv.setMany()`, although its store type says `void` (hence the cast).
   */
  async setMany(values: Array<{ key: string; value: unknown; ttl?: number; expires?: number }>): Promise<void> {
    const tags = [this.#namespaceTag()]
    const items = values.map(({ key, value, ttl, expires }) => {
      const full = this.#v6 ? this.#withNamespace(key) : key
      return { key: larderKey(full), value: wrapped(full, value), ttl: this.#v6 ? ttlUntil(expires) : ttlOf(ttl), tags }
    })
    const stored = await this.#source.guarded(
      values.map(() => false),
      async (cache) => {
        const past = items.filter((item) => item.ttl === 'past').map((item) => item.key)
        await cache.setMany(items.filter((item): item is (typeof items)[number] & { ttl: number | undefined } => item.ttl !== 'past'))
        if (past.length > 0) await cache.deleteMany(past) // a negative ttl, or an expiry already past
        return values.map(() => true)
      },
    )
    return stored as unknown as void
  }

  async delete(key: string): Promise<boolean> {
    return this.#source.guarded(false, (cache) => cache.delete(this.#larderKey(key)))
  }

  /** Keyv 5: true when every key was there and is gone (as Keyv's own fallback counts);
   *  Keyv 6: whether each was (a boolean per key, the type Keyv 6 declares). */
  async deleteMany(keys: string[]): Promise<boolean> {
    if (this.#v6) {
      const deleted = await this.#source.guarded(
        keys.map(() => false),
        (cache) => Promise.all(keys.map((key) => cache.delete(this.#larderKey(key)))),
      )
      return deleted as unknown as boolean
    }
    return this.#source.guarded(false, async (cache) => (await cache.deleteMany(keys.map(larderKey))) === keys.length)
  }

  /** Empties this namespace only, in every process sharing the cache. */
  async clear(): Promise<void> {
    await this.#source.guarded(undefined, (cache) => cache.invalidateTags([this.#namespaceTag()]))
  }

  /**
   * `[key, value]` for every live entry of the namespace (keys as stored, prefix included:
   * Keyv strips it). Listed from the directory's entry heads by larder's worker threads, a
   * partition at a time as the listing is read (memory holds a few partitions' listings), then
   * from the memory tier (with `dir: false`, what only memory holds), then, with `redis`, from
   * the values Redis holds (what other hosts wrote). Each is read through `get`, one at a time,
   * so memory holds one value at once and an entry removed, expired or invalidated meanwhile is
   * skipped. A failure ends the listing with what it gave (reported), or throws ERR_UNAVAILABLE
   * with `failOpen: false`, as a get would.
   */
  async *iterator<Value>(namespace?: string): AsyncGenerator<Array<string | Awaited<Value> | undefined>, void> {
    if (this.#v6) {
      // Keyv 6 asks without a namespace, for this store's own, and takes keys without it.
      for await (const [key, value] of this.#listed<Value>(this.namespace)) yield [this.#withoutNamespace(key), value]
      return
    }
    yield* this.#listed<Value>(namespace ?? this.namespace)
  }

  async *#listed<Value>(namespace: string | undefined): AsyncGenerator<[string, Awaited<Value>], void> {
    const tags = [namespaceTag(namespace)]
    // The directory's entries a batch of partitions at a time, each batch listed as the one
    // before is read (so memory holds a few batches, not the namespace); a failure of a batch
    // ends this part of the listing as a failed entries() call would have ended all of it.
    const batches = await this.#source.guarded(undefined, (cache) => Promise.resolve(directoryBatches(cache, tags)))
    const pending = batches?.[Symbol.asyncIterator]()
    try {
      for (;;) {
        const step = pending === undefined ? LISTED : await this.#source.guarded(LISTED, () => pending.next())
        if (step.done === true) break
        for (const { key } of step.value) {
          const value = await this.#source.guarded(undefined, getOf, key)
          if (value !== undefined) yield listedAs<Value>(key, value)
        }
      }
    } finally {
      await pending?.return?.()
    }
    const cache = await this.#source.ready.catch(() => undefined) // a failed open: reported above
    // The hook passes over what the directory listed; what is left may come twice (memory and
    // Redis, a SCAN's repeat), so those keys are remembered: what this host's directory does
    // not hold, never the directory's whole listing.
    const seen = new Set<string>()
    try {
      // Redis failing the listing is the cache's read failure (counted, its 'error' event),
      // and ERR_UNAVAILABLE with failOpen false, as a get failing below would be.
      for await (const key of cache?.[taggedKeys]?.(tags) ?? []) {
        if (seen.has(key)) continue
        seen.add(key)
        const value = await this.#source.guarded(undefined, getOf, key)
        if (value !== undefined) yield listedAs<Value>(key, value)
      }
    } catch (error) {
      this.#source.fail(error, undefined) // a cache closed meanwhile: Keyv's error event hears it
    }
  }

  /** Waits for its calls in flight, then closes the cache if this adapter opened it (a cache
   *  passed in stays open for its owner). */
  async disconnect(): Promise<void> {
    await this.#source.close()
  }

  /**
   * What Keyv 6 asks of a store it is given (Keyv 5 never asks): the v6 storage contract,
   * every method async, an absolute `expires` taken. Answering it switches this adapter to
   * that contract (see the class comment). The shape is keyv 6's `KeyvStorageCapability`.
   */
  get capabilities(): KeyvStorageCapability {
    this.#v6 = true
    const method = { exists: true, methodType: 'async' } as const
    return {
      compatible: true,
      store: 'keyvStorage',
      expires: true,
      methods: Object.fromEntries(STORAGE_METHODS.map((name) => [name, method])) as KeyvStorageCapability['methods'],
    }
  }

  #namespaceTag(): string {
    return namespaceTag(this.namespace)
  }

  /** Keyv 6's key under this store's namespace, as Keyv 6's own adapters join them. */
  readonly #withNamespace = (key: string): string => (this.namespace ? `${this.namespace}${SEPARATOR}${key}` : key)

  #withoutNamespace(key: string): string {
    const prefix = this.namespace ? `${this.namespace}${SEPARATOR}` : ''
    return key.startsWith(prefix) ? key.slice(prefix.length) : key
  }

  /** The larder key of a key Keyv gave, under either contract. */
  #larderKey(key: string): string {
    return larderKey(this.#v6 ? this.#withNamespace(key) : key)
  }
}

/** Keyv 6's separator of a namespace and a key (its `namespaceSeparator`). */
const SEPARATOR = '::'

/** The methods keyv 6's capability lists (its `keyvStorageMethodNames`). */
const STORAGE_METHODS = [
  'get',
  'getMany',
  'has',
  'hasMany',
  'set',
  'setMany',
  'delete',
  'deleteMany',
  'clear',
  'disconnect',
  'iterator',
] as const

/** keyv 6's `KeyvStorageCapability`, written out: keyv 5's declarations, which larder builds
 *  against, have no such type. */
interface KeyvStorageCapability {
  compatible: boolean
  store: 'mapLike' | 'keyvStorage' | 'asyncMap' | 'none'
  methods: Record<(typeof STORAGE_METHODS)[number], { exists: boolean; methodType: 'sync' | 'async' | 'none' }>
  expires?: boolean
}

/** Whether larder takes `key` as it is (validateKey's rules; a key's UTF-8 is at most three
 *  bytes a UTF-16 unit, so a short one needs no count) and it cannot be taken for a hashed
 *  key (looksHashed: such a key is hashed too, and its value wrapped). */
function takenAsIs(key: string): boolean {
  return (
    key !== '' &&
    (key.length * 3 <= MAX_KEY_BYTES || Buffer.byteLength(key) <= MAX_KEY_BYTES) &&
    !key.includes('\0') &&
    key.isWellFormed() &&
    !looksHashed(key)
  )
}

/** The key a Keyv key is stored under in larder. */
function larderKey(key: string): string {
  return takenAsIs(key) ? key : hashedKey(key)
}

function hashedKey(key: string): string {
  return boundedKey('', key, 0)
}

/** The value stored for a key larder could not take: the Keyv key beside Keyv's value. */
interface Hashed {
  [KEYV_KEY]: string
  value: unknown
}
const KEYV_KEY = 'larder:keyv-key'

function wrapped(key: string, value: unknown): unknown {
  return takenAsIs(key) ? value : ({ [KEYV_KEY]: key, value } satisfies Hashed)
}

function isHashed(value: unknown): value is Hashed {
  return typeof value === 'object' && value !== null && typeof (value as Partial<Hashed>)[KEYV_KEY] === 'string'
}

/** Keyv's value of a hashed key, if the entry found is that key's (not another's). */
function unwrap(key: string, value: unknown): unknown {
  return isHashed(value) && value[KEYV_KEY] === key ? value.value : undefined
}

/** An entry listed by the iterator, with the key Keyv gave it (a hashed key's is in its value). */
function listedAs<Value>(key: string, value: unknown): [string, Awaited<Value>] {
  if (!key.startsWith(HASHED) || !isHashed(value)) return [key, value as Awaited<Value>]
  return [value[KEYV_KEY], value.value as Awaited<Value>]
}

/** Keyv's ttl (relative ms) as larder's: Keyv hands on what its caller gave. 0, none, and
 *  what Keyv itself stores as never expiring (Infinity, NaN: its `expires` serializes to
 *  null) are no ttl; a negative one (Keyv has already dated the value in the past) is
 *  'past': the key is deleted, as under Keyv 6 (stored for 1 ms, it was a dead file until a
 *  prune or a get of it). */
function ttlOf(ttl: number | undefined): number | undefined | 'past' {
  if (typeof ttl !== 'number') return ttl ?? undefined // a duration string, as larder takes one
  if (ttl === 0 || !Number.isFinite(ttl)) return undefined
  return ttl < 0 ? 'past' : ttl
}

/** Keyv 6's absolute expiry as larder's ttl: none, or the time left, or 'past' (the key is
 *  deleted, as Keyv 6's contract allows for an expiry at or before now). */
function ttlUntil(expires: number | undefined): number | undefined | 'past' {
  if (typeof expires !== 'number' || !Number.isFinite(expires)) return undefined
  const left = expires - Date.now()
  return left > 0 ? left : 'past'
}

/** A get, made once: the hot read passes it and its key to `guarded` (no closure per call). */
const getOf = (cache: Larder, key: string): Promise<unknown> => cache.get(key)

/** The end of a listing: what a failed step of it comes to (reported by `guarded`). */
const LISTED: IteratorResult<never, undefined> = { done: true, value: undefined }

/** The entries of the directory carrying `tags`, a batch at a time (none without a
 *  directory); the whole listing as one batch from a larder without the bounded hook. */
function directoryBatches(cache: Larder, tags: string[]): AsyncIterable<Array<{ key: string }>> | undefined {
  if (cache.dir === false) return undefined
  const bounded = cache[entryBatches]
  if (bounded !== undefined) return bounded.call(cache, { tags })
  return (async function* () {
    yield await cache.entries({ tags })
  })()
}

/** The tag every entry of a Keyv namespace carries (no namespace is a namespace too). Keyv
 *  takes any namespace, larder no tag over 1 KiB or holding a NUL or a lone surrogate: such a
 *  namespace is tagged by its SHA-256, as such a key is stored (with the tag as it was, every
 *  set in it was refused: false, and an error event). */
function namespaceTag(namespace: string | undefined): string {
  return boundedKey('keyv:', namespace ?? '', TAG_BYTES)
}
