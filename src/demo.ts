/**
 * `npm run demo`: larder's main job on its embedded default, a local cache directory.
 * Caches a slow computation, shows the cold and warm timings, then the cache's stats.
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import { Larder } from './index.js'

/** A deliberately slow, deterministic computation: 200k rounds of SHA-256. */
function slowReport(project: string): { project: string; digest: string; rows: { id: number; score: number }[] } {
  let digest = project
  for (let i = 0; i < 200_000; i++) digest = createHash('sha256').update(digest).digest('hex')
  const rows = Array.from({ length: 50 }, (_, id) => ({ id, score: parseInt(digest.slice(id % 60, (id % 60) + 4), 16) }))
  return { project, digest, rows }
}

async function timed<T>(label: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now()
  const value = await run()
  console.log(`${label.padEnd(34)} ${(performance.now() - started).toFixed(2).padStart(9)} ms`)
  return value
}

const dir = process.env.LARDER_DIR ?? path.join(process.cwd(), '.larder-cache')
const cache = await Larder.open({ dir, namespace: 'demo' })
const key = `report:${process.argv[2] ?? 'larder'}`
await cache.delete(key) // start cold every run

console.log(`larder demo — cache directory ${cache.dir}\n`)
await timed('cold: compute and store', () => cache.getOrSet(key, () => slowReport(key), { ttl: '1h', tags: ['reports'] }))
// Each instance counts its own calls: the warm reads are the other two's, so the stats shown
// at the end are the three instances' together.
const others: Array<Awaited<ReturnType<Larder['stats']>>> = []
await timed('warm: read from disk (new instance)', async () => {
  const reader = await Larder.open({ dir, namespace: 'demo' })
  const value = await reader.get(key)
  others.push(await reader.stats())
  await reader.close()
  return value
})
const memoryCache = await Larder.open({ dir, namespace: 'demo', memory: true })
await memoryCache.get(key)
await timed('warm: memory tier', () => memoryCache.get(key))
others.push(await memoryCache.stats())
await memoryCache.close()
await timed('invalidate tag "reports"', () => cache.invalidateTags(['reports']))
console.log(`after invalidation, get → ${JSON.stringify(await cache.get(key))}`)

const stats = await cache.stats()
const total = (count: 'hits' | 'misses' | 'sets' | 'corrupt' | 'errors' | 'bytesWritten' | 'bytesRead'): number =>
  others.reduce((sum, other) => sum + other[count], stats[count])
const hits = total('hits')
const misses = total('misses')
console.log(
  '\nstats of the three instances:',
  JSON.stringify(
    {
      hits,
      misses,
      hitRate: Number((hits / (hits + misses)).toFixed(2)),
      sets: total('sets'),
      corrupt: total('corrupt'),
      errors: total('errors'),
      bytesWritten: total('bytesWritten'),
      bytesRead: total('bytesRead'),
      breaker: stats.breaker.state,
      getP50ms: stats.latency.get.p50,
      setP50ms: stats.latency.set.p50,
    },
    null,
    2,
  ),
)
await cache.close()
