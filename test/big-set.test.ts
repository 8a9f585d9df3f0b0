/**
 * Sets (issue 14, W1/W4): the change log (store/change-clock.ts), appended to by every write,
 * is kept open between appends. These tests hold it to the signal readers rely on (a log
 * removed or replaced is followed by the next write), to never writing through a link, and to
 * closing with the cache.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { Layout } from '../src/store/layout.ts'
import { openFileTargets, tempDir } from './helpers.ts'

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

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
    // two records a set (one before its rename, one after): kind, writer id (8), key length (2),
    // the key in UTF-16 ('k0': 4 bytes), check (4)
    assert.equal(fs.statSync(log).size, 10 * 2 * 19, 'two records a set')
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
    assert.equal(fs.statSync(log).size, 2 * 17, 'a new log at the path, holding the records before and after')
    await delay(20)
    assert.equal(await reader.get('k'), 2, 'the change reached the other instance')
    // Replaced by another file (a writer that rotated it and appended since).
    fs.renameSync(log, `${log}.old`)
    fs.writeFileSync(log, '..')
    await delay(20)
    assert.equal(await reader.get('k'), 2)
    await writer.set('k', 3)
    const now = fs.readFileSync(log)
    assert.equal(now.length, 2 + 2 * 17, 'appended to the file now at the path')
    assert.equal(now.subarray(0, 2).toString(), '..')
    assert.equal(now.subarray(-6, -4).toString('utf16le'), 'k', 'the record names the key')
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
