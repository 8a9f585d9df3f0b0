import { Larder, type LarderOptions, type PruneReport } from '../index.js'
import type { ServeOptions } from './options.js'

/**
 * One larder namespace per tool and team (`turbo:<team>`, `nx`, `nx:<team>`, `ccache`, `bazel`,
 * `api`), each a `Larder` opened on first use and kept open until the server stops. Namespaces
 * isolate teams (a hash of one team is never found by another) and carry their own budget
 * (`--max-size` applies to each).
 *
 * Every instance is opened with `failOpen: false`: the server must know when the disk failed
 * so that each protocol can answer as its client copes best (a miss, a skipped upload), instead
 * of reporting an upload stored that was dropped.
 */
export type Protocol = 'turbo' | 'nx' | 'ccache' | 'bazel' | 'api'

/** `health`: the namespace `GET /readyz` writes a probe into. */
export type NamespaceUse = Protocol | 'health'

export interface NamespaceInfo {
  name: string
  protocol: NamespaceUse
  cache: Larder
}

/** How many namespaces one server keeps open: each holds timers, a breaker and a worker pool
 *  slot, and team names come from clients. */
export const MAX_NAMESPACES = 256

export class TooManyNamespacesError extends Error {}

export class Namespaces {
  readonly #options: ServeOptions
  readonly #open = new Map<string, Promise<NamespaceInfo>>()
  readonly #opened: (info: NamespaceInfo) => void
  #closed = false

  /** `opened` is told of each namespace once it is open (metrics and events hook in there). */
  constructor(options: ServeOptions, opened: (info: NamespaceInfo) => void) {
    this.#options = options
    this.#opened = opened
  }

  /** The namespace's cache, opened on first use. */
  async get(name: string, protocol: NamespaceUse): Promise<Larder> {
    return (await this.info(name, protocol)).cache
  }

  async info(name: string, protocol: NamespaceUse): Promise<NamespaceInfo> {
    if (this.#closed) throw new Error('the server is shutting down')
    let found = this.#open.get(name)
    if (found === undefined) {
      if (this.#open.size >= MAX_NAMESPACES) throw new TooManyNamespacesError(`this server already serves ${MAX_NAMESPACES} namespaces`)
      found = this.#openNamespace(name, protocol)
      this.#open.set(name, found)
      found.catch(() => this.#open.delete(name))
    }
    return found
  }

  /** Every namespace opened so far. */
  async all(): Promise<NamespaceInfo[]> {
    const settled = await Promise.allSettled(this.#open.values())
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  }

  /**
   * Replaces a namespace's instance with a fresh one: the cache API's `DELETE /cache/l1`
   * empties the in-process memory tier this way (the disk keeps every entry). Calls already
   * holding the old instance finish on it (close() waits for its writes).
   */
  async reopen(name: string, protocol: NamespaceUse): Promise<void> {
    const old = this.#open.get(name)
    const fresh = this.#openNamespace(name, protocol)
    this.#open.set(name, fresh)
    await fresh
    if (old !== undefined) await (await old.catch(() => undefined))?.cache.close()
  }

  /** Closes every instance (waiting for their writes); later `get`s reject. */
  async close(): Promise<void> {
    this.#closed = true
    const all = await this.all()
    this.#open.clear()
    await Promise.allSettled(all.map((n) => n.cache.close()))
  }

  async #openNamespace(name: string, protocol: NamespaceUse): Promise<NamespaceInfo> {
    const cache = await Larder.open({ ...this.#optionsFor(protocol), dir: this.#options.dir, namespace: name })
    const info: NamespaceInfo = { name, protocol, cache }
    this.#opened(info)
    return info
  }

  #optionsFor(protocol: NamespaceUse): LarderOptions {
    const budget = this.#options.maxSize === undefined ? {} : { maxSize: this.#options.maxSize }
    if (protocol === 'api') {
      return {
        ...budget,
        failOpen: false,
        memory: this.#options.memoryEntries > 0 ? { maxEntries: this.#options.memoryEntries } : false,
        defaultTtl: this.#options.defaultTtl,
      }
    }
    // Artifacts arrive compressed (turbo: tar.zst, nx: tar.gz, ccache: zstd), so compressing
    // them again would cost CPU for nothing: they are stored as they come. (The health probe
    // is a few bytes, stored the same way.)
    return { ...budget, failOpen: false, compression: 'none', serializer: 'raw' }
  }
}

export type { PruneReport }
