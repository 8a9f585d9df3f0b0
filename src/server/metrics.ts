import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { NamespaceInfo, Protocol } from './namespaces.js'

/**
 * What the server counts, kept twice on purpose:
 * - Prometheus metrics (`GET /metrics`), monotonic counters as Prometheus requires, with
 *   gauges of entries, size, budget and breaker state read from each namespace's `stats()`
 *   (running totals: a few small files, never a scan) at scrape time;
 * - per-protocol tallies for the cache API's `GET /api/cache/metrics` and the dashboard, which
 *   `POST /cache/stats/reset` may zero (Prometheus counters are never reset).
 * Each registry is the server's own, so several servers in one process do not mix figures.
 */
export const PROTOCOLS: readonly Protocol[] = ['turbo', 'nx', 'ccache', 'bazel', 'api']

/** Which tier answered a hit: the in-process memory tier, the entry files, or the origin
 *  (a read-through fetch). The Redis tier joins once it exists. */
export type HitTier = 'memory' | 'file' | 'redis' | 'origin'

export interface Tally {
  hits: number
  misses: number
  memoryHits: number
  fileHits: number
  originFetches: number
  originErrors: number
  sets: number
  deletes: number
  errors: number
  bytesIn: number
  bytesOut: number
}

const emptyTally = (): Tally => ({
  hits: 0,
  misses: 0,
  memoryHits: 0,
  fileHits: 0,
  originFetches: 0,
  originErrors: 0,
  sets: 0,
  deletes: 0,
  errors: 0,
  bytesIn: 0,
  bytesOut: 0,
})

/** An automatic prune, as the dashboard lists it. */
export interface PruneRecord {
  namespace: string
  at: number
  evicted: number
  expired: number
  freedBytes: number
  remainingBytes: number
  durationMs: number
}

/** One point of the dashboard's hit-rate chart: each protocol's cumulative hits and misses. */
export interface HistoryPoint {
  t: number
  protocols: Partial<Record<Protocol, { hits: number; misses: number }>>
}

const BREAKER_STATES = ['closed', 'open', 'halfOpen'] as const
/** Prunes the dashboard remembers. */
const PRUNES_KEPT = 20
/** Points of history kept: an hour at one every 5 s. */
const HISTORY_KEPT = 720

export class ServerMetrics {
  readonly registry = new Registry()
  readonly startedAt = Date.now()
  #tallies = new Map<Protocol, Tally>(PROTOCOLS.map((p) => [p, emptyTally()]))
  #evictions = 0
  readonly prunes: PruneRecord[] = []
  readonly history: HistoryPoint[] = []
  readonly #hits: Counter<'protocol' | 'tier'>
  readonly #misses: Counter<'protocol'>
  readonly #bytesIn: Counter<'protocol'>
  readonly #bytesOut: Counter<'protocol'>
  readonly #writes: Counter<'protocol' | 'outcome'>
  readonly #evicted: Counter<'namespace'>
  readonly #teamsClosed: Counter
  readonly #origin: Counter<'outcome'>
  readonly #turboEvents: Counter<'source' | 'event'>
  readonly duration: Histogram<'method' | 'route' | 'status'>

  constructor(namespaces: () => Promise<NamespaceInfo[]>) {
    const registers = [this.registry]
    // Under the names every Node.js exporter gives them (`process_cpu_seconds_total`,
    // `nodejs_heap_size_used_bytes`), which dashboards and alerts look for: a prefix is
    // prepended to prom-client's own `process_` (`larder_process_process_…`).
    collectDefaultMetrics({ register: this.registry })
    this.#hits = new Counter({
      name: 'larder_cache_hits_total',
      help: 'Reads answered from the cache, by protocol and the tier that answered',
      labelNames: ['protocol', 'tier'],
      registers,
    })
    this.#misses = new Counter({
      name: 'larder_cache_misses_total',
      help: 'Reads the cache could not answer, by protocol',
      labelNames: ['protocol'],
      registers,
    })
    this.#bytesIn = new Counter({
      name: 'larder_bytes_in_total',
      help: 'Bytes of values and artifacts stored, by protocol',
      labelNames: ['protocol'],
      registers,
    })
    this.#bytesOut = new Counter({
      name: 'larder_bytes_out_total',
      help: 'Bytes of values and artifacts served, by protocol',
      labelNames: ['protocol'],
      registers,
    })
    this.#writes = new Counter({
      name: 'larder_writes_total',
      help: 'Writes by protocol and outcome (stored, refused, failed)',
      labelNames: ['protocol', 'outcome'],
      registers,
    })
    this.#evicted = new Counter({
      name: 'larder_evictions_total',
      help: 'Entries evicted by automatic prunes to keep the budget, by namespace',
      labelNames: ['namespace'],
      registers,
    })
    this.#teamsClosed = new Counter({
      name: 'larder_team_namespaces_closed_total',
      help: 'Idle team namespaces closed to make room for another team (--max-teams)',
      registers,
    })
    this.#origin = new Counter({
      name: 'larder_origin_fetches_total',
      help: 'Read-through fetches from the origin, by outcome',
      labelNames: ['outcome'],
      registers,
    })
    this.#turboEvents = new Counter({
      name: 'larder_turbo_events_total',
      help: 'Cache events turbo reported (POST /v8/artifacts/events)',
      labelNames: ['source', 'event'],
      registers,
    })
    this.duration = new Histogram({
      name: 'larder_http_request_duration_seconds',
      help: 'Request duration by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    // One collect fills all four gauges, so a scrape reads each namespace's totals once.
    let collecting: Promise<void> | undefined
    const collect = (): Promise<void> =>
      (collecting ??= collectAll().finally(() => {
        collecting = undefined
      }))
    const entries = new Gauge({
      name: 'larder_entries',
      help: 'Entries on disk per namespace (running totals)',
      labelNames: ['namespace'],
      registers,
      collect,
    })
    const size = new Gauge({
      name: 'larder_size_bytes',
      help: 'Bytes of entry files per namespace (running totals)',
      labelNames: ['namespace'],
      registers,
      collect,
    })
    const budget = new Gauge({
      name: 'larder_budget_bytes',
      help: "Each namespace's size budget (absent: none)",
      labelNames: ['namespace'],
      registers,
      collect,
    })
    const breaker = new Gauge({
      name: 'larder_breaker_state',
      help: 'The disk circuit breaker of each namespace: 1 for its current state',
      labelNames: ['namespace', 'state'],
      registers,
      collect,
    })
    const collectAll = async (): Promise<void> => {
      const figures = await Promise.all(
        (await namespaces()).map(async ({ name, cache }) => ({ name, cache, s: await cache.stats().catch(() => undefined) })),
      )
      entries.reset()
      size.reset()
      budget.reset()
      breaker.reset()
      for (const { name, cache, s } of figures) {
        if (s === undefined) continue
        entries.set({ namespace: name }, s.entries)
        size.set({ namespace: name }, s.size)
        if (cache.options.maxSize !== undefined) budget.set({ namespace: name }, cache.options.maxSize)
        for (const state of BREAKER_STATES) breaker.set({ namespace: name, state }, s.breaker.state === state ? 1 : 0)
      }
    }
  }

  tally(protocol: Protocol): Tally {
    return this.#tallies.get(protocol)!
  }

  hit(protocol: Protocol, tier: HitTier): void {
    const t = this.tally(protocol)
    t.hits++
    if (tier === 'memory') t.memoryHits++
    else if (tier === 'file') t.fileHits++
    this.#hits.inc({ protocol, tier })
  }

  miss(protocol: Protocol): void {
    this.tally(protocol).misses++
    this.#misses.inc({ protocol })
  }

  stored(protocol: Protocol, bytes: number): void {
    const t = this.tally(protocol)
    t.sets++
    t.bytesIn += bytes
    this.#bytesIn.inc({ protocol }, bytes)
    this.#writes.inc({ protocol, outcome: 'stored' })
  }

  /** An idle team namespace closed to make room for another (--max-teams). */
  teamClosed(): void {
    this.#teamsClosed.inc()
  }

  /** A write the server refused on purpose (an existing Nx hash, a read-only token). */
  refused(protocol: Protocol): void {
    this.#writes.inc({ protocol, outcome: 'refused' })
  }

  /** A disk failure met by a read or a write (the read answered as a miss). */
  failed(protocol: Protocol, write: boolean): void {
    this.tally(protocol).errors++
    if (write) this.#writes.inc({ protocol, outcome: 'failed' })
  }

  sent(protocol: Protocol, bytes: number): void {
    this.tally(protocol).bytesOut += bytes
    this.#bytesOut.inc({ protocol }, bytes)
  }

  deleted(protocol: Protocol, count = 1): void {
    this.tally(protocol).deletes += count
  }

  originFetched(ok: boolean): void {
    const t = this.tally('api')
    if (ok) t.originFetches++
    else t.originErrors++
    this.#origin.inc({ outcome: ok ? 'ok' : 'error' })
  }

  turboEvent(source: string, event: string): void {
    this.#turboEvents.inc({ source, event })
  }

  pruned(namespace: string, report: PruneRecord): void {
    this.#evictions += report.evicted
    this.#evicted.inc({ namespace }, report.evicted)
    this.prunes.unshift(report)
    this.prunes.length = Math.min(this.prunes.length, PRUNES_KEPT)
  }

  get evictions(): number {
    return this.#evictions
  }

  /** Adds a point to the history (app.ts calls this every 5 s, and the dashboard's data route
   *  once per call, so a page always ends on the figures of the moment). */
  sample(): HistoryPoint {
    const point: HistoryPoint = { t: Date.now(), protocols: {} }
    for (const p of PROTOCOLS) {
      const t = this.tally(p)
      point.protocols[p] = { hits: t.hits, misses: t.misses }
    }
    return point
  }

  record(): void {
    this.history.push(this.sample())
    if (this.history.length > HISTORY_KEPT) this.history.splice(0, this.history.length - HISTORY_KEPT)
  }

  /** `POST /cache/stats/reset`: zeroes the tallies (not the Prometheus counters). */
  reset(): void {
    this.#tallies = new Map(PROTOCOLS.map((p) => [p, emptyTally()]))
    this.#evictions = 0
  }
}
