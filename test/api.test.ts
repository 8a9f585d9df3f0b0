import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Larder, LarderError } from '../src/index.ts'
import { entryFiles, tempDir } from './helpers.ts'
import { eventually } from './eventually.ts'

const rows = Array.from({ length: 8 }, (_, id) => ({
  id,
  name: `user ${id}`,
  email: `u${id}@example.com`,
  active: id % 2 === 0,
  score: id * 1.5,
}))

describe('round trips', () => {
  for (const serializer of ['json', 'v8', 'msgpack'] as const) {
    for (const compression of ['none', 'gzip', 'deflate', 'brotli'] as const) {
      test(`a ${serializer} value survives ${compression} compression, small and large`, async () => {
        const cache = await Larder.open({ dir: tempDir(), serializer, compression })
        const big = { rows: Array.from({ length: 500 }, () => rows).flat() } // ~50 KiB, compressible
        await cache.set('small', rows)
        await cache.set('big', big)
        assert.deepEqual(await cache.get('small'), rows)
        assert.deepEqual(await cache.get('big'), big)
        await cache.close()
      })
    }
  }

  test('the raw serializer returns strings as strings and bytes as Buffers', async () => {
    const cache = await Larder.open({ dir: tempDir(), serializer: 'raw' })
    await cache.set('s', 'héllo')
    await cache.set('b', new Uint8Array([0, 1, 255]))
    assert.equal(await cache.get('s'), 'héllo')
    assert.deepEqual(await cache.get('b'), Buffer.from([0, 1, 255]))
    await assert.rejects(cache.set('n', 42), { code: 'ERR_INVALID_VALUE' })
    await cache.close()
  })

  test('the json serializer stores Buffers as bytes, not as JSON arrays', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, compression: 'none' })
    const bytes = Buffer.alloc(10_000, 7)
    await cache.set('buf', bytes)
    assert.deepEqual(await cache.get('buf'), bytes)
    const [file] = entryFiles(dir)
    assert.ok((await import('node:fs')).statSync(file!).size < 10_200)
    await cache.close()
  })

  test('v8 and msgpack keep Dates, Maps and BigInts', async () => {
    for (const serializer of ['v8', 'msgpack'] as const) {
      const cache = await Larder.open({ dir: tempDir(), serializer })
      const value = { when: new Date(1_700_000_000_000), map: new Map([['a', 1]]), big: 12345678901234567890n }
      await cache.set('k', value)
      assert.deepEqual(await cache.get('k'), value)
      await cache.close()
    }
  })

  test('a custom serializer is used both ways', async () => {
    const serializer = {
      serialize: (v: unknown) => `custom:${JSON.stringify(v)}`,
      deserialize: (b: Buffer) => JSON.parse(b.toString().slice(7)) as unknown,
    }
    const dir = tempDir()
    const cache = await Larder.open({ dir, serializer })
    await cache.set('k', { a: [1, 2] })
    assert.deepEqual(await cache.get('k'), { a: [1, 2] })
    await cache.close()
    const plain = await Larder.open({ dir })
    await assert.rejects(plain.get('k'), { code: 'ERR_DESERIALIZE' })
    await plain.close()
  })

  test('zstd is accepted only where this Node has it', async () => {
    const zlib = await import('node:zlib')
    if (typeof (zlib as { zstdCompressSync?: unknown }).zstdCompressSync === 'function') {
      const cache = await Larder.open({ dir: tempDir(), compression: 'zstd', compressThreshold: 0 })
      await cache.set('k', rows)
      assert.deepEqual(await cache.get('k'), rows)
      await cache.close()
    } else {
      await assert.rejects(
        Larder.open({ dir: tempDir(), compression: 'zstd' }),
        (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && /zstd/.test(e.message) && e.field === 'compression',
      )
    }
  })

  test('values persist across instances', async () => {
    const dir = tempDir()
    const a = await Larder.open({ dir })
    await a.set('k', rows)
    await a.close()
    const b = await Larder.open({ dir })
    assert.deepEqual(await b.get('k'), rows)
    await b.close()
  })

  test('namespaces sharing a directory never see each other', async () => {
    const dir = tempDir()
    const a = await Larder.open({ dir, namespace: 'a' })
    const b = await Larder.open({ dir, namespace: 'b' })
    await a.set('k', 'from a')
    assert.equal(await b.get('k'), undefined)
    await b.clear()
    assert.equal(await a.get('k'), 'from a')
    await a.close()
    await b.close()
  })
})

describe('streams of set() values', () => {
  test('getStream of a large compressed set() value yields its serialized bytes', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    const value = { rows: Array.from({ length: 4000 }, () => rows).flat() } // ~2.6 MB of JSON
    await cache.set('big', value)
    const stream = await cache.getStream('big')
    assert.ok(stream)
    const chunks: Buffer[] = []
    for await (const chunk of stream) chunks.push(chunk as Buffer)
    assert.deepEqual(JSON.parse(Buffer.concat(chunks).toString()), value)
    assert.equal((await cache.stats()).corrupt, 0)
    await cache.close()
  })
})

describe('layout', () => {
  test('entries spread over hash partitions and no key appears in any path', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const keys = Array.from({ length: 300 }, (_, i) => `user:${i}/../../etc/passwd`)
    for (const key of keys) await cache.set(key, 1)
    const files = entryFiles(dir)
    assert.equal(files.length, 300)
    const partitions = new Set(files.map((f) => f.split('/').at(-2)))
    assert.ok(partitions.size > 150, `only ${partitions.size} partitions used`)
    for (const file of files) {
      assert.match(file.slice(dir.length), /^\/v1\/default\/[0-9a-f]{2}\/[0-9a-f]{16}$/)
      assert.ok(!file.includes('user'))
    }
    const fs = await import('node:fs')
    assert.match(fs.readFileSync(`${dir}/CACHEDIR.TAG`, 'utf8'), /^Signature: 8a477f597d28d172789f06886806bc55/)
    await cache.close()
  })
})

describe('expiry', () => {
  test('an entry expires after its ttl and is removed lazily', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.set('short', 1, { ttl: 30 })
    const expiredBy = Date.now() + 30 // created no later than now
    await cache.set('long', 2, { ttl: '1h' })
    await cache.set('forever', 3, { ttl: 0 })
    assert.equal(entryFiles(dir).length, 3)
    // Wait until the ttl has certainly passed, then check state: no margin to lose under load.
    while (Date.now() <= expiredBy) await new Promise((r) => setTimeout(r, expiredBy - Date.now() + 1))
    assert.equal(await cache.get('short'), undefined)
    assert.equal(await cache.has('short'), false)
    assert.equal(await cache.get('long'), 2)
    assert.equal(await cache.get('forever'), 3)
    assert.equal((await cache.stats()).expired, 1)
    await new Promise((r) => setImmediate(r))
    assert.equal(entryFiles(dir).length, 2)
    await cache.close()
  })

  test('defaultTtl applies to entries set without a ttl', async () => {
    const cache = await Larder.open({ dir: tempDir(), defaultTtl: 30 })
    await cache.set('k', 1)
    await new Promise((r) => setTimeout(r, 60))
    assert.equal(await cache.get('k'), undefined)
    await cache.close()
  })
})

describe('tags', () => {
  test('invalidating a tag makes its entries miss and leaves others', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.set('u1', 1, { tags: ['users'] })
    await cache.set('p1', 2, { tags: ['posts'] })
    await cache.set('both', 3, { tags: ['users', 'posts'] })
    await cache.invalidateTags(['users'])
    assert.equal(await cache.get('u1'), undefined)
    assert.equal(await cache.get('both'), undefined)
    assert.equal(await cache.get('p1'), 2)
    await cache.close()
  })

  test('a value set after the invalidation is fresh', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.set('u1', 'old', { tags: ['users'] })
    await cache.invalidateTags(['users'])
    await cache.set('u1', 'new', { tags: ['users'] })
    assert.equal(await cache.get('u1'), 'new')
    await cache.close()
  })

  test('an invalidation by another instance is seen through the memory tier (within its ~5 ms window)', async () => {
    const dir = tempDir()
    const a = await Larder.open({ dir, memory: true })
    const b = await Larder.open({ dir })
    await a.set('q', [1, 2], { tags: ['orders'] })
    assert.deepEqual(await a.get('q'), [1, 2])
    await b.invalidateTags(['orders'])
    await eventually(async () => (await a.get('q')) === undefined, "A's memory tier kept serving an entry of a tag B invalidated")
    await a.close()
    await b.close()
  })
})

describe('memory tier', () => {
  test('a disk hit is promoted and then served from memory', async () => {
    const dir = tempDir()
    const w = await Larder.open({ dir })
    await w.set('k', rows)
    await w.close()
    const cache = await Larder.open({ dir, memory: { maxEntries: 10 } })
    assert.deepEqual(await cache.get('k'), rows)
    assert.deepEqual(await cache.get('k'), rows)
    const stats = await cache.stats()
    assert.equal(stats.hits, 2)
    assert.equal(stats.memoryHits, 1)
    assert.equal(stats.memoryEntries, 1)
    await cache.close()
  })

  test('the memory tier honours maxEntries and entry expiry', async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: { maxEntries: 2 } })
    await cache.set('a', 1)
    await cache.set('b', 2)
    await cache.set('c', 3, { ttl: 20 })
    assert.equal((await cache.stats()).memoryEntries, 2)
    await new Promise((r) => setTimeout(r, 40))
    assert.equal(await cache.get('c'), undefined)
    assert.equal(await cache.get('a'), 1) // evicted from memory, still on disk
    await cache.close()
  })
})

describe('operations', () => {
  test('has, delete and their return values', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    assert.equal(await cache.has('k'), false)
    await cache.set('k', 0)
    assert.equal(await cache.has('k'), true)
    assert.equal(await cache.delete('k'), true)
    assert.equal(await cache.delete('k'), false)
    assert.equal(await cache.has('k'), false)
    await cache.close()
  })

  test('delete of an expired or tag-invalidated entry removes its file but returns false: it was not there', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.set('short', 1, { ttl: 1 })
    await cache.set('tagged', 2, { tags: ['t'] })
    await cache.set('live', 3)
    await new Promise((resolve) => setTimeout(resolve, 5))
    await cache.invalidateTags(['t'])
    assert.equal(entryFiles(dir).length, 3)
    assert.equal(await cache.delete('short'), false)
    assert.equal(await cache.deleteMany(['tagged', 'live']), 1)
    assert.equal(entryFiles(dir).length, 0, 'the stale files went too')
    assert.equal((await cache.stats()).deletes, 1)
    await cache.close()
  })

  test('getMany, setMany and deleteMany keep key order and count', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.setMany([
      { key: 'a', value: 1 },
      { key: 'b', value: 'two', ttl: '1h', tags: ['t'] },
    ])
    assert.deepEqual(await cache.getMany(['b', 'missing', 'a']), ['two', undefined, 1])
    assert.equal(await cache.deleteMany(['a', 'b', 'missing']), 2)
    assert.deepEqual(await cache.getMany(['a', 'b']), [undefined, undefined])
    await cache.close()
  })

  test('clear removes every entry', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, memory: true })
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, i)
    await cache.clear()
    assert.equal(await cache.get('k1'), undefined)
    assert.equal(entryFiles(dir).length, 0)
    await cache.set('after', 1)
    assert.equal(await cache.get('after'), 1)
    await cache.close()
  })

  test('increment and decrement start from 0 and never lose concurrent updates', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    assert.equal(await cache.increment('n'), 1)
    assert.equal(await cache.increment('n', 5), 6)
    assert.equal(await cache.decrement('n', 2), 4)
    await Promise.all(Array.from({ length: 100 }, () => cache.increment('c')))
    assert.equal(await cache.get('c'), 100)
    await cache.set('s', 'text')
    await assert.rejects(cache.increment('s'), { code: 'ERR_INVALID_VALUE' })
    await assert.rejects(cache.increment('n', Number.NaN), { code: 'ERR_INVALID_VALUE', field: 'delta' })
    await cache.close()
  })

  test('increment keeps the entry expiry', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.set('n', 1, { ttl: '1h', tags: ['t'] })
    const before = (await cache.info('n'))!
    await cache.increment('n')
    const after = (await cache.info('n'))!
    assert.equal(after.expiresAt, before.expiresAt)
    assert.deepEqual(after.tags, ['t'])
    assert.equal(await cache.get('n'), 2)
    await cache.close()
  })
})

describe('getOrSet', () => {
  test('200 concurrent callers share one loader call', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    let calls = 0
    const loader = async () => {
      calls++
      await new Promise((r) => setTimeout(r, 20))
      return { computed: true }
    }
    const results = await Promise.all(Array.from({ length: 200 }, () => cache.getOrSet('k', loader)))
    assert.equal(calls, 1)
    assert.ok(results.every((r) => r.computed === true))
    assert.deepEqual(await cache.get('k'), { computed: true })
    await cache.close()
  })

  test('a failing loader rejects every waiter and caches nothing', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    let calls = 0
    const loader = async () => {
      calls++
      await new Promise((r) => setTimeout(r, 10))
      throw new Error('db down')
    }
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => cache.getOrSet('k', loader)))
    assert.equal(calls, 1)
    assert.ok(results.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'db down'))
    assert.equal(await cache.has('k'), false)
    await cache.close()
  })

  test('with grace, a recently expired value is served when the loader fails', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.set('k', 'stale', { ttl: 20 })
    await new Promise((r) => setTimeout(r, 40))
    const value = await cache.getOrSet(
      'k',
      () => {
        throw new Error('down')
      },
      { grace: '1m' },
    )
    assert.equal(value, 'stale')
    await assert.rejects(
      cache.getOrSet(
        'k',
        () => {
          throw new Error('down')
        },
        { grace: 5 },
      ),
      /down/,
    )
    assert.equal(await cache.getOrSet('k', () => 'fresh', { grace: '1m', ttl: '1h' }), 'fresh')
    assert.equal(await cache.get('k'), 'fresh')
    await cache.close()
  })
})

describe('events and stats', () => {
  test('hit, miss, set and delete are emitted and counted', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    const seen: string[] = []
    for (const name of ['hit', 'miss', 'set', 'delete'] as const) cache.on(name, (key: string) => seen.push(`${name}:${key}`))
    await cache.set('k', 1)
    await cache.get('k')
    await cache.get('nope')
    await cache.delete('k')
    assert.deepEqual(seen, ['set:k', 'hit:k', 'miss:nope', 'delete:k'])
    const stats = await cache.stats()
    assert.equal(stats.hits, 1)
    assert.equal(stats.misses, 1)
    assert.equal(stats.hitRate, 0.5)
    assert.equal(stats.sets, 1)
    assert.equal(stats.deletes, 1)
    assert.ok(stats.bytesWritten > 0 && stats.bytesRead > 0)
    assert.equal(stats.latency.get.count, 2)
    assert.ok(stats.latency.set.p50 > 0)
    assert.equal(stats.breaker.state, 'closed')
    await cache.close()
  })

  test('hit events name the tier, reach only current listeners, and memory hits are counted either way', async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: true })
    await cache.set('k', 1)
    const seen: string[] = []
    const listener = (key: string, tier: string): void => void seen.push(`${key}:${tier}`)
    cache.on('hit', listener)
    await cache.get('k')
    cache.off('hit', listener)
    await cache.get('k')
    cache.once('hit', listener)
    await cache.get('k')
    await cache.get('k')
    assert.deepEqual(seen, ['k:memory', 'k:memory'])
    const stats = await cache.stats()
    assert.equal(stats.hits, 4)
    assert.equal(stats.memoryHits, 4)
    await cache.close()
  })
})
