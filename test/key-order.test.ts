/**
 * A key leaves the call-order queue as its change settles, before the caller's `await` of it
 * resumes, so a read right after an awaited set takes get()'s memory hit path (an already
 * resolved promise) instead of an async detour through the queue.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const caches: Larder[] = []
after(() => Promise.all(caches.map((c) => c.close())))

test('a get right after an awaited set is a memory hit answered at once', async () => {
  const cache = await Larder.open({ dir: tempDir('larder-key-order'), memory: { maxEntries: 100 }, maintenance: false })
  caches.push(cache)
  let atOnce = 0
  for (let i = 0; i < 50; i++) {
    await cache.set(`k${i}`, i)
    let answered = false
    const read = cache.get(`k${i}`)
    void read.then(() => (answered = true))
    // Two turns of the microtask queue: enough for a promise that was already resolved.
    await Promise.resolve()
    await Promise.resolve()
    if (answered) atOnce++
    assert.equal(await read, i)
  }
  assert.equal(atOnce, 50, 'every get after an awaited set was answered from memory at once')
})
