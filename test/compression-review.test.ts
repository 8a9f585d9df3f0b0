/**
 * Whether a large value or a stream's block is worth compressing is judged from a trial on a
 * sample (compression.ts `worthCompressing`): a sample spread over the bytes, so a value that
 * begins with bytes that do not compress and goes on with text is compressed, while one that
 * compresses nowhere is still stored raw after one trial (a review, 2026-12-07).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Larder } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** About `length` bytes of JSON rows: text that DEFLATE shrinks several times over. */
function jsonRows(length: number): Buffer {
  const rows = Array.from({ length: Math.ceil(length / 40) }, (_, i) => ({ id: i, name: `user${i}`, active: i % 2 === 0 }))
  return Buffer.from(JSON.stringify(rows)).subarray(0, length)
}

for (const options of [{ compressLater: false as const }, { compressLater: '32KiB' }]) {
  test(`a large value whose first 64 KiB do not compress and whose rest does is stored compressed (compressLater: ${String(options.compressLater)})`, async () => {
    const dir = tempDir()
    const value = Buffer.concat([randomBytes(64 * KiB), jsonRows(900 * KiB)])
    const cache = await Larder.open({ dir, serializer: 'raw', ...options })
    await cache.set('mixed', value)
    await cache.set('random', randomBytes(MiB))
    await cache.close()
    const reader = await Larder.open({ dir, serializer: 'raw' })
    try {
      const mixed = await reader.info('mixed')
      assert.equal(mixed?.compression, 'deflate')
      assert.ok(mixed.size < value.length / 2, `stored in ${mixed.size} bytes, the value is ${value.length}`)
      assert.deepEqual(await reader.get('mixed'), value)
      assert.equal((await reader.info('random'))?.compression, 'none', 'a value that compresses nowhere is stored raw')
    } finally {
      await reader.close()
    }
  })
}

test("a stream whose blocks each begin with 32 KiB that do not compress (a tarball's compressed member) and go on with text is stored compressed", async () => {
  const dir = tempDir()
  const block = Buffer.concat([randomBytes(32 * KiB), jsonRows(MiB - 32 * KiB)])
  const cache = await Larder.open({ dir, streamCompression: 'full' })
  try {
    await cache.setStream('artifact', [block, block, block, block])
    const info = await cache.info('artifact')
    assert.ok(info!.size < 2 * MiB, `stored in ${info!.size} bytes, the stream is ${4 * block.length}`)
    const chunks: Buffer[] = []
    for await (const chunk of (await cache.getStream('artifact'))!) chunks.push(chunk as Buffer)
    assert.deepEqual(Buffer.concat(chunks), Buffer.concat([block, block, block, block]))
  } finally {
    await cache.close()
  }
})
