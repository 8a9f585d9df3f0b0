/**
 * Big sets (issue 14, W4): a value the file tier compresses has its temp file created through
 * the thread pool while it is being compressed (atomic-write.ts writeFileAtomicMaking,
 * FileTier.set), instead of compress-then-create. These tests hold that path to the guarantees
 * of the synchronous one: the directory checked before the open is sent and a link planted
 * there never followed, an exclusive temp that never survives a failure (of the encoding, the
 * open, or a full disk), failures as counted drops with the old value whole.
 *
 * And the change log (store/change-clock.ts), appended to by every write, is kept open between
 * appends: the tests hold it to the signal readers rely on (a log removed or replaced is
 * followed by the next write), to never writing through a link, and to closing with the cache.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { writeFileAtomicMaking } from '../src/store/atomic-write.ts'
import { disk } from '../src/store/disk.ts'
import { Layout } from '../src/store/layout.ts'
import { OwnedTree } from '../src/store/owned-tree.ts'
import { entryFiles, listFiles, openFileTargets, tempDir } from './helpers.ts'
import { smallTmpfs } from './tmpfs.ts'

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

/** ~48 KiB of JSON that deflate halves: prose-like rows, as W4's values are in part. */
function bigValue(seed: number): { seed: number; rows: string[] } {
  const words = ['larder', 'entry', 'value', 'partition', 'checksum', 'temp', 'rename', 'disk', 'cache', 'tier']
  const rows: string[] = []
  let x = seed + 1
  for (let i = 0; rows.join('').length < 48 * 1024; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31
    rows.push(`${i}:${words[x % 10]} ${words[(x >> 4) % 10]} ${(x % 100000).toString(36)} ${words[(x >> 8) % 10]}`)
  }
  return { seed, rows }
}

function temps(dir: string): string[] {
  return listFiles(dir).filter((f) => f.endsWith('.tmp'))
}

function failure(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code })
}

describe('a big set creates its temp file while the value is compressed', () => {
  test('one set alone: the temp file is opened through the pool (not the synchronous create), and the entry lands compressed', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const opened: string[] = []
    disk.openFd = (file, flags, mode) => {
      opened.push(file)
      return realDisk.openFd(file, flags, mode)
    }
    const value = bigValue(1)
    await cache.set('big', value)
    Object.assign(disk, realDisk)
    const layout = new Layout(dir, '')
    const entry = layout.entryPath(layout.hashKey('big'))
    assert.equal(opened.length, 1, 'one create through the thread pool')
    assert.equal(path.dirname(opened[0]!), path.dirname(entry), 'the temp file beside its entry')
    assert.match(path.basename(opened[0]!), /\.tmp$/)
    assert.ok(fs.statSync(entry).size < JSON.stringify(value).length * 0.7, 'stored compressed')
    assert.deepEqual(temps(dir), [])
    await cache.close()
    const reader = await Larder.open({ dir })
    assert.deepEqual(await reader.get('big'), value)
    await reader.close()
  })

  test('the open is sent before the bytes are made, and their failure leaves no temp file and the old file whole', async () => {
    const dir = tempDir()
    const tree = new OwnedTree(dir)
    const file = path.join(dir, 'a', 'file')
    await writeFileAtomicMaking(tree, file, () => Promise.resolve(Buffer.from('old')))
    const order: string[] = []
    disk.openFd = (name, flags, mode) => {
      order.push('open sent')
      return realDisk.openFd(name, flags, mode)
    }
    await assert.rejects(
      writeFileAtomicMaking(tree, file, () => {
        order.push('make')
        return Promise.reject(new Error('encoding failed'))
      }),
      /encoding failed/,
    )
    assert.deepEqual(order, ['open sent', 'make'])
    assert.deepEqual(temps(dir), [], 'the temp removed before the error was thrown')
    assert.equal(fs.readFileSync(file, 'utf8'), 'old')
  })

  test('a disk that refuses the temp file: a counted drop, the old value whole, no temp file', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, memory: false })
    await cache.set('big', bigValue(1))
    disk.openFd = () => new Promise((_resolve, reject) => setImmediate(() => reject(failure('EIO'))))
    disk.openSync = () => {
      throw failure('EIO')
    }
    await cache.set('big', bigValue(2))
    Object.assign(disk, realDisk)
    const stats = await cache.stats()
    assert.equal(stats.dropped, 1)
    assert.deepEqual(await cache.get('big'), bigValue(1))
    assert.deepEqual(temps(dir), [])
    await cache.close()
  })

  test('a short write after the overlapped create: a counted drop, the old value whole, no temp file', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, memory: false })
    await cache.set('big', bigValue(1))
    let calls = 0
    disk.writeSync = (fd, buffer, offset, length) => (++calls === 1 ? realDisk.writeSync(fd, buffer, offset, Math.min(length, 1000)) : 0)
    await cache.set('big', bigValue(2))
    Object.assign(disk, realDisk)
    assert.equal((await cache.stats()).dropped, 1)
    assert.deepEqual(await cache.get('big'), bigValue(1))
    assert.deepEqual(temps(dir), [])
    await cache.close()
  })

  test('a partition replaced by a link to a directory outside: the big set writes inside the cache, the link reported', async () => {
    const base = tempDir()
    const dir = path.join(base, 'cache')
    const outside = path.join(base, 'outside')
    fs.mkdirSync(outside)
    const layout = new Layout(dir, '')
    const cache = await Larder.open({ dir })
    const foreign: string[] = []
    cache.on('corrupt', (report) => foreign.push(report.reason))
    await cache.set('big', bigValue(1)) // the partition's chain checked and remembered
    const partition = path.dirname(layout.entryPath(layout.hashKey('big')))
    fs.rmSync(partition, { recursive: true })
    fs.symlinkSync(outside, partition)
    await cache.set('big', bigValue(2))
    assert.deepEqual(fs.readdirSync(outside), [], 'nothing written outside the cache')
    assert.ok(fs.lstatSync(partition).isDirectory(), 'a real partition made in place of the link')
    assert.ok(
      foreign.some((reason) => reason.includes('never followed')),
      JSON.stringify(foreign),
    )
    assert.deepEqual(await cache.get('big'), bigValue(2))
    assert.equal((await cache.stats()).dropped, 0)
    await cache.close()
  })
})

describe('a big set on a full disk (a real 256 KiB tmpfs)', () => {
  const tmpfs = smallTmpfs('larder-big-set')

  test('sets past the space left are counted drops, leave no temp file, and what was stored reads back whole', async (t) => {
    if (tmpfs.refusal !== undefined) return t.skip(tmpfs.refusal)
    const dir = path.join(tmpfs.dir, 'cache')
    const cache = await Larder.open({ dir, memory: false, breaker: { volumeThreshold: 1000 } })
    tmpfs.leaveFree(96 * 1024)
    const results: boolean[] = []
    for (let i = 0; i < 8; i++) {
      await cache.set(`big${i}`, bigValue(i))
      results.push((await cache.has(`big${i}`)) === true)
    }
    const stats = await cache.stats()
    assert.ok(stats.dropped > 0, `the disk filled up: ${JSON.stringify(results)}`)
    assert.equal(results.filter((stored) => !stored).length, stats.dropped)
    assert.deepEqual(temps(dir), [])
    for (const [i, stored] of results.entries()) if (stored) assert.deepEqual(await cache.get(`big${i}`), bigValue(i))
    assert.equal((await cache.stats()).corrupt, 0)
    assert.equal(entryFiles(dir).length, results.filter(Boolean).length)
    await cache.close()
  })
})

describe('the change log is kept open between writes', () => {
  const changesOf = (dir: string): string => path.join(new Layout(dir, '').metaDir, 'changes')

  test('sets append to it without opening it again, and close() releases it', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const log = changesOf(dir)
    let opens = 0
    disk.openSync = (file, flags, mode) => {
      if (file === log) opens++
      return realDisk.openSync(file, flags, mode)
    }
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i)
    Object.assign(disk, realDisk)
    assert.ok(opens <= 1, `opened ${opens} times for 10 sets`)
    assert.equal(fs.statSync(log).size, 10, 'one byte a set')
    assert.ok(openFileTargets().includes(log), 'held open while the cache is')
    await cache.close()
    assert.ok(!openFileTargets().includes(log), 'released by close()')
  })

  test('removed (another process rotated it) or replaced while held: the next write appends to the file at its path, and another instance hears it', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir })
    const reader = await Larder.open({ dir })
    const log = changesOf(dir)
    await writer.set('k', 1)
    assert.equal(await reader.get('k'), 1) // now in the reader's memory tier
    fs.unlinkSync(log)
    await delay(20) // past the memory tier's 5 ms between looks at the log
    assert.equal(await reader.get('k'), 1) // the removal heard: the baseline is "no log"
    await writer.set('k', 2)
    assert.equal(fs.statSync(log).size, 1, 'a new log at the path, holding the byte')
    await delay(20)
    assert.equal(await reader.get('k'), 2, 'the change reached the other instance')
    // Replaced by another file (a writer that rotated it and appended since).
    fs.renameSync(log, `${log}.old`)
    fs.writeFileSync(log, '..')
    await delay(20)
    assert.equal(await reader.get('k'), 2)
    await writer.set('k', 3)
    assert.equal(fs.readFileSync(log, 'utf8'), '...', 'appended to the file now at the path')
    await delay(20)
    assert.equal(await reader.get('k'), 3)
    await writer.close()
    await reader.close()
  })

  test('a link planted at its name while held is never followed: removed, reported, a new log made', async () => {
    const base = tempDir()
    const dir = path.join(base, 'cache')
    const outside = path.join(base, 'outside')
    fs.writeFileSync(outside, 'theirs')
    const cache = await Larder.open({ dir })
    const foreign: string[] = []
    cache.on('corrupt', (report) => foreign.push(report.reason))
    const log = changesOf(dir)
    await cache.set('k', 1)
    fs.unlinkSync(log)
    fs.symlinkSync(outside, log)
    await cache.set('k', 2)
    assert.equal(fs.readFileSync(outside, 'utf8'), 'theirs', 'nothing written outside the cache')
    assert.ok(fs.lstatSync(log).isFile(), 'a regular file in place of the link')
    assert.ok(
      foreign.some((reason) => reason.includes('never followed')),
      JSON.stringify(foreign),
    )
    assert.equal(await cache.get('k'), 2)
    await cache.close()
  })
})
