/**
 * For the resource-hygiene torture test: `hygiene-child.ts <dir> <ops>`, run with --expose-gc.
 * Counts open file descriptors and RSS before opening a cache, during <ops> mixed operations
 * (with memory tier, streams, tags, prunes and verifies in worker threads), and after close.
 * Prints one JSON line, then returns from the module without calling process.exit: the
 * parent checks that the process ends on its own, i.e. that no timer, worker or handle of
 * larder keeps it alive.
 */
import fs from 'node:fs'
import { Larder } from '../../../src/index.ts'
import { makeRecord, prng, randInt } from '../../children/shared.ts'

const [dir, opsArg] = process.argv.slice(2)
const ops = Number(opsArg)
const gc = (globalThis as { gc?: () => void }).gc!
const fds = (): number => fs.readdirSync('/proc/self/fd').length
const rand = prng(ops)

async function drain(s: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0
  for await (const c of s) n += c.length
  return n
}

async function session(count: number): Promise<void> {
  const cache = await Larder.open({
    dir: dir!,
    memory: { maxEntries: 500 },
    maxEntries: 3000,
    maintenance: { interval: 50, tempMaxAge: 1000 },
  })
  for (let i = 0; i < count; i++) {
    const key = `h${randInt(rand, 0, 4000)}`
    const r = rand()
    if (r < 0.3)
      await cache.set(key, makeRecord(key, 1, i, randInt(rand, 0, 6000)), rand() < 0.2 ? { tags: [`t${i % 7}`], ttl: 60_000 } : undefined)
    else if (r < 0.7) await cache.get(key)
    else if (r < 0.75) await cache.has(key)
    else if (r < 0.8) await cache.delete(key)
    else if (r < 0.85) await cache.getOrSet(key, () => makeRecord(key, 2, i, 100))
    else if (r < 0.9) await cache.setStream(key, [Buffer.alloc(randInt(rand, 1, 200_000), i)])
    else if (r < 0.95) {
      const s = await cache.getStream(key)
      if (s !== undefined) await drain(s)
    } else if (r < 0.96) await cache.invalidateTags([`t${i % 7}`])
    else if (r < 0.9605) await cache.prune()
    else if (r < 0.961) await cache.verify()
    else await cache.increment(`n${i % 5}`)
  }
  await cache.close()
}

// Warm-up session: loads zlib, xxhash, the worker script, signal handlers.
await session(Math.min(2000, ops / 10))
gc()
const fdsBefore = fds()
const rss: number[] = []
// What JavaScript still holds after a full GC (heap, external memory, array buffers): unlike
// RSS, the allocator's keeping of freed pages does not move it, so it can be bounded tightly.
const held: number[] = []
const quarter = Math.floor(ops / 4)
for (let q = 0; q < 4; q++) {
  await session(quarter)
  gc()
  await new Promise((resolve) => setTimeout(resolve, 20))
  gc()
  const usage = process.memoryUsage()
  rss.push(usage.rss)
  held.push(usage.heapUsed + usage.external + usage.arrayBuffers)
}
const fdsAfter = fds()
const resources = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap' && r !== 'ProcessWrap')
console.log(JSON.stringify({ fdsBefore, fdsAfter, rss, held, resources, ops: quarter * 4 }))
