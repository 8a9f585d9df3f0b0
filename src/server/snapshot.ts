import type { BreakerState } from '../index.js'
import type { ServerMetrics, Tally } from './metrics.js'
import { PROTOCOLS } from './metrics.js'
import type { Namespaces, NamespaceUse } from './namespaces.js'

/**
 * The figures `GET /api/cache/metrics` answers and the dashboard draws, built in one place so
 * the two always agree. The top level keeps the seeds' names for the cache API
 * (`hits`, `misses`, `hit_rate`, `sets`, `deletes`, `evictions`, `l1_size`, `l2_*`); `protocols`
 * has the same tallies per protocol, and `namespaces` each namespace's running totals.
 *
 * `l2_*` are the shared (Redis) tier's: this server has none yet, so they are 0 and `l2` is
 * `{ enabled: false }`.
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
    figures.push({ name, protocol, entries: s.entries, size_bytes: s.size, budget_bytes: cache.options.maxSize ?? null, breaker: s.breaker.state })
  }
  return figures.sort((a, b) => b.size_bytes - a.size_bytes)
}

export function protocolFigures(t: Tally): ProtocolFigures {
  return {
    hits: t.hits, misses: t.misses, hit_rate: rate(t.hits, t.misses), memory_hits: t.memoryHits, file_hits: t.fileHits,
    sets: t.sets, deletes: t.deletes, errors: t.errors, bytes_in: t.bytesIn, bytes_out: t.bytesOut,
  }
}

export function rate(hits: number, misses: number): number {
  return hits + misses === 0 ? 0 : hits / (hits + misses)
}

export async function metricsDocument(metrics: ServerMetrics, namespaces: Namespaces, memory: { size: number; max: number }): Promise<Record<string, unknown>> {
  const api = metrics.tally('api')
  const spaces = await namespaceFigures(namespaces)
  const protocols = Object.fromEntries(PROTOCOLS.map((p) => [p, protocolFigures(metrics.tally(p))]))
  const all = PROTOCOLS.map((p) => metrics.tally(p))
  const sum = (pick: (t: Tally) => number): number => all.reduce((n, t) => n + pick(t), 0)
  return {
    hits: api.hits,
    misses: api.misses,
    hit_rate: rate(api.hits, api.misses),
    sets: api.sets,
    deletes: api.deletes,
    evictions: metrics.evictions,
    errors: api.errors,
    l1_size: memory.size,
    l1_max_entries: memory.max,
    l1_hits: api.memoryHits,
    file_hits: api.fileHits,
    l2_hits: 0,
    l2_misses: 0,
    l2_errors: 0,
    l2: { enabled: false },
    origin_fetches: api.originFetches,
    origin_errors: api.originErrors,
    total: {
      hits: sum((t) => t.hits), misses: sum((t) => t.misses), hit_rate: rate(sum((t) => t.hits), sum((t) => t.misses)),
      bytes_in: sum((t) => t.bytesIn), bytes_out: sum((t) => t.bytesOut),
      entries: spaces.reduce((n, s) => n + s.entries, 0), size_bytes: spaces.reduce((n, s) => n + s.size_bytes, 0),
    },
    protocols,
    namespaces: spaces,
    uptime_s: Math.round((Date.now() - metrics.startedAt) / 1000),
  }
}
