/**
 * Streams one entry from a slow source, for the temp-file tests:
 * `slow-stream.ts <dir> <key> <chunks> <everyMs> [hold]` yields `<chunks>` chunks of 10,000
 * bytes, one every `<everyMs>` ms (far below the 1 MiB a frame holds, so nothing reaches the
 * temp file until the end); with `hold`, the source then stays open until the parent sends
 * `{ type: 'finish' }` (so "still being written" does not depend on how loaded the machine
 * is). Sends `{ type: 'writing' }` once the first chunk is out, and
 * `{ type: 'done', stats }` when the write resolved; stays alive until the parent lets go.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'

const [dir, key, chunks, every, hold] = process.argv.slice(2)
const finish =
  hold === 'hold'
    ? new Promise<void>((resolve) => process.on('message', (m: { type?: string }) => m.type === 'finish' && resolve()))
    : undefined

async function* source(): AsyncGenerator<Buffer> {
  for (let i = 0; i < Number(chunks); i++) {
    yield Buffer.alloc(10_000, i % 251)
    if (i === 0) process.send!({ type: 'writing' })
    await delay(Number(every))
  }
  await finish
}

const cache = await Larder.open({ dir: dir! })
await cache.setStream(key!, source())
process.send!({ type: 'done', stats: await cache.stats() })
await cache.close()
process.on('message', () => {})
process.on('disconnect', () => process.exit(0))
