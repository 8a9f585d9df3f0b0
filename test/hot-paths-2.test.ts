// Issue #14, second pass: the hot paths made cheaper keep what they guarded. Speed itself is
import fs from 'node:fs'
import path from 'node:path'
// measured in bench/, never asserted here.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Larder, LarderError } from '../src/index.ts'
import { calledWithoutThrowing, tempDir } from './helpers.ts'

describe('hot paths, second pass (issue #14)', () => {
  test("a memory-tier hit answers with a promise; a closed cache rejects even for a key it held; a throwing 'hit' listener rejects", async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: true })
    await cache.set('k', { v: 1 })
    const answer = cache.get('k')
    assert.ok(answer instanceof Promise)
    assert.deepEqual(await answer, { v: 1 })
    assert.equal((await cache.stats()).memoryHits, 1)

    const boom = new Error('listener failed')
    const listener = (): never => {
      throw boom
    }
    cache.on('hit', listener)
    await assert.rejects(
      calledWithoutThrowing(() => cache.get('k'), 'get()'),
      (error) => error === boom,
    )
    cache.off('hit', listener)

    await cache.close()
    let closedRead: Promise<unknown> | undefined
    assert.doesNotThrow(() => {
      closedRead = cache.get('k')
    })
    await assert.rejects(closedRead!, (error) => error instanceof LarderError && error.code === 'ERR_CLOSED')
  })

  test('a memory-tier miss is asked of the disk once, and counted once', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir })
    await writer.set('k', 'on disk')
    await writer.close()
    const cache = await Larder.open({ dir, memory: true })
    assert.equal(await cache.get('k'), 'on disk') // a memory miss, a disk hit, promoted
    assert.equal(await cache.get('k'), 'on disk') // a memory hit
    assert.equal(await cache.get('absent'), undefined)
    const stats = await cache.stats()
    assert.equal(stats.hits, 2)
    assert.equal(stats.misses, 1)
    assert.equal(stats.memoryHits, 1)
    assert.equal(stats.tiers.memory!.hits, 1)
    await cache.close()
  })

  test('memory-tier hits are timed one in 64', async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: true })
    await cache.set('k', 1)
    const before = (await cache.stats()).tiers.memory!.latency.get.count
    for (let i = 0; i < 64 * 3; i++) assert.equal(await cache.get('k'), 1)
    const stats = await cache.stats()
    assert.equal(stats.memoryHits, 64 * 3)
    assert.equal(stats.tiers.memory!.latency.get.count - before, 3)
    await cache.close()
  })

  test('compressed values read back whole from a new instance at every size around the inflate chunk boundaries', async () => {
    const dir = tempDir()
    // compressible text (so every one of these is stored compressed), sizes around 16 KiB
    // (zlib's default chunk), 64 KiB and the one-read limit
    const sizes = [4096, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 60_000, 64 * 1024 - 100, 64 * 1024, 200_000]
    const text = (n: number): string => Array.from({ length: n }, (_, i) => 'abcdefghij'[(i * 7) % 10]!).join('')
    const writer = await Larder.open({ dir, serializer: 'raw' })
    for (const size of sizes) await writer.set(`k${size}`, Buffer.from(text(size)))
    await writer.close()
    const reader = await Larder.open({ dir, serializer: 'raw' })
    for (const size of sizes) {
      const info = await reader.info(`k${size}`)
      assert.ok(info !== undefined && info.size < size / 2, `${size} bytes stored compressed`)
      assert.deepEqual(await reader.get(`k${size}`), Buffer.from(text(size)))
    }
    const stats = await reader.stats()
    assert.equal(stats.corrupt, 0)
    assert.equal(stats.hits, sizes.length)
    await reader.close()
  })
})

test('memory-tier hits are logged for LFU only: under LRU no hit log is written (each hit hashed its key and fed the log)', async () => {
  for (const evictionPolicy of ['lru', 'lfu'] as const) {
    const dir = tempDir(`hits-${evictionPolicy}`)
    const cache = await Larder.open({ dir, memory: true, maintenance: false, evictionPolicy })
    await cache.set('hot', { id: 1 })
    for (let i = 0; i < 50; i++) assert.deepEqual(await cache.get('hot'), { id: 1 })
    await cache.close()
    const logs = fs
      .readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.parentPath.endsWith(path.join('meta', 'hits')))
    const logged = logs.reduce((n, e) => n + fs.statSync(path.join(e.parentPath, e.name)).size, 0)
    if (evictionPolicy === 'lru') assert.equal(logged, 0, 'no hit logged under LRU')
    else assert.ok(logged > 0, 'hits logged under LFU')
  }
})

test('a JSON value set is read back at its first read from memory, not at set: the same value, isolated from the caller, one parse in all', async () => {
  const cache = await Larder.open({ dir: tempDir(), memory: true, maintenance: false })
  const parse = JSON.parse
  let parses = 0
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    parses++
    return parse(text, reviver) as unknown
  }) as typeof JSON.parse
  try {
    const row = { id: 1, when: new Date(0), tags: ['a'] }
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, i === 1 ? row : { i })
    assert.equal(parses, 0, 'no set parsed its value')
    row.tags.push('changed by the caller')
    const first = await cache.get('k1')
    assert.deepEqual(first, { id: 1, when: '1970-01-01T00:00:00.000Z', tags: ['a'] }, 'as JSON gives it back, not the caller’s object')
    assert.equal(await cache.get('k1'), first, 'later hits share it')
    assert.equal(parses, 1, 'parsed once, at the first read')
    await cache.setMany([{ key: 'm', value: [1, 2] }])
    assert.deepEqual(await cache.get('m'), [1, 2])
    // getOrSet hands its caller the value as read back: parsed then, and held as it is.
    assert.deepEqual(await cache.getOrSet('g', () => ({ g: 1 })), { g: 1 })
    const before = parses
    assert.deepEqual(await cache.get('g'), { g: 1 })
    assert.equal(parses, before, 'held as getOrSet read it back')
  } finally {
    JSON.parse = parse
    await cache.close()
  }
})
