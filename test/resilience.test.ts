import assert from 'node:assert/strict'
import fs from 'node:fs'
import { once } from 'node:events'
import { afterEach, describe, test } from 'node:test'
import { Larder, LarderError } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { eventually } from './eventually.ts'
import { tempDir } from './helpers.ts'

const fastBreaker = { volumeThreshold: 2, resetTimeout: 150, errorThresholdPercentage: 50 }
const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

function failing(code: string) {
  return () => {
    throw Object.assign(new Error(`${code}: injected`), { code })
  }
}

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))

describe('resilience', () => {
  test('the cache dir replaced by a regular file: no throw, the breaker opens, then recovers', async () => {
    const dir = `${tempDir()}/cache`
    const cache = await Larder.open({ dir, breaker: fastBreaker })
    const states: string[] = []
    cache.on('breaker', (s) => states.push(s))
    await cache.set('kept', 'value')

    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    for (let i = 0; i < 5; i++) {
      assert.equal(await cache.get('kept'), undefined)
      await cache.set(`k${i}`, i) // dropped, not thrown
    }
    let stats = await cache.stats()
    assert.equal(stats.breaker.state, 'open')
    assert.ok(stats.errors >= 2, `errors ${stats.errors}`)
    assert.ok(stats.dropped >= 1)
    assert.ok(states.includes('open'))

    fs.rmSync(dir)
    fs.renameSync(`${dir}.away`, dir)
    // opossum's reset timer is unref'd (it never holds a process open), so hold the loop
    // open ourselves while we wait for the half-open event.
    const keepAlive = setTimeout(() => {}, 10_000)
    await once(cache, 'breaker') // → halfOpen
    clearTimeout(keepAlive)
    assert.equal(await cache.get('kept'), 'value') // the trial operation succeeds
    stats = await cache.stats()
    assert.equal(stats.breaker.state, 'closed')
    assert.deepEqual(states.slice(-2), ['halfOpen', 'closed'])
    await cache.set('after', 1)
    assert.equal(await cache.get('after'), 1)
    await cache.close()
  })

  test('a setStream that is the half-open trial holds it only until its head is written, not until its (slow) source ends', async () => {
    const dir = `${tempDir()}/cache`
    const cache = await Larder.open({ dir, memory: false, breaker: fastBreaker })
    await cache.set('kept', 'value')
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, i)
    assert.equal((await cache.stats()).breaker.state, 'open')
    fs.rmSync(dir)
    fs.renameSync(`${dir}.away`, dir)
    const keepAlive = setTimeout(() => {}, 10_000)
    await eventually(async () => (await cache.stats()).breaker.state === 'halfOpen', 'the breaker half-open')
    clearTimeout(keepAlive)
    // An upload whose client is slow: one chunk, then nothing until the test lets it end.
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    async function* slowSource(): AsyncGenerator<Buffer> {
      yield Buffer.from('first bytes ')
      await released
      yield Buffer.from('last bytes')
    }
    const upload = cache.setStream('upload', slowSource())
    try {
      // The disk is healthy again: once the stream's head is on it, the breaker closes and the
      // other calls are served while the upload goes on (they were refused until it ended).
      await eventually(async () => (await cache.get('kept')) === 'value', 'a stored key read during the upload', 5000)
      assert.equal((await cache.stats()).breaker.state, 'closed')
      await cache.set('during', 1)
      assert.equal(await cache.get('during'), 1)
    } finally {
      release()
      await upload
    }
    assert.equal(String(await cache.get('upload')), 'first bytes last bytes')
    await cache.close()
  })

  test('a directory that vanishes under a running cache is recreated on the next write', async () => {
    const dir = `${tempDir()}/cache`
    const cache = await Larder.open({ dir })
    await cache.set('a', 1)
    fs.rmSync(dir, { recursive: true })
    assert.equal(await cache.get('a'), undefined)
    await cache.set('b', 2)
    assert.equal(await cache.get('b'), 2)
    assert.equal((await cache.stats()).errors, 0, 'ENOENT is a miss, not a failure')
    await cache.close()
  })

  for (const code of ['EIO', 'ENOSPC', 'EACCES', 'EROFS', 'EMFILE', 'EPERM']) {
    test(`${code} on every disk call: reads miss, writes drop, errors are emitted, nothing throws`, async () => {
      const cache = await Larder.open({ dir: tempDir(), breaker: fastBreaker })
      await cache.set('k', 'v')
      const errors: LarderError[] = []
      cache.on('error', (e) => errors.push(e as LarderError))
      disk.openSync = failing(code)
      disk.writeSync = failing(code)
      disk.open = failing(code)
      assert.equal(await cache.get('k'), undefined)
      await cache.set('k2', 'v2')
      assert.equal(await cache.has('k'), false)
      assert.equal(await cache.getStream('k'), undefined)
      await cache.setStream('s', Buffer.from('bytes'))
      assert.equal(await cache.getOrSet('g', () => 'loaded'), 'loaded')
      const stats = await cache.stats()
      assert.ok(stats.errors >= 2)
      assert.ok(stats.dropped >= 2)
      assert.equal(stats.breaker.state, 'open')
      assert.ok(errors.length >= 2)
      assert.ok(errors.every((e) => e.code === 'ERR_UNAVAILABLE'))
      assert.equal((errors[0]!.cause as { code: string }).code, code)
      await cache.close()
    })
  }

  test('with failOpen false, disk failures reject with ERR_UNAVAILABLE', async () => {
    const cache = await Larder.open({ dir: tempDir(), failOpen: false, breaker: fastBreaker })
    await cache.set('k', 'v')
    disk.openSync = failing('EIO')
    disk.writeSync = failing('EIO')
    await assert.rejects(cache.get('k'), (e: LarderError) => e.code === 'ERR_UNAVAILABLE' && (e.cause as { code: string }).code === 'EIO')
    await assert.rejects(cache.set('k', 'w'), { code: 'ERR_UNAVAILABLE' })
    await assert.rejects(cache.get('k'), { code: 'ERR_UNAVAILABLE' }) // breaker open now
    assert.equal((await cache.stats()).breaker.state, 'open')
    await cache.close()
  })

  test('with failOpen false, opening an unusable directory rejects with ERR_UNAVAILABLE', async () => {
    // A disk that fails as the directory is made (a path through a file is the user's mistake
    // instead: ERR_INVALID_OPTION, test/foreign-dir.test.ts).
    const dir = `${tempDir()}/cache`
    disk.mkdirSync = failing('EIO')
    await assert.rejects(Larder.open({ dir, failOpen: false }), { code: 'ERR_UNAVAILABLE' })
    const tolerant = await Larder.open({ dir })
    await tolerant.set('k', 1)
    assert.equal(await tolerant.get('k'), undefined)
    assert.ok((await tolerant.stats()).errors >= 1)
    await tolerant.close()
  })

  test('an error event with no listener does not throw into the host', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    disk.writeSync = failing('ENOSPC')
    await cache.set('k', 'v')
    assert.equal((await cache.stats()).dropped, 1)
    await cache.close()
  })

  test('increment after a read the disk failed (EIO, fail-open): a miss, but the stored counter is not overwritten; a counted drop', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.set('ctr', 1000)
    const isEntry = (file: unknown): boolean => /[/\\][0-9a-f]{2}[/\\][0-9a-f]{16}$/.test(String(file))
    const eio = failing('EIO')
    disk.openSync = ((file: string, ...rest: unknown[]) =>
      isEntry(file) ? eio() : (realDisk.openSync as (...args: unknown[]) => number)(file, ...rest)) as typeof disk.openSync
    const rejected = (): Promise<never> => Promise.reject(Object.assign(new Error('EIO: injected'), { code: 'EIO' }))
    disk.openFd = (file, ...rest) => (isEntry(file) ? rejected() : realDisk.openFd(file, ...rest))
    disk.open = ((file: string, ...rest: unknown[]) =>
      isEntry(file) ? rejected() : (realDisk.open as (...args: unknown[]) => unknown)(file, ...rest)) as typeof disk.open
    assert.equal(await cache.increment('ctr', 5), 5, 'the read failed: a miss, as reads fail open')
    Object.assign(disk, realDisk)
    assert.equal((await cache.stats()).dropped, 1, 'its write was not made: counted as dropped')
    assert.equal(await cache.get('ctr'), 1000, 'the counter the read could not see is intact')
    assert.equal(await cache.increment('ctr', 5), 1005)
    await cache.close()
  })

  test('setMany with failOpen false rejects once every item is done: its other items are written by then, not after', async () => {
    const cache = await Larder.open({ dir: tempDir(), failOpen: false, breaker: { volumeThreshold: 1000 } })
    let failed = false
    const failOnce = (to: unknown): void => {
      if (failed || !/[0-9a-f]{16}$/.test(String(to))) return
      failed = true
      throw Object.assign(new Error('EIO: injected'), { code: 'EIO' })
    }
    disk.renameSync = (from, to) => {
      failOnce(to)
      realDisk.renameSync(from, to)
    }
    disk.rename = async (from, to) => {
      failOnce(to)
      await realDisk.rename(from, to)
    }
    const items = Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: i }))
    await assert.rejects(cache.setMany(items), { code: 'ERR_UNAVAILABLE' })
    const stats = await cache.stats()
    assert.equal(stats.sets, 39, 'the 39 other items were written before the call rejected')
    Object.assign(disk, realDisk)
    assert.equal((await cache.getMany(items.map((item) => item.key))).filter((v) => v !== undefined).length, 39)
    await cache.close()
  })

  test('no unhandled rejection escaped any resilience test', async () => {
    await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(unhandled, [])
  })
})
