import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { entryFiles, tempDir } from './helpers.ts'

const value = { rows: Array.from({ length: 40 }, (_, i) => ({ id: i, name: `row ${i}`, payload: 'x'.repeat(i) })) }

async function cacheWithOneEntry(options: Parameters<typeof Larder.open>[0] = {}) {
  const dir = tempDir()
  const cache = await Larder.open({ dir, ...options })
  await cache.set('k', value, { tags: ['t'], ttl: '1h' })
  const [file] = entryFiles(dir)
  assert.ok(file)
  return { cache, file }
}

async function expectCorruptMiss(cache: Larder, file: string) {
  const events: string[] = []
  cache.on('corrupt', (info) => events.push(info.reason))
  assert.equal(await cache.get('k'), undefined)
  const stats = await cache.stats()
  assert.equal(stats.corrupt, 1)
  assert.equal(stats.errors, 0, 'corruption is not a disk failure')
  assert.equal(events.length, 1)
  await new Promise((r) => setImmediate(r))
  assert.equal(fs.existsSync(file), false, 'the corrupt file is removed')
}

describe('corruption', () => {
  test('a flipped bit at every byte offset of an entry reads as a miss', async () => {
    // Exhaustive over one small entry: header, key, tags, payload, trailer and checksum.
    const dir = tempDir()
    const cache = await Larder.open({ dir, compressThreshold: 0 })
    await cache.set('k', { a: 'short value' }, { tags: ['t'] })
    const [file] = entryFiles(dir)
    const original = fs.readFileSync(file!)
    for (let offset = 0; offset < original.length; offset++) {
      const damaged = Buffer.from(original)
      damaged[offset]! ^= 1 << (offset % 8)
      fs.writeFileSync(file!, damaged)
      assert.equal(await cache.get('k'), undefined, `flip at ${offset} of ${original.length} was served`)
    }
    assert.equal((await cache.stats()).corrupt, original.length)
    await cache.close()
  })

  test('a flipped bit in a compressed payload reads as a miss', async () => {
    const { cache, file } = await cacheWithOneEntry({ compressThreshold: 0 })
    const bytes = fs.readFileSync(file)
    bytes[Math.floor(bytes.length / 2)]! ^= 0x10
    fs.writeFileSync(file, bytes)
    await expectCorruptMiss(cache, file)
    await cache.close()
  })

  test('a truncated entry reads as a miss', async () => {
    const { cache, file } = await cacheWithOneEntry()
    fs.truncateSync(file, Math.floor(fs.statSync(file).size * 0.7))
    await expectCorruptMiss(cache, file)
    await cache.close()
  })

  test('garbage appended to an entry reads as a miss', async () => {
    const { cache, file } = await cacheWithOneEntry()
    fs.appendFileSync(file, 'garbage')
    await expectCorruptMiss(cache, file)
    await cache.close()
  })

  test("a foreign file, an empty file, a directory and a symlink in an entry's place read as misses", async () => {
    for (const plant of ['foreign', 'empty', 'directory', 'symlink'] as const) {
      const { cache, file } = await cacheWithOneEntry()
      fs.rmSync(file)
      if (plant === 'foreign') fs.writeFileSync(file, 'PK\x03\x04 this is a zip file, not an entry'.repeat(10))
      if (plant === 'empty') fs.writeFileSync(file, '')
      if (plant === 'directory') fs.mkdirSync(file)
      if (plant === 'symlink') fs.symlinkSync('/etc/hostname', file)
      await expectCorruptMiss(cache, file)
      assert.equal(await cache.has('k'), false)
      await cache.set('k', 'again')
      assert.equal(await cache.get('k'), 'again', `${plant}: the key is writable again`)
      await cache.close()
    }
  })

  test('a file of a future format version reads as a miss', async () => {
    const { cache, file } = await cacheWithOneEntry()
    const bytes = fs.readFileSync(file)
    bytes[4] = 3
    fs.writeFileSync(file, bytes)
    await expectCorruptMiss(cache, file)
    await cache.close()
  })

  test("two entries swapped on disk never serve the other key's value", async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.set('a', 'value of a')
    await cache.set('b', 'value of b')
    const [fa, fb] = entryFiles(dir)
    const [ba, bb] = [fs.readFileSync(fa!), fs.readFileSync(fb!)]
    fs.writeFileSync(fa!, bb)
    fs.writeFileSync(fb!, ba)
    assert.equal(await cache.get('a'), undefined)
    assert.equal(await cache.get('b'), undefined)
    await cache.close()
  })

  test("verify() counts an entry under another key's name once: scanned is ok plus corrupt", async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: false })
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, `value ${i}`)
    const [file] = entryFiles(dir)
    fs.copyFileSync(file!, path.join(path.dirname(file!), path.basename(file!).slice(0, 2) + '0'.repeat(14)))
    const report = await cache.verify({ repair: false })
    assert.deepEqual({ scanned: report.scanned, ok: report.ok, corrupt: report.corrupt }, { scanned: 6, ok: 5, corrupt: 1 })
    await cache.close()
  })
})
