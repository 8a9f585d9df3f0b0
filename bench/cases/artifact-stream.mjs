// W5: one artifact of `mib` MiB streamed in from an async generator of fresh 1 MiB chunks, then
// streamed out by a new instance and compared byte for byte with what went in. Two kinds: a
// tar-like mix (about half compressible) and already-compressed bytes. MB/s (10⁶ bytes) and
// peak RSS growth. Only implementations with a streaming API take part.
import { artifactOf } from '../data.mjs'
import { diskBytes, rssSampler, seconds } from '../measure.mjs'
import { openStore } from './open.mjs'

const KEY = 'artifact:build-output.tar'

export async function streamPut(args) {
  const { mib, kind } = args
  const pool = artifactOf(kind)
  async function* source() {
    // A fresh copy per chunk, as from a network or a file: an implementation that buffers
    // chunks shows it in RSS instead of holding references to a shared pool.
    for (let i = 0; i < mib; i++) yield Buffer.from(pool[i % pool.length])
  }
  const store = await openStore(args)
  const rss = rssSampler()
  const started = performance.now()
  await store.setStream(KEY, source())
  const elapsed = seconds(started)
  const rssGrowthMiB = rss.stop()
  await store.check?.()
  await store.close()
  return {
    metrics: { mbPerSec: (mib * 2 ** 20) / 1e6 / elapsed, rssGrowthMiB },
    info: { seconds: elapsed, baselineRssMiB: rss.baseline / 2 ** 20, onDiskMiB: (await diskBytes(args.dir)) / 2 ** 20 },
  }
}

export async function streamGet(args) {
  const { mib, kind } = args
  const pool = artifactOf(kind)
  const store = await openStore(args, { memory: false })
  const rss = rssSampler()
  const started = performance.now()
  const stream = await store.getStream(KEY)
  if (stream === undefined) throw new Error('stream entry missing')
  // Compare every byte with the source, chunk boundaries wherever the implementation puts them.
  let offset = 0
  for await (const chunk of stream) {
    let at = 0
    while (at < chunk.length) {
      const block = Math.floor(offset / 2 ** 20)
      const within = offset % 2 ** 20
      const take = Math.min(chunk.length - at, 2 ** 20 - within)
      if (block >= mib || chunk.compare(pool[block % pool.length], within, within + take, at, at + take) !== 0) {
        throw new Error(`wrong bytes at offset ${offset}`)
      }
      at += take
      offset += take
    }
  }
  const elapsed = seconds(started)
  const rssGrowthMiB = rss.stop()
  if (offset !== mib * 2 ** 20) throw new Error(`streamed ${offset} bytes, expected ${mib * 2 ** 20}`)
  await store.check?.()
  await store.close()
  return { metrics: { mbPerSec: offset / 1e6 / elapsed, rssGrowthMiB }, info: { seconds: elapsed, baselineRssMiB: rss.baseline / 2 ** 20 } }
}
