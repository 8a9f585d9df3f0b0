import type { BreakerState, Stats } from '../index.js'
import type { ServerMetrics, Tally } from './metrics.js'
import { PROTOCOLS } from './metrics.js'
import type { Namespaces, NamespaceUse } from './namespaces.js'

/**
 * The figures `GET /api/cache/metrics` answers and the dashboard draws, built in one place so
 * the two always agree. The top level keeps the seeds' names for the cache API
 * (`hits`, `misses`, `hit_rate`, `sets`, `deletes`, `evictions`, `l1_size`, `l2_*`); `protocols`
 * has the same tallies per protocol, and `namespaces` each namespace's running totals.
 *
 * `l1_*` and `l2_*` are the cache API namespace's memory and shared (Redis, `--redis`) tiers,
 * from its `stats().tiers`; without `--redis`, `l2_*` are 0 and `l2` is `{ enabled: false }`.
 */
export interface NamespaceFigures {
  name: string
  protocol: NamespaceUse
  entries: number
  size_bytes: number
  budget_bytes: number | null
  breaker: BreakerState
}

export interface ProtocolFigures {
  hits: number
  misses: number
  hit_rate: number
  memory_hits: number
  file_hits: number
  sets: number
  deletes: number
  errors: number
  bytes_in: number
  bytes_out: number
}

export async function namespaceFigures(namespaces: Namespaces): Promise<NamespaceFigures[]> {
  const figures: NamespaceFigures[] = []
  for (const { name, protocol, cache } of await namespaces.all()) {
    const s = await cache.stats().catch(() => undefined)
    if (s === undefined) continue
    figures.push({
      name,
      protocol,
      entries: s.entries,
      size_bytes: s.size,
      budget_bytes: cache.options.maxSize ?? null,
      breaker: s.breaker.state,
    })
  }
  return figures.sort((a, b) => b.size_bytes - a.size_bytes)
}

export function protocolFigures(t: Tally): ProtocolFigures {
  return {
    hits: t.hits,
    misses: t.misses,
    hit_rate: rate(t.hits, t.misses),
    memory_hits: t.memoryHits,
    file_hits: t.fileHits,
    sets: t.sets,
    deletes: t.deletes,
    errors: t.errors,
    bytes_in: t.bytesIn,
    bytes_out: t.bytesOut,
  }
}

export function rate(hits: number, misses: number): number {
  return hits + misses === 0 ? 0 : hits / (hits + misses)
}

/** `api`: the cache API namespace's `stats()`; `memoryMax`: its memory tier's size. */
export async function metricsDocument(
  metrics: ServerMetrics,
  namespaces: Namespaces,
  api: Stats,
  memoryMax: number,
): Promise<Record<string, unknown>> {
  const shared = api.tiers.redis
  const tally = metrics.tally('api')
  const spaces = await namespaceFigures(namespaces)
  const protocols = Object.fromEntries(PROTOCOLS.map((p) => [p, protocolFigures(metrics.tally(p))]))
  const all = PROTOCOLS.map((p) => metrics.tally(p))
  const sum = (pick: (t: Tally) => number): number => all.reduce((n, t) => n + pick(t), 0)
  return {
    hits: tally.hits,
    misses: tally.misses,
    hit_rate: rate(tally.hits, tally.misses),
    sets: tally.sets,
    deletes: tally.deletes,
    evictions: metrics.evictions,
    errors: tally.errors,
    l1_size: api.memoryEntries,
    l1_max_entries: memoryMax,
    l1_hits: tally.memoryHits,
    file_hits: tally.fileHits,
    l2_hits: shared?.hits ?? 0,
    l2_misses: shared?.misses ?? 0,
    l2_errors: shared?.errors ?? 0,
    l2: l2Figures(shared),
    origin_fetches: tally.originFetches,
    origin_errors: tally.originErrors,
    total: {
      hits: sum((t) => t.hits),
      misses: sum((t) => t.misses),
      hit_rate: rate(
        sum((t) => t.hits),
        sum((t) => t.misses),
      ),
      bytes_in: sum((t) => t.bytesIn),
      bytes_out: sum((t) => t.bytesOut),
      entries: spaces.reduce((n, s) => n + s.entries, 0),
      size_bytes: spaces.reduce((n, s) => n + s.size_bytes, 0),
    },
    protocols,
    namespaces: spaces,
    uptime_s: Math.round((Date.now() - metrics.startedAt) / 1000),
  }
}

/** The shared tier as the management routes and the metrics show it. */
export function l2Figures(shared: Stats['tiers']['redis']): Record<string, unknown> {
  if (shared === undefined) return { enabled: false, hits: 0, misses: 0, errors: 0 }
  return {
    enabled: true,
    hits: shared.hits,
    misses: shared.misses,
    sets: shared.sets,
    errors: shared.errors,
    dropped: shared.dropped,
    breaker: shared.breaker?.state ?? 'closed',
  }
}
