/**
 * A process the crash torture test SIGKILLs at a random moment:
 *   crash-child.ts mixed <dir> <writer> <seed> <keys>   sets (records and blobs), setStream (paced
 *                                                         blobs), and prune/verify, all at once
 *   crash-child.ts clear <dir> <writer> <seed> <keys>   sets a batch, clear(), over and over
 *   crash-child.ts tags  <dir> <writer> <seed> <keys>   tagged sets and invalidateTags, interleaved
 * Every value is self-checking for its key (test/children/shared.ts). Sends `{ type: 'loaded' }`
 * and waits for any message before it opens the cache; sends `{ type: 'ready' }` once it has
 * done some work; runs until killed.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../../src/index.ts'
import { makeBlob, makeRecord, prng, randInt } from '../../children/shared.ts'

const [mode, dir, writerArg, seedArg, keysArg] = process.argv.slice(2)
const writer = Number(writerArg)
const keys = Number(keysArg)
const rand = prng(Number(seedArg))
// Node, tsx and larder take about a second to load, so the parent starts the next child while
// it still checks what the last one left, and lets it go (any message) only once that check
// is done: nothing is opened or written before then.
const go = new Promise((resolve) => process.once('message', resolve))
process.send!({ type: 'loaded' })
await go
const cache = await Larder.open({ dir: dir!, maintenance: { interval: 0 } })
let seq = 0
let done = 0
let announced = false

function progress(): void {
  done++
  if (!announced && done >= 10) {
    announced = true
    process.send!({ type: 'ready' })
  }
}

const smallKey = (): string => `small-${randInt(rand, 0, keys - 1)}`
const streamKey = (): string => `stream-${randInt(rand, 0, Math.max(1, keys / 10) - 1)}`

async function setLoop(): Promise<never> {
  for (;;) {
    const key = smallKey()
    const roll = rand()
    const n = seq++
    if (roll < 0.7) await cache.set(key, makeRecord(key, writer, n, randInt(rand, 0, 3000)))
    else if (roll < 0.85) await cache.set(key, makeRecord(key, writer, n, randInt(rand, 5000, 50_000)))
    else await cache.set(key, makeBlob(key, writer, n, randInt(rand, 70_000, 300_000)))
    progress()
  }
}

/** A blob streamed in 64 KiB chunks, paced so a write lasts long enough for kills to land in it. */
async function* paced(blob: Buffer): AsyncGenerator<Buffer> {
  for (let at = 0; at < blob.length; at += 64 * 1024) {
    yield blob.subarray(at, at + 64 * 1024)
    await delay(2)
  }
}

async function streamLoop(): Promise<never> {
  for (;;) {
    const key = streamKey()
    await cache.setStream(key, paced(makeBlob(key, writer, seq++, randInt(rand, 200_000, 4_000_000))))
    progress()
  }
}

async function pruneLoop(): Promise<never> {
  for (;;) {
    // Evicts to a budget below what the writers keep, so victims are renamed aside and
    // removed while other keys are written.
    if (rand() < 0.8) await cache.prune({ maxEntries: Math.floor(keys * 0.6) })
    else await cache.verify()
    progress()
    await delay(randInt(rand, 0, 30))
  }
}

async function clearLoop(): Promise<never> {
  for (;;) {
    const batch = randInt(rand, 5, 40)
    for (let i = 0; i < batch; i++) {
      const key = smallKey()
      await cache.set(key, makeRecord(key, writer, seq++, randInt(rand, 0, 20_000)))
      progress()
    }
    await cache.clear()
    progress()
  }
}

async function tagLoop(): Promise<never> {
  for (;;) {
    const key = smallKey()
    if (rand() < 0.8)
      await cache.set(key, makeRecord(key, writer, seq++, randInt(rand, 0, 8000)), { tags: [`tag-${randInt(rand, 0, 4)}`, 'all'] })
    else await cache.invalidateTags(rand() < 0.9 ? [`tag-${randInt(rand, 0, 4)}`] : ['all', `tag-${randInt(rand, 0, 4)}`])
    progress()
  }
}

if (mode === 'mixed') await Promise.all([setLoop(), setLoop(), streamLoop(), pruneLoop()])
else if (mode === 'clear') await Promise.all([clearLoop(), setLoop()])
else if (mode === 'tags') await Promise.all([tagLoop(), tagLoop()])
else throw new Error(`unknown mode ${mode}`)
