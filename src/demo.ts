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
await timed('warm: read from disk (new instance)', async () => {
  const reader = await Larder.open({ dir, namespace: 'demo' })
  const value = await reader.get(key)
  await reader.close()
  return value
})
const memoryCache = await Larder.open({ dir, namespace: 'demo', memory: true })
await memoryCache.get(key)
await timed('warm: memory tier', () => memoryCache.get(key))
await memoryCache.close()
await timed('invalidate tag "reports"', () => cache.invalidateTags(['reports']))
console.log(`after invalidation, get → ${JSON.stringify(await cache.get(key))}`)

const stats = await cache.stats()
console.log(
  '\nstats:',
  JSON.stringify(
    {
      hits: stats.hits,
      misses: stats.misses,
      sets: stats.sets,
      corrupt: stats.corrupt,
      errors: stats.errors,
      bytesWritten: stats.bytesWritten,
      bytesRead: stats.bytesRead,
      breaker: stats.breaker.state,
      getP50ms: stats.latency.get.p50,
      setP50ms: stats.latency.set.p50,
    },
    null,
    2,
  ),
)
await cache.close()
