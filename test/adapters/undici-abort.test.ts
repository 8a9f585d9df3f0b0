/**
 * larder/undici: a response aborted before its end (undici destroys the write stream with an
 * error when the response fails or the client goes away). Found by an adversarial review
 * (2026-12-06): a streamed one (over 64 KiB) was reported to errorCallback as a write larder
 * refused, once per aborted download; a buffered one was not. An abort is not a refusal:
 * neither is reported, and neither is stored.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { Larder } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { keyOf, valueOf } from './undici-fixtures.ts'

test('larder/undici: an aborted response, buffered or streamed, is not stored and not reported', { timeout: 60_000 }, async () => {
  const cache = await Larder.open({ dir: tempDir('larder-undici-abort'), maintenance: false })
  const reported: string[] = []
  const store = new LarderCacheStore(cache, { errorCallback: (error) => reported.push(error.message) })
  try {
    for (const size of [1000, 200_000]) {
      const key = keyOf(`/abort${size}`)
      const writable = store.createWriteStream(key, valueOf())!
      writable.on('error', () => {})
      const closed = new Promise((resolve) => writable.once('close', resolve))
      writable.write(Buffer.alloc(size, 1))
      await sleep(50) // the streamed one's store is under way
      writable.destroy(new Error('aborted by the client'))
      await closed
      await sleep(300) // what the abort does to the store (a setStream that fails) has happened
      assert.equal(await store.get(key), undefined, `${size} bytes: not stored`)
    }
  } finally {
    await store.close()
    await cache.close()
  }
  assert.deepEqual(reported, [])
})
