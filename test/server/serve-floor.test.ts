/**
 * Uploads cut into reused 1 MiB blocks (store/block-pool.ts, issue 11's serve floor): a block
 * goes back to the pool only once its write completed, so no upload's bytes can land in
 * another's file; the pool stays bounded and empties when idle. Speed is measured in
 * bench/serve.mjs, not here.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { Larder } from '../../src/index.ts'
import { spareBlocks } from '../../src/store/block-pool.ts'
import { tempDir } from '../helpers.ts'
import { eventually, startServer, tempFiles } from './helpers.ts'

const MiB = 1024 * 1024
const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** Chunks of uneven sizes (as sockets and pipes deliver them), so blocks fill across chunks. */
function* unevenChunks(bytes: Buffer, seed: number): Generator<Buffer> {
  for (let at = 0, i = seed; at < bytes.length; i++) {
    const size = 1 + ((i * 48_271) % (96 * 1024))
    yield bytes.subarray(at, at + size)
    at += size
  }
}

test('24 uploads at once through the server, of sizes around the block size, each come back byte for byte', async () => {
  const { url } = await startServer()
  const sizes = [70, MiB - 1, MiB, MiB + 1, 2 * MiB + 17, 3 * MiB + 5]
  const bodies = Array.from({ length: 24 }, (_, i) => randomBytes(sizes[i % sizes.length]!))
  const hash = (i: number): string => `ab${i.toString(16).padStart(14, '0')}`
  // The spares held, sampled while the uploads run (they are dropped once the pool is idle).
  let most = 0
  const sampler = setInterval(() => (most = Math.max(most, spareBlocks())), 1)
  await Promise.all(
    bodies.map(async (body, i) => {
      const answer = await fetch(`${url}/v8/artifacts/${hash(i)}?slug=team`, {
        method: 'PUT',
        body,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
      })
      assert.equal(answer.status, 202)
    }),
  )
  clearInterval(sampler)
  assert.ok(most > 0, 'the uploads went through the pool')
  assert.ok(most <= 16, `${most} spare blocks held at most (the pool keeps 16)`)
  await Promise.all(
    bodies.map(async (body, i) => {
      const answer = await fetch(`${url}/v8/artifacts/${hash(i)}?slug=team`)
      assert.equal(answer.status, 200)
      const got = Buffer.from(await answer.arrayBuffer())
      assert.equal(got.length, body.length, `artifact ${i}: length`)
      assert.equal(sha(got), sha(body), `artifact ${i} (${body.length} bytes): its own bytes`)
    }),
  )
  await eventually(() => spareBlocks() === 0, 'the spare blocks dropped once the pool was idle')
})

test('streams that fail midway among healthy ones store nothing, and the healthy ones are intact', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, compression: 'none' })
  const values = Array.from({ length: 12 }, (_, i) => randomBytes(2 * MiB + 1000 * i))
  const failing = function* (value: Buffer, seed: number): Generator<Buffer> {
    let sent = 0
    for (const chunk of unevenChunks(value, seed)) {
      if (sent > 1.5 * MiB) throw new Error('the client went away')
      sent += chunk.length
      yield chunk
    }
  }
  const outcomes = await Promise.allSettled(
    values.map((value, i) => cache.setStream(`k${i}`, i % 3 === 0 ? failing(value, i) : unevenChunks(value, i))),
  )
  for (const [i, outcome] of outcomes.entries()) {
    assert.equal(outcome.status, i % 3 === 0 ? 'rejected' : 'fulfilled', `stream ${i}`)
  }
  for (const [i, value] of values.entries()) {
    const stored = (await cache.get(`k${i}`)) as Buffer | undefined
    if (i % 3 === 0) assert.equal(stored, undefined, `the failed stream ${i} stored nothing`)
    else assert.equal(sha(Buffer.from(stored!)), sha(value), `stream ${i}: its own bytes`)
  }
  assert.deepEqual(tempFiles(dir), [], 'no temp file left behind')
  await cache.close()
})
