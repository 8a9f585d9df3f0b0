/**
 * Measures resident memory while larder streams a large artifact in and out:
 * `rss-probe.ts <dir> <size> <kind>` (kind: 'mixed' or 'random'), run with --expose-gc, with
 * the cache's default options (adaptive stream compression).
 * Samples process.memoryUsage().rss every 10 ms from a baseline taken after a warm-up,
 * through setStream and then getStream, and reports the peaks and both digests.
 */
import { createHash } from 'node:crypto'
import { Larder } from '../../src/index.ts'
import { artifactChunks, digestStream, MiB, type ArtifactSpec } from './shared.ts'

const [dir, sizeArg, kindArg] = process.argv.slice(2)
const size = Number(sizeArg)
const kind = kindArg as 'mixed' | 'random'
const gc = (globalThis as { gc?: () => void }).gc

const cache = await Larder.open({ dir: dir! })

// eslint-disable-next-line @typescript-eslint/require-await -- an async iterable on purpose (the shape setStream takes); nothing to await
async function* hashed(spec: ArtifactSpec, into: { hash: ReturnType<typeof createHash>; length: number }): AsyncGenerator<Buffer> {
  for (const chunk of artifactChunks(spec)) {
    into.hash.update(chunk)
    into.length += chunk.length
    yield chunk
  }
}

// Warm-up: load zlib, compile the hot paths, size the pools.
await cache.setStream('warm-up', hashed({ version: 1, size: 4 * MiB, kind }, { hash: createHash('sha256'), length: 0 }))
await digestStream((await cache.getStream('warm-up'))!)
gc?.()
await new Promise((resolve) => setImmediate(resolve))

const baseline = process.memoryUsage().rss
let peak = baseline
let samples = 0
const sampler = setInterval(() => {
  const rss = process.memoryUsage().rss
  samples++
  if (rss > peak) peak = rss
}, 10)

const source = { hash: createHash('sha256'), length: 0 }
let started = performance.now()
await cache.setStream('big', hashed({ version: 2, size, kind }, source))
const setMs = performance.now() - started
const setPeak = peak
const setSamples = samples
// The read is measured from its own baseline: what the write left behind is not its growth.
gc?.()
const getBaseline = process.memoryUsage().rss
peak = getBaseline

started = performance.now()
const stream = await cache.getStream('big')
const read = stream === undefined ? undefined : await digestStream(stream)
const getMs = performance.now() - started
clearInterval(sampler)
const stats = await cache.stats()
await cache.close()

process.send!({
  type: 'result',
  baseline,
  getBaseline,
  setPeak,
  getPeak: peak,
  setSamples,
  getSamples: samples - setSamples,
  setMs,
  getMs,
  gcExposed: gc !== undefined,
  source: { sha256: source.hash.digest('hex'), length: source.length },
  read,
  stats: { corrupt: stats.corrupt, errors: stats.errors, bytesWritten: stats.bytesWritten },
})
process.disconnect()
