import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { loadHasher } from '../src/format/checksum.ts'
import { decodeEntry, HEADER_BYTES, TRAILER_BYTES } from '../src/format/entry-format.ts'
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
