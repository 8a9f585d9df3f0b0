/**
 * Stream frames sealed and opened in the worker pool (crypto/frame-pool.ts): once its thread
 * is up, large frames go there; streams still round trip byte for byte with frames finishing
 * out of order, a damaged frame opened there is a corrupt miss that hands out no byte of it,
 * and the pool never keeps a process alive.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, test } from 'node:test'
import { framePoolState } from '../src/crypto/frame-pool.ts'
import type { LarderError } from '../src/index.ts'
import { corruptEvents, edit, layout, ONLY_A, open, readAll } from './encryption-helpers.ts'
import { entryFiles, tempDir } from './helpers.ts'

const MiB = 1024 * 1024

/** A stream whose frames cost the compressor very different times (text, random, zeros), so
 *  they finish out of order in zlib's and the crypto pool's threads. */
function mixedArtifact(mib: number): Buffer {
  const parts: Buffer[] = []
  for (let i = 0; i < mib; i++) {
    if (i % 3 === 0) parts.push(crypto.randomBytes(MiB))
    else if (i % 3 === 1) parts.push(Buffer.from(`row ${i} `.repeat(MiB / 8).slice(0, MiB)))
    else parts.push(Buffer.alloc(MiB))
  }
  return Buffer.concat(parts)
}

/** Streams sealed entries until the pool reports a thread up (it starts on first use). */
async function warmPool(dir: string): Promise<void> {
  const cache = await open(dir, { encryption: ONLY_A })
  for (let i = 0; i < 200 && !framePoolState().ready; i++) {
    await cache.setStream('warm', [crypto.randomBytes(MiB)])
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await cache.delete('warm')
  await cache.close()
  assert.ok(framePoolState().ready, 'the frame pool started a thread')
}

describe('encryption: stream frames in the worker pool', () => {
  test('once its thread is up, large frames are sealed and opened there, and streams round trip in order', async () => {
    const dir = tempDir()
    await warmPool(dir)
    const data = mixedArtifact(9)
    for (const compression of ['deflate', 'none'] as const) {
      const cache = await open(dir, { encryption: ONLY_A, compression })
      const before = framePoolState().offloaded
      await cache.setStream('s', [data.subarray(0, 5 * MiB + 7), data.subarray(5 * MiB + 7)])
      const sealedThere = framePoolState().offloaded - before
      assert.ok(sealedThere >= 3, `frames sealed in the pool: ${sealedThere}`)
      const read = await readAll(await cache.getStream('s'))
      assert.ok(read !== undefined && read.equals(data), `${compression}: the stream round trips byte for byte`)
      assert.ok(framePoolState().offloaded - before - sealedThere >= 3, 'frames opened in the pool')
      assert.equal(fs.readFileSync(entryFiles(dir)[0]!).includes(data.subarray(MiB, MiB + 64)), false, 'no plain text on disk')
      const { corrupt, errors, dropped } = await cache.stats()
      assert.deepEqual({ corrupt, errors, dropped }, { corrupt: 0, errors: 0, dropped: 0 })
      await cache.close()
    }
  })

  test('a frame that fails authentication in the pool is a corrupt miss (reason key): no byte of it is handed out', async () => {
    const dir = tempDir()
    await warmPool(dir)
    const cache = await open(dir, { encryption: ONLY_A })
    const data = crypto.randomBytes(4 * MiB)
    await cache.setStream('s', [data])
    const file = entryFiles(dir)[0]!
    // Flip one ciphertext byte of the second frame and re-checksum the file: only the
    // frame's tag can catch it, and only in the pool (the frame is 1 MiB).
    edit(file, (bytes) => {
      const { payloadOffset } = layout(bytes)
      const second = payloadOffset + 8 + bytes.readUInt32LE(payloadOffset + 4)
      bytes[second + 8 + 1000]! ^= 1
    })
    const events = corruptEvents(cache)
    const before = framePoolState().offloaded
    const stream = await cache.getStream('s')
    const received: Buffer[] = []
    await assert.rejects(
      (async () => {
        for await (const chunk of stream!) received.push(chunk as Buffer)
      })(),
      (error: LarderError) => error.code === 'ERR_CORRUPT',
    )
    assert.ok(framePoolState().offloaded > before, 'the frames were opened in the pool')
    const got = Buffer.concat(received)
    assert.ok(got.length <= MiB, `at most the first (authenticated) frame was handed out: ${got.length} bytes`)
    assert.ok(got.equals(data.subarray(0, got.length)), 'what was handed out is right')
    assert.deepEqual(events, ['key:authentication failed'])
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(fs.existsSync(file), false, 'the damaged entry is removed')
    await cache.close()
  })

  test('a process that used the pool and never closed its cache still exits', async () => {
    const dir = tempDir()
    const script = path.join(dir, 'child.mts')
    const src = path.resolve('src/index.ts')
    fs.writeFileSync(
      script,
      `import crypto from 'node:crypto'
import { Larder } from ${JSON.stringify(src)}
const cache = await Larder.open({ dir: ${JSON.stringify(path.join(dir, 'cache'))}, maintenance: false, encryption: { keys: { a: crypto.randomBytes(32) }, activeKey: 'a' } })
for (let i = 0; i < 20; i++) await cache.setStream('s', [crypto.randomBytes(3 * 1024 * 1024)])
const { framePoolState } = await import(${JSON.stringify(path.resolve('src/crypto/frame-pool.ts'))})
console.log(JSON.stringify(framePoolState()))
`,
    )
    // No close(): the event loop must still empty once the work is done.
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], { timeout: 60_000 })
    const state = JSON.parse(stdout.trim()) as { ready: boolean; offloaded: number }
    assert.ok(state.offloaded > 0, `the child used the pool: ${stdout.trim()}`)
  })
})
