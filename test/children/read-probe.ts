/**
 * Measures what one read of one entry costs in resident memory:
 * `read-probe.ts <dir> <key> <get|getStream> [options JSON]`, run with --expose-gc.
 * Warms larder up on a small entry of its own, takes a baseline RSS after a GC, samples RSS
 * every 5 ms through the read (and once right after it, before anything can be collected),
 * and reports the peak growth, what the read answered, and the cache's counters.
 */
import { existsSync } from 'node:fs'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { entryPathOf, loadHasher } from './forge.ts'

const [dir, key, op, optionsJson] = process.argv.slice(2) as [string, string, 'get' | 'getStream', string | undefined]
const gc = (globalThis as { gc?: () => void }).gc
await loadHasher()

const options: LarderOptions = { dir, maintenance: false, ...(optionsJson === undefined ? {} : (JSON.parse(optionsJson) as LarderOptions)) }
const cache = await Larder.open(options)
await cache.set('read-probe:warm-up', { warm: 'x'.repeat(100_000) })
await cache.get('read-probe:warm-up')
const warm = await cache.getStream('read-probe:warm-up')
for await (const chunk of warm!) void chunk
gc?.()
await new Promise((resolve) => setImmediate(resolve))

const baseline = process.memoryUsage().rss
let peak = baseline
const sample = (): void => {
  const rss = process.memoryUsage().rss
  if (rss > peak) peak = rss
}
const sampler = setInterval(sample, 5)

let outcome:
  | { kind: 'value'; type: string; length: number | undefined }
  | { kind: 'miss' }
  | { kind: 'error'; code: string | undefined; message: string }
try {
  if (op === 'get') {
    const value = await cache.get(key)
    sample()
    outcome =
      value === undefined
        ? { kind: 'miss' }
        : {
            kind: 'value',
            type: Buffer.isBuffer(value) ? 'buffer' : typeof value,
            length: Buffer.isBuffer(value) || typeof value === 'string' ? value.length : undefined,
          }
  } else {
    const stream = await cache.getStream(key)
    if (stream === undefined) outcome = { kind: 'miss' }
    else {
      let length = 0
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        length += chunk.length
        sample()
      }
      outcome = { kind: 'value', type: 'stream', length }
    }
  }
} catch (error) {
  sample()
  const e = error as { code?: string; message?: string }
  outcome = { kind: 'error', code: e.code, message: e.message ?? String(error) }
}
clearInterval(sampler)
const stats = await cache.stats()
await cache.close()
process.send!({
  type: 'result',
  growth: peak - baseline,
  outcome,
  entryStillThere: existsSync(entryPathOf(dir, key)),
  stats: { corrupt: stats.corrupt, errors: stats.errors, misses: stats.misses, breaker: stats.breaker.state },
})
process.disconnect()
