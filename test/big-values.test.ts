// Issue #14, 64 KiB values: a big value's raw DEFLATE is coded piece by piece as pays
// (format/deflate-pieces.ts: Huffman only where LZ77 finds nothing). What is guarded here: the
// runs make one raw-DEFLATE stream any inflater reads back exactly, the ratio of one stream is
// kept, and a big compressed set is still whole or nothing. Speed is measured in bench/ (W4),
// never asserted here.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { Compression, decompressSync } from '../src/format/compression.ts'
import { deflateRawInPieces, matchesPay, PIECE_BYTES } from '../src/format/deflate-pieces.ts'
import { entryFiles, listFiles, tempDir } from './helpers.ts'
import { smallTmpfs } from './tmpfs.ts'

/** Prose-like text: words from a small vocabulary, so DEFLATE finds matches. */
function text(size: number, seed: number): Buffer {
  const words = ['cache', 'entry', 'checksum', 'partition', 'rename', 'value', 'worker', 'inode', 'payload', 'tier']
  const parts: string[] = []
  let length = 0
  let x = seed
  while (length < size) {
    x = (x * 1103515245 + 12345) % 2147483648
    const word = words[x % words.length]!
    parts.push(word)
    length += word.length + 1
  }
  return Buffer.from(parts.join(' ')).subarray(0, size)
}

/** Half text, half base64 of random bytes: the W4 benchmark's kind of value. */
function mixed(size: number, seed: number): Buffer {
  const half = size >> 1
  return Buffer.concat([text(half, seed), Buffer.from(randomBytes(size).toString('base64')).subarray(0, size - half)])
}

const kinds: Record<string, (size: number, seed: number) => Buffer> = {
  text,
  mixed,
  random: (size) => randomBytes(size),
  base64: (size) => base64(size),
  zeros: (size) => Buffer.alloc(size),
}

const sizes = [
  PIECE_BYTES - 1,
  PIECE_BYTES,
  PIECE_BYTES + PIECE_BYTES / 2,
  2 * PIECE_BYTES - 1,
  2 * PIECE_BYTES,
  2 * PIECE_BYTES + 1,
  63_690,
  100_003,
  128 * 1024,
]

/** Base64 of random bytes: nothing for LZ77, ~75 % with Huffman coding. */
function base64(size: number): Buffer {
  return Buffer.from(randomBytes(size).toString('base64')).subarray(0, size)
}

describe('raw DEFLATE coded piece by piece (deflate-pieces.ts)', () => {
  test('the runs make one raw-DEFLATE stream that inflates to exactly the input, for many sizes, kinds and orders of pieces', () => {
    const inputs: [string, Buffer][] = []
    for (const [kind, make] of Object.entries(kinds)) for (const size of sizes) inputs.push([`${kind}, ${size} bytes`, make(size, size)])
    // Runs alternating between Huffman and LZ77 pieces, in both orders, and three or more runs.
    inputs.push(['base64 then text', Buffer.concat([base64(40_000), text(40_000, 1)])])
    inputs.push(['text, base64, text, base64', Buffer.concat([text(33_000, 2), base64(33_000), text(33_000, 3), base64(30_000)])])
    for (const [label, input] of inputs) {
      const out = deflateRawInPieces(input, 1)
      // Node's own inflater, in one call: the concatenation is one stream, its end marked once.
      assert.ok(zlib.inflateRawSync(out).equals(input), `zlib.inflateRawSync: ${label}`)
      // larder's reader, bounded by the logical length as an entry's trailer gives it.
      assert.ok(decompressSync(Compression.Deflate, out, input.length).equals(input), `decompressSync: ${label}`)
      for (const level of [6, 9]) assert.ok(zlib.inflateRawSync(deflateRawInPieces(input, level)).equals(input), `level ${level}: ${label}`)
    }
  })

  test('an LZ77 run after a Huffman run reaches back into it: a repeat across the two compresses as in one stream', () => {
    // Random base64, then its last 16 KiB twice: only back-references into the first run shrink the second.
    const first = base64(40_000)
    const input = Buffer.concat([first, first.subarray(-16_384), first.subarray(-16_384), text(8_000, 4)])
    const oneStream = zlib.deflateRawSync(input, { level: 1 })
    const inPieces = deflateRawInPieces(input, 1)
    assert.ok(zlib.inflateRawSync(inPieces).equals(input))
    assert.ok(inPieces.length < oneStream.length + 1024, `in pieces ${inPieces.length} against one stream ${oneStream.length}`)
  })

  test('LZ77 is judged to pay on text and repeats, not on base64 or hex of random bytes (those pieces are Huffman-coded)', () => {
    assert.equal(matchesPay(text(32_000, 1)), true)
    assert.equal(
      matchesPay(Buffer.from(JSON.stringify(Array.from({ length: 400 }, (_, id) => ({ id, name: `n${id}`, active: true }))))),
      true,
    )
    assert.equal(matchesPay(Buffer.alloc(32_000)), true)
    assert.equal(matchesPay(base64(32_000)), false)
    assert.equal(matchesPay(Buffer.from(randomBytes(16_000).toString('hex'))), false)
    // Random bytes with text at one of the three sampled spots: LZ77 still runs.
    const patched = base64(40_000)
    text(2048, 3).copy(patched, Math.floor(patched.length / 2) - 1024)
    assert.equal(matchesPay(patched), true)
    // Random within every 1 KiB, but the same 12 KiB again further on: LZ77 finds it far back.
    const twice = base64(12_000)
    assert.equal(matchesPay(Buffer.concat([twice, twice, twice])), true)
  })

  test('a value of the W4 kind (half text, half base64) is stored smaller than one stream stores it', () => {
    for (const seed of [1, 2, 3]) {
      const input = mixed(63_690, seed)
      const oneStream = zlib.deflateRawSync(input, { level: 1 })
      const inPieces = deflateRawInPieces(input, 1)
      assert.ok(zlib.inflateRawSync(inPieces).equals(input))
      assert.ok(inPieces.length < oneStream.length, `in pieces ${inPieces.length} against one stream ${oneStream.length}`)
    }
  })

  test('a value whose pieces all want LZ77 is exactly one ordinary stream', () => {
    const input = text(63_690, 5)
    assert.ok(deflateRawInPieces(input, 1).equals(zlib.deflateRawSync(input, { level: 1 })))
  })
})

describe('big values through the cache', () => {
  test('values of many sizes and kinds are read back exactly by a new instance, and a 64 KiB mixed value is stored at about half its size', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const values = new Map<string, Buffer>()
    for (const [kind, make] of Object.entries(kinds)) {
      for (const size of sizes) {
        const key = `${kind}:${size}`
        values.set(key, make(size, size + 1))
        await cache.set(key, values.get(key)!)
      }
    }
    await cache.set('json', { body: text(33_000, 9).toString(), attachment: randomBytes(22_500).toString('base64') })
    assert.equal((await cache.stats()).dropped, 0)
    await cache.close()

    const reader = await Larder.open({ dir, memory: false })
    for (const [key, value] of values) assert.ok(((await reader.get(key)) as Buffer).equals(value), key)
    const json = (await reader.get('json')) as { body: string; attachment: string }
    assert.equal(json.body, text(33_000, 9).toString())
    const stats = await reader.stats()
    assert.equal(stats.corrupt, 0)
    await reader.close()

    // The 64 KiB mixed value's file: compressed (DEFLATE level 1 stores this kind at ~52-54 %).
    const size = 63_690
    const probeDir = tempDir()
    const probe = await Larder.open({ dir: probeDir })
    await probe.set('m', mixed(size, 5))
    await probe.close()
    const files = entryFiles(probeDir)
    assert.equal(files.length, 1)
    const stored = fs.statSync(files[0]!).size
    assert.ok(stored < size * 0.6, `${stored} bytes on disk for ${size}`)
  })

  test('16 big sets of one key in flight end with the last one, whole', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const versions = Array.from({ length: 16 }, (_, i) => mixed(70_000 + i * 1000, i))
    await Promise.all(versions.map((v) => cache.set('k', v)))
    await cache.close()
    const reader = await Larder.open({ dir, memory: false })
    assert.ok(((await reader.get('k')) as Buffer).equals(versions[15]!))
    assert.equal((await reader.stats()).corrupt, 0)
    await reader.close()
    assert.deepEqual(
      listFiles(dir).filter((f) => f.endsWith('.tmp')),
      [],
    )
  })
})

describe('a big compressible set that does not fit (real 256 KiB tmpfs)', () => {
  const tmpfs = smallTmpfs('larder-big-values-tmpfs')

  test('is a counted drop: no temp file is left, the totals count none of it, and the value it was to replace is served no more', async (t) => {
    if (tmpfs.refusal !== undefined) return t.skip(tmpfs.refusal)
    const dir = path.join(tmpfs.dir, 'cache')
    const cache = await Larder.open({ dir })
    await cache.set('k', { v: 'old' })
    const beforeStats = await cache.stats()
    // 8 KiB free: the ~34 KiB compressed entry cannot fit.
    const filler = tmpfs.leaveFree(8 * 1024)
    try {
      await cache.set('k', mixed(63_690, 7))
      const stats = await cache.stats()
      assert.equal(stats.dropped, 1, 'the failed set is a counted drop')
      assert.equal(stats.bytesWritten, beforeStats.bytesWritten)
      assert.ok(stats.size <= beforeStats.size)
      assert.equal(await cache.get('k'), undefined, 'the replaced value is not served (failOpen: the caller was not told)')
      assert.deepEqual(
        listFiles(dir).filter((f) => f.endsWith('.tmp')),
        [],
        'no temp file left behind',
      )
    } finally {
      fs.rmSync(filler)
      await cache.close()
    }
  })
})
