/**
 * A delete of a key whose older entry another process holds aside (a removal judging it, or a
 * rekey rewriting it, to put it back once its checks pass) is not undone when that entry is
 * put back: found by an adversarial review (2026-12-06), which resurrected a deleted key's
 * older value with a prune, a rekey and a plain read each. The delete used to clear the aside
 * name only when it found no entry at the name; it found the newer one.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { Larder } from '../src/index.ts'
import { entryFiles, tempDir } from './helpers.ts'

test('an entry put back after a delete of its key was acknowledged does not come back', async () => {
  const dir = tempDir('larder-delete-aside')
  const cache = await Larder.open({ dir, maintenance: false })
  try {
    await cache.set('k', 'OLD')
    const [file] = entryFiles(dir)
    const go = new SharedArrayBuffer(4)
    const worker = new Worker(new URL('./children/held-put-back.mjs', import.meta.url), {
      workerData: { file, go },
    })
    const done = new Promise<unknown>((resolve, reject) => {
      worker.on('message', (message) => message !== 'aside' && resolve(message))
      worker.once('error', reject)
    })
    await once(worker, 'message') // OLD is aside, about to be linked back
    await cache.set('k', 'NEW')
    assert.equal(await cache.delete('k'), true)
    Atomics.store(new Int32Array(go), 0, 1)
    Atomics.notify(new Int32Array(go), 0)
    assert.deepEqual(await done, { taken: false })
    await worker.terminate()
    const fresh = await Larder.open({ dir, maintenance: false })
    try {
      assert.equal(await fresh.get('k'), undefined, 'the deleted key stays deleted')
      assert.deepEqual(entryFiles(dir), [])
    } finally {
      await fresh.close()
    }
  } finally {
    await cache.close()
  }
})
