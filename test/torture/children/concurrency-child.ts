/**
 * One of several processes hammering one cache directory, for the concurrency torture test:
 *   concurrency-child.ts ops <dir> <writer> <seed> <ops> <keys>   mixed operations, every read validated
 *   concurrency-child.ts prune <dir> <seed> <maxEntries>           prune (and verify) until told to stop
 * Sends `{ type: 'ready' }`, waits for `{ op: 'go' }` (so all start together; a pruner runs
 * until `{ op: 'stop' }`), then sends `{ type: 'result', ... }` and exits.
 */
import { once } from 'node:events'
import { Larder } from '../../../src/index.ts'
import { drain, makeBlob, makeRecord, prng, problemOf, randInt } from '../../children/shared.ts'

const [mode, dir, ...rest] = process.argv.slice(2)

async function* chunked(bytes: Buffer, step: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += step) yield bytes.subarray(at, at + step)
}

process.send!({ type: 'ready' })
const [go] = (await once(process, 'message')) as [{ op: string }]
if (go.op !== 'go') throw new Error(`expected go, got ${go.op}`)

if (mode === 'ops') {
  const [writer, seed, ops, keys] = rest.map(Number) as [number, number, number, number]
  const rand = prng(seed)
  // Half the processes keep a memory tier (another process's writes seen after its ttl).
  const cache = await Larder.open({ dir: dir!, maintenance: { interval: 0 }, memory: writer % 2 === 0 ? { maxEntries: 200, ttl: 50 } : false, compression: writer % 3 === 0 ? 'gzip' : 'deflate' })
  const corrupt: string[] = []
  const errors: string[] = []
  cache.on('corrupt', (info) => corrupt.push(`${info.key}: ${info.reason}`))
  cache.on('error', (e) => errors.push(e.message))
  const counts = { set: 0, get: 0, has: 0, delete: 0, getOrSet: 0, tagged: 0, invalidate: 0, setStream: 0, getStream: 0, increment: 0, validated: 0, misses: 0 }
  const wrong: string[] = []
  const thrown: string[] = []
  let counter = 0
  for (let i = 0; i < ops; i++) {
    const key = `shared-${randInt(rand, 0, keys - 1)}`
    const r = rand()
    const pad = rand() < 0.8 ? randInt(rand, 0, 3000) : randInt(rand, 5000, 80_000)
    try {
      if (r < 0.2) {
        await cache.set(key, rand() < 0.9 ? makeRecord(key, writer, i, pad) : makeBlob(key, writer, i, randInt(rand, 70_000, 150_000)))
        counts.set++
      } else if (r < 0.27) {
        await cache.set(key, makeRecord(key, writer, i, pad), { tags: [`t${randInt(rand, 0, 3)}`], ttl: rand() < 0.5 ? '1h' : 0 })
        counts.tagged++
      } else if (r < 0.29) {
        await cache.invalidateTags([`t${randInt(rand, 0, 3)}`])
        counts.invalidate++
      } else if (r < 0.55) {
        counts.get++
        const v = await cache.get(key)
        if (v === undefined) counts.misses++
        else {
          const p = problemOf(key, v)
          if (p === undefined) counts.validated++
          else wrong.push(`get ${key}: ${p}`)
        }
      } else if (r < 0.6) {
        await cache.has(key)
        counts.has++
      } else if (r < 0.66) {
        await cache.delete(key)
        counts.delete++
      } else if (r < 0.76) {
        counts.getOrSet++
        const v = await cache.getOrSet(key, () => makeRecord(key, writer, i, pad))
        const p = problemOf(key, v)
        if (p === undefined) counts.validated++
        else wrong.push(`getOrSet ${key}: ${p}`)
      } else if (r < 0.84) {
        const bytes = Buffer.from(JSON.stringify(makeRecord(key, writer, i, randInt(rand, 0, 300_000))))
        await cache.setStream(key, chunked(bytes, randInt(rand, 1000, 100_000)))
        counts.setStream++
      } else if (r < 0.95) {
        counts.getStream++
        const s = await cache.getStream(key)
        if (s === undefined) counts.misses++
        else {
          const p = problemOf(key, await drain(s))
          if (p === undefined) counts.validated++
          else wrong.push(`getStream ${key}: ${p}`)
        }
      } else {
        // Only this process increments its own counter: every update must land.
        counter = await cache.increment(`counter-${writer}`)
        counts.increment++
      }
    } catch (error) {
      thrown.push(`${key}: ${(error as Error).stack ?? String(error)}`)
    }
  }
  const finalCounter = await cache.get(`counter-${writer}`)
  const stats = await cache.stats()
  await cache.close()
  process.send!({ type: 'result', counts, wrong, thrown: thrown.slice(0, 5), thrownCount: thrown.length, corrupt, errors: errors.slice(0, 5), counter, finalCounter, stats: { errors: stats.errors, corrupt: stats.corrupt, dropped: stats.dropped } })
} else if (mode === 'prune') {
  const [seed, maxEntries] = rest.map(Number) as [number, number]
  const rand = prng(seed)
  const cache = await Larder.open({ dir: dir!, maintenance: { interval: 0 } })
  let stop = false
  process.on('message', (m: { op: string }) => {
    if (m.op === 'stop') stop = true
  })
  const totals = { prunes: 0, verifies: 0, evicted: 0, expired: 0, corrupt: 0, verifyCorrupt: 0 }
  const thrown: string[] = []
  while (!stop) {
    try {
      if (rand() < 0.8) {
        const report = await cache.prune({ maxEntries })
        totals.prunes++
        totals.evicted += report.evicted
        totals.expired += report.expired
        totals.corrupt += report.corrupt
      } else {
        const report = await cache.verify()
        totals.verifies++
        totals.verifyCorrupt += report.corrupt
      }
    } catch (error) {
      thrown.push((error as Error).stack ?? String(error))
    }
    await new Promise((resolve) => setTimeout(resolve, randInt(rand, 0, 20)))
  }
  await cache.close()
  process.send!({ type: 'result', totals, thrown })
}
process.disconnect()
