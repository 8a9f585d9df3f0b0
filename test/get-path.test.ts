/**
 * The file tier's get (issue 14): a small live entry is answered on the calling thread without
 * a promise, everything else the judged way. These tests hold what that path must keep: each
 * caller's value its own, bytes counted once, a planted FIFO a damaged file rather than a wait.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { runChildScript, tempDir } from './helpers.ts'
import { keyNames } from '../src/store/layout.ts'
import { disk } from '../src/store/disk.ts'

async function open(dir: string, options: Parameters<typeof Larder.open>[0] = {}): Promise<Larder> {
  return Larder.open({ dir, memory: false, maintenance: { interval: 0 }, ...options })
}

describe('file-tier get', () => {
  test('values of different sizes read concurrently are each their own: a value the caller keeps is intact after later gets', async () => {
    const dir = tempDir('larder-get-path')
    const cache = await open(dir, { serializer: 'raw' })
    const sizes = [1, 100, 1000, 5000, 20_000, 70_000]
    const bytesOf = (i: number): Buffer => Buffer.alloc(sizes[i]!, 0x41 + i)
    for (let i = 0; i < sizes.length; i++) await cache.set(`k${i}`, bytesOf(i))
    const kept = (await Promise.all(sizes.map((_, i) => cache.get(`k${i}`)))) as Buffer[]
    for (let round = 0; round < 3; round++) {
      const again = (await Promise.all(sizes.map((_, i) => cache.get(`k${sizes.length - 1 - i}`)))) as Buffer[]
      again.forEach((b) => b.fill(0)) // what a caller does with its own value touches nobody else's
    }
    kept.forEach((value, i) => assert.ok(value.equals(bytesOf(i)), `k${i} changed after later gets`))
    await cache.close()
  })

  test('a directory swapped in between the lstat and the read is judged, not a disk failure: no error, the breaker stays closed', async () => {
    const dir = tempDir('larder-get-path')
    const cache = await open(dir)
    await cache.set('k', { v: 1 })
    const errors: unknown[] = []
    cache.on('error', (error) => errors.push(error))
    // The race, made on demand: the first read of the entry meets what a directory gives.
    const real = disk.readSync
    let swapped = 0
    disk.readSync = ((...args: Parameters<typeof real>) => {
      if (swapped++ === 0) throw Object.assign(new Error('EISDIR: illegal operation on a directory, read'), { code: 'EISDIR' })
      return real(...args)
    }) as typeof real
    try {
      assert.deepEqual(await cache.get('k'), { v: 1 }, 'read again the judged way, where the file is whole again')
    } finally {
      disk.readSync = real
    }
    assert.equal(swapped > 1, true)
    assert.deepEqual(errors, [])
    const { breaker } = await cache.stats()
    assert.equal(breaker.failures, 0, 'not counted as a failing disk')
    assert.equal(breaker.state, 'closed')
    await cache.close()
  })

  test('each get of a JSON entry gives a new value: changing one changes no later one', async () => {
    const dir = tempDir('larder-get-path')
    const cache = await open(dir)
    await cache.set('rows', [{ id: 1, name: 'a' }])
    const first = (await cache.get('rows')) as { id: number; name: string }[]
    first[0]!.name = 'changed'
    first.push({ id: 2, name: 'b' })
    assert.deepEqual(await cache.get('rows'), [{ id: 1, name: 'a' }])
    await cache.close()
  })

  test('bytes read are counted once per hit, and once for an entry the plain path hands on (expired)', async () => {
    const dir = tempDir('larder-get-path')
    const cache = await open(dir)
    for (let i = 0; i < 3; i++) await cache.set(`k${i}`, { i, text: 'x'.repeat(100 * i) })
    await cache.set('soon', { gone: true }, { ttl: 1 })
    const sizeOf = (key: string): number => fs.statSync(entryFile(dir, key)).size
    const hitBytes = [0, 1, 2].reduce((sum, i) => sum + sizeOf(`k${i}`), 0)
    const soonBytes = sizeOf('soon')
    const before = (await cache.stats()).bytesRead
    for (let i = 0; i < 3; i++) for (let r = 0; r < 2; r++) assert.deepEqual(await cache.get(`k${i}`), { i, text: 'x'.repeat(100 * i) })
    await new Promise((resolve) => setTimeout(resolve, 5)) // past its 1 ms ttl
    assert.equal(await cache.get('soon'), undefined)
    assert.equal(fs.existsSync(entryFile(dir, 'soon')), false, 'the expired entry is removed by the read that found it')
    const stats = await cache.stats()
    assert.equal(stats.bytesRead - before, 2 * hitBytes + soonBytes)
    assert.equal(stats.hits, 6)
    assert.equal(stats.misses, 1)
    assert.equal(stats.corrupt, 0)
    await cache.close()
  })

  test(
    'a FIFO planted where an entry belongs: get, has, info and getStream return (a damaged file: counted, removed), never wait on it',
    { timeout: 60_000 },
    async () => {
      // A thread blocked in open() of a FIFO ignores SIGTERM; the child needs well under a second.
      const { code, out, err } = await runChildScript('entry-fifo-child.ts', [tempDir('larder-get-fifo')])
      assert.equal(code, 0, `the child did not finish: blocked on the FIFO? stdout ${out} stderr ${err.slice(0, 500)}`)
      const done = JSON.parse(out.slice(out.indexOf('done ') + 5)) as Record<string, unknown>
      assert.deepEqual(done, { value: null, has: false, info: null, stream: false, corrupt: 1, left: false })
    },
  )
})

/** Where `key`'s entry file is, in the default namespace. */
function entryFile(dir: string, key: string): string {
  const hash = keyNames.hash(key)
  return path.join(dir, 'v1', 'default', hash.slice(0, 2), hash)
}
