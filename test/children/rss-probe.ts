/**
 * Measures the memory larder holds while it streams a large artifact in and out:
 * `rss-probe.ts <dir> <size> <kind>` (kind: 'mixed' or 'random'), run with --expose-gc, with
 * the cache's default options (adaptive stream compression).
 *
 * A process's resident set while 512 MiB flow through it is mostly not what anyone holds:
 * every MiB streamed leaves about 2 MiB of dead buffers (the source's chunks, larder's
 * blocks), resident until V8 has marked them dead and its background threads have swept
 * them (on a loaded machine, tens of MiB later: see test/stream.test.ts), and glibc then
 * keeps the space they freed for its next allocations. So the probe measures what is held:
 * every 32 MiB of the stream (as setStream pulls it, and as getStream's consumer receives it)
 * it collects garbage twice (the second collection finishes the first one's concurrent sweep
 * of array buffers) and reads the memory V8 and Node account for: the live heap plus external
 * memory (every Buffer, and zlib's native state). Whatever larder keeps (frames queued or
 * compressing, buffers of writes or reads in flight, a copy of the value) is live at those
 * moments, so it is counted. The plain RSS peak (sampled every 10 ms, garbage and the
 * allocator's keep included) is reported as well.
 */
import { createHash } from 'node:crypto'
import { Larder } from '../../src/index.ts'
import { artifactChunks, digestStream, MiB, type ArtifactSpec } from './shared.ts'

/** Stream bytes between two readings of what is held. */
const HELD_EVERY = 32 * MiB

const [dir, sizeArg, kindArg] = process.argv.slice(2)
const size = Number(sizeArg)
const kind = kindArg as 'mixed' | 'random'
const gc = (globalThis as { gc?: () => void }).gc

interface Held {
  peak: number
  arrayBuffers: number
  samples: number
  /** Time spent collecting for the readings (part of the stream's time). */
  ms: number
}

/** What is held now: resident memory once everything dead has been collected and freed. */
function readHeld(into: Held): void {
  const started = performance.now()
  gc?.()
  gc?.()
  const { heapUsed, external, arrayBuffers } = process.memoryUsage()
  into.peak = Math.max(into.peak, heapUsed + external)
  into.arrayBuffers = Math.max(into.arrayBuffers, arrayBuffers)
  into.samples++
  into.ms += performance.now() - started
}

/** A reading to measure growth from (not counted as a sample). */
function heldNow(): Held {
  const held = { peak: 0, arrayBuffers: 0, samples: 0, ms: 0 }
  readHeld(held)
  held.samples = 0
  held.ms = 0
  return held
}

const cache = await Larder.open({ dir: dir! })

// eslint-disable-next-line @typescript-eslint/require-await -- an async iterable on purpose (the shape setStream takes); nothing to await
async function* hashed(
  spec: ArtifactSpec,
  into: { hash: ReturnType<typeof createHash>; length: number },
  held?: Held,
): AsyncGenerator<Buffer> {
  for (const chunk of artifactChunks(spec)) {
    into.hash.update(chunk)
    if (held !== undefined && Math.floor((into.length + chunk.length) / HELD_EVERY) > Math.floor(into.length / HELD_EVERY)) {
      readHeld(held)
    }
    into.length += chunk.length
    yield chunk
  }
}

/** getStream's output digested, with what is held read every HELD_EVERY bytes received. */
async function digestHeld(stream: AsyncIterable<Uint8Array>, held: Held): Promise<{ sha256: string; length: number }> {
  const hash = createHash('sha256')
  let length = 0
  for await (const c of stream) {
    hash.update(c)
    if (Math.floor((length + c.length) / HELD_EVERY) > Math.floor(length / HELD_EVERY)) readHeld(held)
    length += c.length
  }
  return { sha256: hash.digest('hex'), length }
}

// Warm-up: load zlib, compile the hot paths, size the pools.
await cache.setStream('warm-up', hashed({ version: 1, size: 4 * MiB, kind }, { hash: createHash('sha256'), length: 0 }))
await digestStream((await cache.getStream('warm-up'))!)
await new Promise((resolve) => setImmediate(resolve))

const setHeld = heldNow()
const baseline = { held: setHeld.peak, arrayBuffers: setHeld.arrayBuffers, rss: process.memoryUsage().rss }
let rssPeak = baseline.rss
let rssSamples = 0
const sampler = setInterval(() => {
  rssSamples++
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
}, 10)

const source = { hash: createHash('sha256'), length: 0 }
let started = performance.now()
await cache.setStream('big', hashed({ version: 2, size, kind }, source, setHeld))
const setMs = performance.now() - started
const set = { ...setHeld, rssPeak, rssSamples }

// The read is measured from its own baseline: what the write left behind is not its growth.
const getHeld = heldNow()
const getBaseline = { held: getHeld.peak, arrayBuffers: getHeld.arrayBuffers, rss: process.memoryUsage().rss }
rssPeak = getBaseline.rss
rssSamples = 0
started = performance.now()
const stream = await cache.getStream('big')
const read = stream === undefined ? undefined : await digestHeld(stream, getHeld)
const getMs = performance.now() - started
clearInterval(sampler)
const get = { ...getHeld, rssPeak, rssSamples }
const stats = await cache.stats()
await cache.close()

process.send!({
  type: 'result',
  baseline,
  getBaseline,
  set,
  get,
  setMs,
  getMs,
  gcExposed: gc !== undefined,
  source: { sha256: source.hash.digest('hex'), length: source.length },
  read,
  stats: { corrupt: stats.corrupt, errors: stats.errors, bytesWritten: stats.bytesWritten },
})
process.disconnect()
