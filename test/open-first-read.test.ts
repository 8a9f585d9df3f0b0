/**
 * A get that has been finding files opens the entry file first (one walk of its path) instead
 * of an lstat and then an open (FileTier's #foundScore). That path must judge what it meets as
 * the lstat-first one does: a symlink, a directory or a FIFO in an entry's place is removed
 * (only it, never what a link points to) and read as a miss; a file gone is a miss and no
 * failure; a failing disk opens the breaker and throws nothing. Each case first reads enough
 * hits that the next read takes the open-first path.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterEach, describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { entryFiles, tempDir } from './helpers.ts'

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

/** A cache whose get has just found 20 files in a row, and the entry file of `key`. */
async function warmed(
  key: string,
  { createdAgo = 0, ...options }: { breaker?: object; createdAgo?: number } = {},
): Promise<{ cache: Larder; dir: string; file: string }> {
  const dir = tempDir('larder-open-first')
  const cache = await Larder.open({ dir, ...options })
  // `createdAgo`: the entry is stamped that long ago (its file written now), before any other
  // (a cache's creation times only ever go forward).
  const realNow = Date.now
  if (createdAgo > 0) Date.now = () => realNow() - createdAgo
  try {
    await cache.set(key, { planted: false })
  } finally {
    Date.now = realNow
  }
  const [file] = entryFiles(dir) as [string]
  for (let i = 0; i < 20; i++) await cache.set(`warm${i}`, { i })
  for (let i = 0; i < 20; i++) assert.deepEqual(await cache.get(`warm${i}`), { i })
  return { cache, dir, file }
}

/** Every open of `file` made through larder's disk calls, with the flags it asked for. */
function watchOpens(): { path: string; lstatFirst: boolean }[] {
  const seen: { path: string; lstatFirst: boolean }[] = []
  let lastLstat = ''
  disk.lstatSync = ((file: string, ...rest: unknown[]) => {
    lastLstat = file
    return (realDisk.lstatSync as (...args: unknown[]) => unknown)(file, ...rest)
  }) as typeof disk.lstatSync
  disk.openSync = ((file: string, ...rest: unknown[]) => {
    seen.push({ path: file, lstatFirst: lastLstat === file })
    return (realDisk.openSync as (...args: unknown[]) => number)(file, ...rest)
  }) as typeof disk.openSync
  return seen
}

describe('get that opens the entry file first', () => {
  test('is taken after a run of hits, and a run of misses goes back to the lstat first', async () => {
    const { cache, file } = await warmed('k')
    const opens = watchOpens()
    assert.deepEqual(await cache.get('k'), { planted: false })
    assert.deepEqual(
      opens.filter((o) => o.path === file),
      [{ path: file, lstatFirst: false }],
    )
    for (let i = 0; i < 10; i++) assert.equal(await cache.get(`absent${i}`), undefined)
    opens.length = 0
    assert.deepEqual(await cache.get('k'), { planted: false })
    assert.deepEqual(
      opens.filter((o) => o.path === file),
      [{ path: file, lstatFirst: true }],
    )
    assert.equal((await cache.stats()).errors, 0)
    await cache.close()
  })

  test('a file gone is a miss, not a failure', async () => {
    const { cache, file } = await warmed('k')
    fs.rmSync(file)
    assert.equal(await cache.get('k'), undefined)
    const stats = await cache.stats()
    assert.equal(stats.errors, 0)
    assert.equal(stats.corrupt, 0)
    await cache.close()
  })

  test('a symlink in the entry\u2019s place is removed, what it points to is kept, and the read misses', async () => {
    const { cache, dir, file } = await warmed('k')
    // A copy of a real entry of another key outside the cache: valid bytes, never ours.
    const outside = path.join(tempDir('larder-open-first-outside'), 'entry')
    fs.copyFileSync(
      entryFiles(dir).find((f) => f !== file)!,
      outside,
    )
    fs.rmSync(file)
    fs.symlinkSync(outside, file)
    assert.equal(await cache.get('k'), undefined)
    assert.equal(fs.existsSync(file), false, 'the link is removed')
    assert.ok(fs.statSync(outside).isFile(), 'its target is untouched')
    assert.equal((await cache.stats()).corrupt, 1)
    await cache.close()
  })

  test('a directory in the entry\u2019s place reads as a miss, is cleared away, and the key can be set again', async () => {
    const { cache, file } = await warmed('k')
    fs.rmSync(file)
    fs.mkdirSync(file)
    fs.writeFileSync(path.join(file, 'inside'), 'planted')
    assert.equal(await cache.get('k'), undefined)
    assert.equal(fs.existsSync(file), false)
    assert.equal((await cache.stats()).errors, 0)
    await cache.set('k', { planted: false })
    assert.deepEqual(await cache.get('k'), { planted: false })
    await cache.close()
  })

  test('a FIFO in the entry\u2019s place never blocks the read, and is removed', async () => {
    const { cache, file } = await warmed('k')
    fs.rmSync(file)
    execFileSync('mkfifo', [file])
    assert.equal(await cache.get('k'), undefined)
    assert.equal(fs.existsSync(file), false)
    assert.equal((await cache.stats()).corrupt, 1)
    await cache.close()
  })

  for (const warm of [true, false]) {
    test(`a socket in the entry\u2019s place is a miss, removed, and no disk failure (${warm ? 'the open first' : 'the lstat first'})`, async () => {
      const { cache, dir, file } = await warmed('k')
      if (!warm) for (let i = 0; i < 10; i++) assert.equal(await cache.get(`absent${i}`), undefined)
      fs.rmSync(file)
      const server = net.createServer()
      await new Promise<void>((resolve) => server.listen(file, resolve))
      try {
        for (let i = 0; i < 10; i++) assert.equal(await cache.get('k'), undefined)
        const stats = await cache.stats()
        assert.equal(stats.errors, 0, 'a socket is no failing disk')
        assert.equal(stats.breaker.state, 'closed')
        assert.equal(stats.corrupt, 1)
        assert.equal(fs.existsSync(file), false, 'the socket is removed')
        assert.deepEqual(await cache.get('warm1'), { i: 1 }, 'the cache still serves')
        assert.ok(entryFiles(dir).length > 0)
      } finally {
        server.close()
      }
      await cache.close()
    })
  }

  test('EIO on the open: the read misses, the error is counted, the breaker opens', async () => {
    const { cache } = await warmed('k', { breaker: { volumeThreshold: 2, resetTimeout: 60_000, errorThresholdPercentage: 50 } })
    const errors: unknown[] = []
    cache.on('error', (error) => errors.push(error))
    disk.openSync = () => {
      throw Object.assign(new Error('EIO: injected'), { code: 'EIO' })
    }
    // 41 successes came before: the breaker opens once failures pass half of the window.
    for (let i = 0; i < 60; i++) assert.equal(await cache.get('k'), undefined)
    const stats = await cache.stats()
    assert.ok(stats.errors >= 2, `errors ${stats.errors}`)
    assert.equal(stats.breaker.state, 'open')
    assert.ok(errors.length >= 2)
    Object.assign(disk, realDisk)
    await cache.close()
  })
})

describe('a hot key read without an fstat', () => {
  /** Counts fstat calls from here on. */
  function countFstats(): { count: number } {
    const seen = { count: 0 }
    disk.fstatSync = ((...args: unknown[]) => {
      seen.count++
      return (realDisk.fstatSync as (...args: unknown[]) => unknown)(...args)
    }) as typeof disk.fstatSync
    return seen
  }

  test('a hit reads no fstat unless the entry is older than touchAfter and its last use is not remembered; every one with touchAfter 0', async () => {
    const { cache } = await warmed('k')
    const fstats = countFstats()
    for (let i = 0; i < 5; i++) assert.deepEqual(await cache.get('k'), { planted: false })
    assert.equal(fstats.count, 0, 'an entry created within touchAfter: its file was used since, no mtime to read')
    await cache.close()

    // An entry created two minutes ago, last used then: its first hit reads the mtime and
    // touches the file at once.
    const old = await warmed('old', { createdAgo: 120_000 })
    const twoMinutesAgo = (Date.now() - 120_000) / 1000
    fs.utimesSync(old.file, twoMinutesAgo, twoMinutesAgo)
    fstats.count = 0
    const before = Date.now()
    assert.deepEqual(await old.cache.get('old'), { planted: false })
    assert.equal(fstats.count, 1, 'the first hit on an old entry reads its mtime')
    assert.ok(fs.statSync(old.file).mtimeMs >= before - 1000, 'and touches a file unused for two minutes at once')
    // The next hit reads it once more (now within the minute: that hit is remembered), the
    // hits after it do not.
    fstats.count = 0
    for (let i = 0; i < 5; i++) assert.deepEqual(await old.cache.get('old'), { planted: false })
    assert.equal(fstats.count, 1, 'the hits after the one remembered read no mtime')
    await old.cache.close()

    const recent = await warmed('recent', { createdAgo: 120_000 })
    fstats.count = 0
    const touched = fs.statSync(recent.file).mtimeMs
    assert.deepEqual(await recent.cache.get('recent'), { planted: false })
    assert.equal(fstats.count, 1, 'an old entry whose file was used lately: its mtime read once')
    assert.equal(fs.statSync(recent.file).mtimeMs, touched, 'a file used within the minute is not touched at once')
    await recent.cache.close()

    const dir = tempDir('larder-open-first-touch0')
    const eager = await Larder.open({ dir, maintenance: { touchAfter: 0 } })
    for (let i = 0; i < 20; i++) await eager.set(`warm${i}`, { i })
    for (let i = 0; i < 20; i++) assert.deepEqual(await eager.get(`warm${i}`), { i })
    fstats.count = 0
    for (let i = 0; i < 5; i++) assert.deepEqual(await eager.get('warm1'), { i: 1 })
    assert.equal(fstats.count, 5, 'touchAfter 0 touches at every hit, so every hit reads the mtime')
    await eager.close()
  })

  test('a hot key whose entry grew past what one read without an fstat takes is read whole', async () => {
    const { cache, file } = await warmed('k')
    assert.deepEqual(await cache.get('k'), { planted: false })
    // Random text: compression cannot bring it under 16 KiB.
    const big = { text: randomBytes(30_000).toString('base64') }
    await cache.set('k', big)
    const fstats = countFstats()
    const opens = watchOpens()
    for (let i = 0; i < 3; i++) assert.deepEqual(await cache.get('k'), big)
    assert.equal((await cache.stats()).errors, 0)
    assert.equal(fstats.count, 3, 'each read past the room asks the size')
    assert.equal(opens.filter((o) => o.path === file).length, 3, 'and goes on with the descriptor it has: one open a read')
    await cache.close()
  })

  test('a hot key\u2019s file replaced by a FIFO (a read at a position: ESPIPE) or a directory (EISDIR): a miss, removed, no disk failure', async () => {
    for (const plant of ['fifo', 'directory'] as const) {
      const { cache, file } = await warmed('k')
      for (let i = 0; i < 3; i++) assert.deepEqual(await cache.get('k'), { planted: false })
      fs.rmSync(file)
      let writer: number | undefined
      if (plant === 'fifo') {
        execFileSync('mkfifo', [file])
        // With a writer holding it (Linux lets one open it for both): whatever a reader could
        // otherwise make of an empty FIFO, it is not a file.
        writer = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
      } else fs.mkdirSync(file)
      const errors: unknown[] = []
      cache.on('error', (error) => errors.push(error))
      try {
        assert.equal(await cache.get('k'), undefined, plant)
        assert.deepEqual(errors, [], plant)
        const stats = await cache.stats()
        assert.equal(stats.errors, 0, `${plant}: no failing disk`)
        assert.equal(stats.breaker.state, 'closed')
        assert.equal(fs.existsSync(file), false, `${plant}: removed`)
      } finally {
        if (writer !== undefined) fs.closeSync(writer)
      }
      await cache.set('k', { again: true })
      assert.deepEqual(await cache.get('k'), { again: true })
      await cache.close()
    }
  })
})
