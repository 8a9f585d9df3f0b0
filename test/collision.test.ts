/**
 * Two keys whose 64-bit hashes collide share one entry file name. larder stores the key in the
 * entry and compares it on every read, so the key that does not own the file reads as a miss
 * and never removes the other key's entry. A real xxhash64 collision cannot be found on
 * demand, so the key-naming seam (src/store/layout.ts `keyNames`) maps two keys to one name.
 */
import { afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Larder } from '../src/index.ts'
import { keyNames } from '../src/store/layout.ts'
import { entryFiles, tempDir } from './helpers.ts'

const realHash = keyNames.hash
afterEach(() => {
  keyNames.hash = realHash
})

/** Makes `a` and `b` hash to the same name (a's real one). */
function collide(a: string, b: string): void {
  keyNames.hash = (key) => realHash(key === b ? a : key)
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of stream) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}

describe('a hash collision', () => {
  for (const [label, value] of [
    ['small', { owner: 'a', n: 1 }],
    ['over 64 KiB', Buffer.alloc(100 * 1024, 7)],
  ] as const) {
    test(`(${label} entry) reads as a miss for the other key and leaves the owner's entry alone`, async () => {
      const dir = tempDir('larder-collision')
      collide('owner', 'intruder')
      const cache = await Larder.open({ dir, maintenance: false, compression: 'none' })
      const corrupt: string[] = []
      cache.on('corrupt', (info) => corrupt.push(info.reason))
      await cache.set('owner', value)
      const [file] = entryFiles(dir)
      const bytes = fs.readFileSync(file!)

      assert.equal(await cache.get('intruder'), undefined)
      assert.equal(await cache.has('intruder'), false)
      assert.equal(await cache.getStream('intruder'), undefined)
      assert.equal(await cache.info('intruder'), undefined)
      assert.equal(await cache.delete('intruder'), false, 'delete of the other key reports nothing there')
      assert.deepEqual(fs.readFileSync(file!), bytes, "the owner's entry file is untouched")
      assert.deepEqual(corrupt, [], 'a collision is not damage')

      assert.deepEqual(await cache.get('owner'), value)
      const stats = await cache.stats()
      assert.equal(stats.corrupt, 0)
      assert.equal(stats.deletes, 0)
      await cache.close()

      // From a fresh instance (no memory tier involved), and through a stream.
      const again = await Larder.open({ dir, maintenance: false })
      assert.equal(await again.get('intruder'), undefined)
      assert.deepEqual(await again.get('owner'), value)
      const stream = await again.getStream('owner')
      assert.ok(stream !== undefined)
      await drain(stream)
      await again.close()
    })
  }

  test('the later writer of two colliding keys owns the name: the earlier key then misses, never reads the other value', async () => {
    const dir = tempDir('larder-collision')
    collide('first', 'second')
    const cache = await Larder.open({ dir, maintenance: false })
    await cache.set('first', 'value of first')
    await cache.set('second', 'value of second')
    assert.equal(entryFiles(dir).length, 1)
    assert.equal(await cache.get('second'), 'value of second')
    await cache.close()
    const fresh = await Larder.open({ dir, maintenance: false })
    assert.equal(await fresh.get('first'), undefined, "never the other key's value")
    assert.equal(await fresh.get('second'), 'value of second')
    await fresh.close()
  })
})
