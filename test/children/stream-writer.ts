/**
 * Writes one version of a large artifact with setStream, for the crash tests:
 * `stream-writer.ts <dir> <key> <version> <size> [paceMs]`. Sends `{ type: 'loaded' }` and waits
 * for any message before it opens the cache; then sends `{ type: 'writing' }` just before
 * the write starts, `{ type: 'near-end' }` once the source has yielded 90 % of its bytes,
 * and `{ type: 'done' }` once the write has resolved; the parent may SIGKILL it at any
 * moment in between (or after). It exits on its own only when the parent disconnects.
 *
 * The source is paced to last at least `paceMs` (default 1000): larder's write path is fast
 * enough that an unpaced 32 MiB write can finish before a random kill lands, and a kill
 * that lands after the write proves nothing.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'
import { artifactChunks } from './shared.ts'

const [dir, key, version, size, pace] = process.argv.slice(2)
const total = Number(size)
const paceMs = Number(pace ?? 1000)

async function* source(): AsyncGenerator<Buffer> {
  let produced = 0
  let announced = false
  const started = performance.now()
  for (const chunk of artifactChunks({ version: Number(version), size: total })) {
    produced += chunk.length
    if (!announced && produced >= total * 0.9) {
      announced = true
      process.send!({ type: 'near-end' })
    }
    yield chunk
    const due = (produced / total) * paceMs - (performance.now() - started)
    if (due > 1) await delay(due)
  }
}

// Node, tsx and larder take about a second to load, so the parent starts the next writer
// while it still checks what the last one left, and lets it go (any message) only once that
// check is done: nothing is opened or written before then.
const go = new Promise((resolve) => process.once('message', resolve))
process.send!({ type: 'loaded' })
await go

const cache = await Larder.open({ dir: dir! })
process.send!({ type: 'writing' })
await cache.setStream(key!, source())
const stats = await cache.stats()
process.send!({ type: 'done', stats })
await cache.close()
// Stay alive until the parent kills us or lets go, so every exit is the parent's doing.
process.on('message', () => {})
process.on('disconnect', () => process.exit(0))
