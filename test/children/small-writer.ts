/**
 * Stores buffered entries with `set` as fast as it can, forever, for the crash tests:
 * `small-writer.ts <dir> <writer> <seed> <keys>`. Four writes are in flight at a time, over
 * keys `small-0 … small-<keys-1>`: self-checking records (mostly small; some compressible
 * tens of KiB) and self-checking blobs of 70–150 KiB of incompressible bytes (the async
 * write path). Sends `{ type: 'loaded' }` and waits for any message before it opens the cache;
 * sends `{ type: 'writing' }` after its first 40 writes; the parent SIGKILLs it.
 */
import { Larder } from '../../src/index.ts'
import { makeBlob, makeRecord, prng, randInt } from './shared.ts'

const [dir, writerArg, seedArg, keysArg] = process.argv.slice(2)
const writer = Number(writerArg)
const keys = Number(keysArg)
const rand = prng(Number(seedArg))
// Node, tsx and larder take about a second to load, so the parent starts the next writer
// while it still checks what the last one left, and lets it go (any message) only once that
// check is done: nothing is opened or written before then.
const go = new Promise((resolve) => process.once('message', resolve))
process.send!({ type: 'loaded' })
await go
const cache = await Larder.open({ dir: dir! })
let seq = 0
let announced = false

async function loop(): Promise<never> {
  for (;;) {
    const key = `small-${randInt(rand, 0, keys - 1)}`
    const roll = rand()
    const n = seq++
    if (roll < 0.7) await cache.set(key, makeRecord(key, writer, n, randInt(rand, 0, 3000)))
    else if (roll < 0.85) await cache.set(key, makeRecord(key, writer, n, randInt(rand, 5000, 50_000)))
    else await cache.set(key, makeBlob(key, writer, n, randInt(rand, 70_000, 150_000)))
    if (!announced && seq >= 40) {
      announced = true
      process.send!({ type: 'writing' })
    }
  }
}

await Promise.all([loop(), loop(), loop(), loop()])
