import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { checksum, loadHasher } from '../src/format/checksum.ts'
import { decodeEntry, encodeEntry, FLAG_SEALED, HEADER_BYTES, TRAILER_BYTES } from '../src/format/entry-format.ts'
import { SYNC_CODEC_LIMIT } from '../src/format/compression.ts'
import { decodePayload, decodePayloadAtOnce, encodeEntryBytes } from '../src/format/payload.ts'
import { entryFiles, tempDir } from './helpers.ts'

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'v1')
const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'manifest.json'), 'utf8')) as {
  key: string
  options: object
  expect: unknown
  kind: string
}[]

function copyFixtures(): string {
  const dir = tempDir('larder-fixtures')
  fs.cpSync(path.join(fixtures, 'cache'), dir, { recursive: true })
  return dir
}

describe('entry format v1', () => {
  test('every v1 fixture written by an earlier build reads back as recorded', async () => {
    const dir = copyFixtures()
    for (const fixture of manifest) {
      const cache = await Larder.open({ dir, ...fixture.options })
      if (fixture.kind === 'stream') {
        const stream = await cache.getStream(fixture.key)
        assert.ok(stream, fixture.key)
        const chunks: Buffer[] = []
        for await (const c of stream) chunks.push(c as Buffer)
        const bytes = Buffer.concat(chunks)
        const expect = fixture.expect as { bytes: number; line: string; sha256: string }
        assert.equal(bytes.length, expect.bytes)
        assert.ok(bytes.toString().startsWith(expect.line))
        assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), expect.sha256, fixture.key)
      } else {
        const value = await cache.get(fixture.key)
        const comparable =
          fixture.kind === 'v8-date'
            ? { when: (value as { when: Date }).when.toISOString() }
            : fixture.kind === 'msgpack-map'
              ? [...(value as Map<string, number>)]
              : fixture.kind === 'bytes'
                ? [...(value as Buffer)]
                : value
        assert.deepEqual(comparable, fixture.expect, fixture.key)
      }
      const stats = await cache.stats()
      assert.equal(stats.corrupt, 0)
      await cache.close()
    }
  })

  test('fixture files follow the documented byte layout', async () => {
    await loadHasher()
    const files = entryFiles(path.join(fixtures, 'cache'))
    assert.equal(files.length, manifest.length)
    for (const file of files) {
      const bytes = fs.readFileSync(file)
      assert.equal(bytes.toString('latin1', 0, 4), 'LRDR')
      assert.equal(bytes[4], 1)
      assert.equal(bytes.toString('latin1', bytes.length - 16, bytes.length - 12), 'LRDE')
      const entry = decodeEntry(bytes)
      assert.equal(HEADER_BYTES + bytes.readUInt32LE(24) + bytes.readUInt32LE(28), entry.payloadOffset)
      assert.equal(entry.payloadOffset + entry.storedLength + TRAILER_BYTES, bytes.length)
      assert.ok(manifest.some((m) => m.key === entry.key))
      // The file is named by the key's hash, in the partition of its first two digits.
      assert.equal(path.basename(path.dirname(file)), path.basename(file).slice(0, 2))
    }
  })
})

describe('an entry compressed with zstd, read by a Node without zstd', () => {
  test('is a miss that leaves the entry for the processes that can read it (not corrupt, not removed)', async (t) => {
    const { zstdAvailable } = await import('../src/options.ts')
    if (zstdAvailable()) {
      t.skip(`this Node (${process.version}) has zstd; the case is covered where it has not (Node 20)`)
      return
    }
    await loadHasher()
    const { encodeEntry, encodeTags } = await import('../src/format/entry-format.ts')
    const dir = tempDir('larder-zstd-miss')
    const cache = await Larder.open({ dir, maintenance: false })
    await cache.set('k', { a: 1 })
    const [file] = entryFiles(dir)
    await cache.close()
    // The entry as a Node with zstd wrote it: codec json (2), compression zstd (4). Its payload
    // cannot be made here (no zstd), and it is never decoded: the codec decides first.
    const bytes = encodeEntry(
      { key: 'k', codec: 2, compression: 4, createdAt: Date.now(), expiresAt: 0, tags: [] },
      Buffer.from('k'),
      encodeTags([]),
      crypto.randomBytes(40),
      7,
    )
    fs.writeFileSync(file!, bytes)
    const reader = await Larder.open({ dir, maintenance: false })
    assert.equal(await reader.get('k'), undefined)
    assert.equal(await reader.has('k'), false)
    assert.equal(await reader.getStream('k'), undefined)
    const stats = await reader.stats()
    await reader.close()
    assert.equal(stats.corrupt, 0, 'not counted as damage')
    assert.deepEqual(fs.readFileSync(file!), bytes, 'the entry is left for the processes that can read it')
  })
})

describe('the 64-bit fields, read and written without a BigInt per entry', () => {
  /** A v2 entry of `payload` with these ids, its checksum made again after `edit`. */
  function entry(namespaceId: bigint, edit?: (bytes: Buffer) => void, keyId?: bigint): Buffer {
    const meta = { key: 'k', codec: 0, compression: 0, createdAt: 1, expiresAt: 0, tags: [], namespaceId, keyId }
    const flags = keyId === undefined ? 0 : FLAG_SEALED
    const bytes = encodeEntry(meta, Buffer.from('k'), Buffer.alloc(0), Buffer.from('payload'), 7, flags)
    edit?.(bytes)
    bytes.writeBigUInt64LE(checksum(bytes.subarray(0, bytes.length - 8)), bytes.length - 8)
    return bytes
  }

  test('namespace ids (the last one kept) and key ids come back exactly, whatever came between', async () => {
    await loadHasher()
    const ids = [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, 0xdead_beef_0000_0001n, 2n ** 64n - 1n, 0xdead_beef_0000_0001n]
    for (const id of ids) {
      const bytes = entry(id)
      assert.equal(bytes.readBigUInt64LE(32), id, 'written as writeBigUInt64LE would')
      assert.equal(decodeEntry(bytes).namespaceId, id)
    }
    // Read after a write of another id, and the other way round.
    const a = entry(5n)
    const b = entry(2n ** 63n + 5n)
    assert.equal(decodeEntry(a).namespaceId, 5n)
    assert.equal(decodeEntry(b).namespaceId, 2n ** 63n + 5n)
    const sealed = entry(7n, (bytes) => Buffer.alloc(12, 1).copy(bytes, 48), 2n ** 40n + 3n)
    assert.equal(decodeEntry(sealed).keyId, 2n ** 40n + 3n)
    assert.equal(decodeEntry(entry(7n)).keyId, undefined)
    // The flag without a key fingerprint, or a fingerprint in either half without the flag.
    assert.throws(() => decodeEntry(entry(7n, (bytes) => (bytes[7] = FLAG_SEALED))), /SEALED flag and key fingerprint disagree/)
    for (const at of [40, 44]) assert.throws(() => decodeEntry(entry(7n, (bytes) => bytes.writeUInt32LE(1, at))), /disagree/)
  })

  test('lengths: up to Number.MAX_SAFE_INTEGER read exactly, past it refused', async () => {
    await loadHasher()
    const trailerAt = (bytes: Buffer): number => bytes.length - TRAILER_BYTES
    const bytes = entry(1n)
    assert.equal(decodeEntry(bytes).logicalLength, 7)
    const logical = (n: bigint) => entry(1n, (b) => b.writeBigUInt64LE(n, trailerAt(b) + 8))
    assert.equal(decodeEntry(logical(BigInt(Number.MAX_SAFE_INTEGER))).logicalLength, Number.MAX_SAFE_INTEGER)
    assert.equal(decodeEntry(logical(0x1f_ffff_0000_0001n)).logicalLength, 0x1f_ffff_0000_0001)
    for (const n of [BigInt(Number.MAX_SAFE_INTEGER) + 1n, 2n ** 64n - 1n])
      assert.throws(() => decodeEntry(logical(n)), /logical length out of range/)
    // A stored length off by 2^32 (or past 2^53) from the file's is a truncated or extended file.
    for (const n of [7n + 2n ** 32n, 7n + 2n ** 53n])
      assert.throws(() => decodeEntry(entry(1n, (b) => b.writeBigUInt64LE(n, trailerAt(b)))), /payload length does not match the file size/)
  })
})

describe('encodeEntryBytes', () => {
  const options = {
    compression: 'deflate',
    compressionLevel: 1,
    compressThreshold: 1024,
    namespace: 'default',
    encryption: undefined,
  } as const
  const entryOf = (text: string) => ({
    serialized: { codec: 0, bytes: Buffer.from(text) },
    createdAt: 5,
    expiresAt: 0,
    tags: ['t'],
    grace: 0,
  })

  test('a value the main thread compresses is answered at once (no promise); one over the synchronous limit is a promise; both decode', async () => {
    await loadHasher()
    const small = JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => ({ i, name: 'row' })) }) // compressed, ~5 KiB
    const large = 'x'.repeat(Math.max(SYNC_CODEC_LIMIT, 1024 * 1024) + 1) // compressed in the thread pool, and decompressed there (over 1 MiB)
    const now = encodeEntryBytes('k', entryOf(small), options)
    assert.ok(Buffer.isBuffer(now), 'a Buffer, not a promise')
    const later = encodeEntryBytes('k', entryOf(large), options)
    assert.ok(later instanceof Promise)
    for (const [bytes, text] of [
      [now, small],
      [await later, large],
    ] as const) {
      const decoded = decodeEntry(bytes)
      assert.notEqual(decoded.compression, 0, 'compressed')
      assert.equal((await decodePayload(decoded, options)).toString(), text)
    }
    // Read back the same way: at once inline, a promise for what decompresses in the pool.
    const inline = decodePayloadAtOnce(decodeEntry(now), options)
    assert.ok(Buffer.isBuffer(inline))
    assert.equal(inline.toString(), small)
    const pooled = decodePayloadAtOnce(decodeEntry(await later), options)
    assert.ok(pooled instanceof Promise)
    assert.equal((await pooled).toString(), large)
    // A payload that is not what it claims is a rejection of decodePayload, never a throw.
    const damaged = decodeEntry(now)
    damaged.payload = Buffer.from('not deflate at all')
    await assert.rejects(decodePayload(damaged, options), /does not decompress|decodes to/)
  })
})
