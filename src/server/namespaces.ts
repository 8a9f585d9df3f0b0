import fs from 'node:fs'
import { finished } from 'node:stream'
import { mergeOptions } from '../config/option-paths.js'
import { loadHasher } from '../format/checksum.js'
import { Larder, type LarderOptions, type PruneReport } from '../index.js'
import { type ResolvedOptions, resolveOptions } from '../options.js'
import { Layout } from '../store/layout.js'
import { readNamespaceName } from '../store/namespace-name.js'
import { SERVE_DEFAULTS, type ServeOptions } from './options.js'

/**
 * One larder namespace per tool and team (`turbo:<team>`, `nx`, `nx:<team>`, `ccache`, `bazel`,
 * `api`), each a `Larder` opened on first use. Namespaces isolate teams (a hash of one team is
 * never found by another) and carry their own budget (`--max-size` applies to each).
 *
 * The server's own namespaces stay open until it stops. Team namespaces are bounded
 * (`--max-teams`): past the bound, the team used least recently that no request is using is
 * closed to make room (its entries stay on disk; its next request opens it again). A request
 * holds its team's namespace until its response ends (`user`), so a transfer never loses its
 * cache under it; only when every open team is answering a request is a new one refused.
 *
 * Every instance is opened with `failOpen: false`: the server must know when the disk failed
 * so that each protocol can answer as its client copes best (a miss, a skipped upload), instead
 * of reporting an upload stored that was dropped.
 */
export type Protocol = 'turbo' | 'nx' | 'ccache' | 'bazel' | 'api'

/** `health`: the namespace `GET /readyz` writes a probe into; `shared-health` the same in
 *  the shared tier alone (with `--redis`: no memory tier, no files). */
export type NamespaceUse = Protocol | 'health' | 'shared-health'

export interface NamespaceInfo {
  name: string
  protocol: NamespaceUse
  cache: Larder
}

/** How many team namespaces (`turbo:<team>`, `nx:<team>`) one server keeps open by default
 *  (`--max-teams`): each holds timers, a breaker and a worker pool slot, and team names come
 *  from clients. The server's own (`nx`, `ccache`, `bazel`, `api`, the health probes) always
 *  open: clients naming teams cannot take their room. */
export const MAX_NAMESPACES = SERVE_DEFAULTS.maxTeams

/** The most bytes the cache API's memory tier holds (besides --memory-entries). */
export const API_MEMORY_BYTES = 256 * 1024 * 1024

/** Whether a namespace name is a team's (chosen by a client), counted against MAX_NAMESPACES. */
const isTeam = (name: string): boolean => name.startsWith('turbo:') || name.startsWith('nx:')

export class TooManyNamespacesError extends Error {}

/** A namespace whose directory (`ns-<xxhash64 of its name>`) is another namespace's: two team
 *  names whose hashes are alike, which a client can craft (xxhash64 is no cryptographic hash). */
export class NamespaceCollisionError extends Error {}

/** What a request's namespace is held by: its response (`reply.raw`), until it ends. */
export type NamespaceUser = NodeJS.WritableStream

export class Namespaces {
  readonly #options: ServeOptions
  /** Opening or open, in the order of their last use (a team's use moves it to the end). */
  readonly #open = new Map<string, Promise<NamespaceInfo>>()
  /** The open ones among them: a team still opening is not closed. */
  readonly #ready = new Map<string, NamespaceInfo>()
  /** Responses in progress per team namespace: a team in use is never closed. */
  readonly #users = new Map<string, number>()
  /** Closes of idle teams in progress: a team opened again waits for its close. */
  readonly #closing = new Map<string, Promise<void>>()
  /** The directory of each namespace opening or open, with its name: one directory, one name. */
  readonly #directories = new Map<string, string>()
  readonly #opened: (info: NamespaceInfo) => void
  readonly #closedIdle: (name: string) => void
  #closed = false

  /** `opened` is told of each namespace once it is open (metrics and events hook in there),
   *  `closedIdle` of each idle team closed to make room. */
  constructor(options: ServeOptions, opened: (info: NamespaceInfo) => void, closedIdle: (name: string) => void = () => {}) {
    this.#options = options
    this.#opened = opened
    this.#closedIdle = closedIdle
  }

  /** The namespace's cache, opened on first use; held open for `user` until it ends. */
  async get(name: string, protocol: NamespaceUse, user?: NamespaceUser): Promise<Larder> {
    return (await this.info(name, protocol, user)).cache
  }

  /**
   * The namespace's cache for a read: open already, or opened if its directory exists; else
   * undefined, a miss with nothing opened or created (a read, with a read token, naming teams
   * that never wrote must not fill the server's namespaces or its disk). A team that did
   * write, past the bound of open team namespaces, is a miss too: a read is never a 5xx (nx
   * fails its run on one), and the uploads refused with 507 tell the operator to raise it.
   */
  async forReading(name: string, protocol: NamespaceUse, user?: NamespaceUser): Promise<Larder | undefined> {
    if (!this.#open.has(name) && !this.#closed) {
      await loadHasher()
      if (!fs.existsSync(new Layout(this.#options.dir, name).namespaceDir)) return undefined
    }
    try {
      return await this.get(name, protocol, user)
    } catch (error) {
      if (error instanceof TooManyNamespacesError || error instanceof NamespaceCollisionError) return undefined
      throw error
    }
  }

  info(name: string, protocol: NamespaceUse, user?: NamespaceUser): Promise<NamespaceInfo> {
    if (this.#closed) return Promise.reject(new Error('the server is shutting down'))
    const team = isTeam(name)
    let found = this.#open.get(name)
    if (found === undefined) {
      if (team && this.#teams() >= this.#options.maxTeams && !this.#closeIdleTeam())
        return Promise.reject(
          new TooManyNamespacesError(
            `this server already serves ${this.#options.maxTeams} team namespaces, each answering a request now (its operator can raise --max-teams)`,
          ),
        )
      const opening = this.#openNamespace(name, protocol)
      found = opening
      this.#open.set(name, opening)
      opening.then(
        (info) => {
          if (this.#open.get(name) === opening) this.#ready.set(name, info)
        },
        () => {
          if (this.#open.get(name) === opening) this.#open.delete(name)
        },
      )
    } else if (team) {
      // Used now: moved to the end, away from the next close.
      this.#open.delete(name)
      this.#open.set(name, found)
    }
    // Taken before anything is awaited, so no other request can close it in between.
    if (team && user !== undefined) this.#hold(name, user)
    return found
  }

  #hold(name: string, user: NamespaceUser): void {
    this.#users.set(name, (this.#users.get(name) ?? 0) + 1)
    let held = true
    finished(user, () => {
      if (!held) return
      held = false
      const left = this.#users.get(name)! - 1
      if (left === 0) this.#users.delete(name)
      else this.#users.set(name, left)
    })
  }

  /** Closes the team used least recently that is open and that no request uses; false when
   *  every team is opening or in use. */
  #closeIdleTeam(): boolean {
    for (const name of this.#open.keys()) {
      const info = this.#ready.get(name)
      if (!isTeam(name) || info === undefined || this.#users.has(name)) continue
      this.#open.delete(name)
      this.#ready.delete(name)
      // Its directory records its name: a name that hashes alike is still refused there.
      this.#directories.delete(new Layout(this.#options.dir, name).namespaceDir)
      const closing: Promise<void> = info.cache
        .close()
        .catch(() => {})
        .finally(() => {
          if (this.#closing.get(name) === closing) this.#closing.delete(name)
        })
      this.#closing.set(name, closing)
      this.#closedIdle(name)
      return true
    }
    return false
  }

  #teams(): number {
    let teams = 0
    for (const name of this.#open.keys()) if (isTeam(name)) teams++
    return teams
  }

  /** The cache API's shared tier: `--redis`, else the `redis` of the config file or the
   *  environment (which the API's namespace takes too); undefined without one. /readyz probes
   *  it, `DELETE /cache/l2` clears it. */
  get sharedRedis(): LarderOptions['redis'] {
    return this.#options.redis ?? (this.#options.cacheOptions as { redis?: LarderOptions['redis'] }).redis
  }

  /** Every namespace opened so far. */
  async all(): Promise<NamespaceInfo[]> {
    const settled = await Promise.allSettled(this.#open.values())
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  }

  /** Closes every instance (waiting for their writes); later `get`s reject. */
  async close(): Promise<void> {
    this.#closed = true
    const all = await this.all()
    this.#open.clear()
    this.#ready.clear()
    await Promise.allSettled([...all.map((n) => n.cache.close()), ...this.#closing.values()])
  }

  async #openNamespace(name: string, protocol: NamespaceUse): Promise<NamespaceInfo> {
    // The same directory closing for want of room finishes first (its last writes, its totals).
    await this.#closing.get(name)
    const directory = await this.#claimDirectory(name)
    try {
      const cache = await Larder.open(this.optionsOf(name, protocol))
      const info: NamespaceInfo = { name, protocol, cache }
      this.#opened(info)
      return info
    } catch (error) {
      this.#directories.delete(directory)
      throw error
    }
  }

  /**
   * Takes the namespace's directory for it, or throws NamespaceCollisionError if the directory
   * is another namespace's: one open in this server, or the name recorded in it (`meta/name`)
   * by whoever opened it before. Namespaces are directories named by a 64-bit xxhash of their
   * name, and a client can craft a team name whose hash is another team's: it would read and
   * overwrite that team's artifacts, past the namespace tokens that keep teams apart.
   */
  async #claimDirectory(name: string): Promise<string> {
    await loadHasher()
    const layout = new Layout(this.#options.dir, name)
    const directory = layout.namespaceDir
    const holder = this.#directories.get(directory)
    // Checked and taken with no await between: of two names opening at once, the first wins.
    if ((holder !== undefined && holder !== name) || (holder === undefined && !this.#recordedAs(layout, name)))
      throw new NamespaceCollisionError(
        `The namespace ${name} cannot be opened: its directory holds another namespace whose name hashes alike (choose another name)`,
      )
    this.#directories.set(directory, name)
    return directory
  }

  /** Whether the directory records this name, or none (new, or made before names were recorded). */
  #recordedAs(layout: Layout, name: string): boolean {
    const recorded = readNamespaceName(layout)
    return recorded === undefined || recorded === name
  }

  /** The options of a namespace: those of the config file and environment
   *  (`cacheOptions`), under the ones this server chooses for the protocol. Read again by a
   *  config reload (server/config-reload.ts), which applies the difference. */
  optionsOf(name: string, protocol: NamespaceUse): LarderOptions {
    const chosen = { dir: this.#options.dir, ...this.#optionsFor(protocol), namespace: name }
    if (protocol === 'shared-health') return chosen
    const given = this.#options.cacheOptions as Record<string, unknown>
    return mergeOptions(protocol === 'api' ? given : without(given, NOT_FOR_ARTIFACTS), chosen)
  }

  /** The options of a namespace as resolved: its cache's when open, else those it would open
   *  with (an upload over its budget is refused before opening it would create it). */
  resolvedOptionsOf(name: string, protocol: NamespaceUse): Readonly<ResolvedOptions> {
    return this.#ready.get(name)?.cache.options ?? resolveOptions(this.optionsOf(name, protocol))
  }

  /** Throws the error a namespace of each kind would fail to open with under these options
   *  (a value that validates for larder but not beside what the server chooses), naming it. */
  checkOptions(): void {
    for (const protocol of ['api', 'turbo', ...(this.sharedRedis === undefined ? [] : ['shared-health' as const])] as const) {
      let resolved: ResolvedOptions
      try {
        resolved = resolveOptions(this.optionsOf(protocol === 'turbo' ? 'turbo:check' : protocol, protocol))
      } catch (error) {
        throw new Error(`${protocol === 'turbo' ? 'artifact' : protocol} namespaces: ${(error as Error).message}`, { cause: error })
      }
      // A server stores what it is sent and probes its disk with a write: read-only, every
      // upload and /readyz was a 500, in a server that had started as if all was well.
      if (resolved.readOnly)
        throw new Error(
          'readOnly: a server stores what it is sent, so it cannot serve a read-only cache (set by LARDER_READ_ONLY or the config file)',
        )
    }
  }

  #optionsFor(protocol: NamespaceUse): LarderOptions {
    const budget = this.#options.maxSize === undefined ? {} : { maxSize: this.#options.maxSize }
    if (protocol === 'shared-health') return { dir: false, memory: false, redis: this.sharedRedis, failOpen: false }
    if (protocol === 'api') {
      return {
        ...budget,
        // The shared tier (--redis) serves the cache API only: its values are small, and
        // several replicas share them and their invalidations. Artifacts stay on each
        // replica's disk (larder keeps streams local anyway).
        ...(this.#options.redis === undefined ? {} : { redis: this.#options.redis }),
        failOpen: false,
        // Bounded in bytes too: a value may be up to 64 MiB (MAX_JSON_BODY).
        memory: this.#options.memoryEntries > 0 ? { maxEntries: this.#options.memoryEntries, maxSize: API_MEMORY_BYTES } : false,
        defaultTtl: this.#options.defaultTtl,
      }
    }
    // Artifacts arrive compressed (turbo: tar.zst, nx: tar.gz, ccache: zstd), so compressing
    // them again would cost CPU for nothing: they are stored as they come. (The health probe
    // is a few bytes, stored the same way.)
    // Nor are they held in memory: they are large, and read once per build.
    return { ...budget, failOpen: false, compression: 'none', serializer: 'raw', memory: false }
  }
}

/**
 * Options of the config file and environment that artifact namespaces do not take: the shared
 * tier is the cache API's (artifacts stay on each replica's disk, and with `failOpen: false`
 * every upload would wait on Redis, and an outage would drop them all), and artifacts are
 * stored as they come (no compression level applies to `compression: 'none'`).
 */
const NOT_FOR_ARTIFACTS = ['redis', 'writeStrategy', 'writeBack', 'bus', 'compressionLevel']

function without(options: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const kept = { ...options }
  for (const name of names) delete kept[name]
  return kept
}

export type { PruneReport }
