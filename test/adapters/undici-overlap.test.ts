/**
 * larder/undici: two writes of one response (the same URL, method and vary) under way at once,
 * as two requests for a URL not cached yet make them. Found by an adversarial review
 * (2026-12-06): both could end in a miss. A write stored in one form (buffered, up to 64 KiB;
 * or streamed) removed the other form's entry, and the other write, stored meanwhile, removed
 * this one's (a removal of a stream being written waits for it, then removes it); and each
 * write took the index the other rewrote as its start for a sign of a delete, and removed the
 * entry under its key, whichever write had stored it. The write that finishes last is served.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { Larder } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { bodyText, keyOf, valueOf, type Store } from './undici-fixtures.ts'

const SMALL = 100
const LARGE = 200 * 1024

/**
 * Begins a write of `key` for each body (their first halves written, so a large one streams
 * already), then ends them in `order`, each after the one before has finished or a second has
 * passed (a write may wait for the other: a stream of the key for the one before it); `together`
 * ends them all at once. Resolves to the bodies' letters in the order their writes finished.
 */
async function overlap(store: Store, path: string, bodies: Buffer[], order: number[], together: boolean): Promise<string[]> {
  const key = keyOf(path)
  const writes = bodies.map((body) => ({ body, writable: store.createWriteStream(key, valueOf())! }))
  for (const { body, writable } of writes) writable.write(body.subarray(0, body.length / 2))
  await sleep(20)
  const finished: string[] = []
  const done: Promise<unknown>[] = []
  for (const i of order) {
    const { body, writable } = writes[i]!
    done.push(once(writable, 'finish').then(() => finished.push(body.toString('latin1', 0, 1))))
    writable.end(body.subarray(body.length / 2))
    if (!together) await Promise.race([done.at(-1), sleep(1000)])
  }
  await Promise.all(done)
  return finished
}

describe('larder/undici: two writes of one response at once', () => {
  for (const memory of [false, true]) {
    test(`the one that finishes last is served, never neither (memory: ${memory})`, { timeout: 120_000 }, async () => {
      const cache = await Larder.open({ dir: tempDir('larder-undici-overlap'), memory, maintenance: false })
      const store = new LarderCacheStore(cache)
      const wrong: string[] = []
      try {
        let n = 0
        for (const [a, b] of [
          [SMALL, SMALL],
          [SMALL, LARGE],
          [LARGE, SMALL],
          [LARGE, LARGE],
        ] as const) {
          for (const order of [
            [0, 1],
            [1, 0],
          ]) {
            for (const together of [false, true]) {
              const path = `/r${n++}`
              const finished = await overlap(store, path, [Buffer.alloc(a, 'a'), Buffer.alloc(b, 'b')], order, together)
              const served = (await bodyText(await store.get(keyOf(path))))?.[0] ?? 'nothing'
              const label = `${a} and ${b} bytes, ended ${together ? 'together' : 'one after the other'}, finished ${finished.join(', ')}`
              if (served !== finished.at(-1)) wrong.push(`${label}: served ${served}`)
            }
          }
        }
        assert.deepEqual(wrong, [])
      } finally {
        await store.close()
        await cache.close()
      }
    })
  }
})
