/**
 * Entry reads leave the kernel's atime alone (O_NOATIME: larder keeps last use in the mtime,
 * and an atime update is an inode write per read), and a file this process may not open so
 * (another user's, EPERM) is read all the same.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { entryFiles, tempDir } from './helpers.ts'

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

/** Sets `file`'s atime 10 s before its mtime: under `relatime` the next read updates it. */
function atimeBeforeMtime(file: string): number {
  const { mtimeMs } = fs.statSync(file)
  fs.utimesSync(file, (mtimeMs - 10_000) / 1000, mtimeMs / 1000)
  return fs.statSync(file).atimeMs
}

/** Whether this file system updates atime on a read at all (not mounted `noatime`). */
function readsUpdateAtime(dir: string): boolean {
  const control = path.join(dir, 'control')
  fs.writeFileSync(control, 'x')
  const before = atimeBeforeMtime(control)
  fs.readFileSync(control)
  const moved = fs.statSync(control).atimeMs !== before
  fs.rmSync(control)
  return moved
}

describe('entry reads and atime', () => {
  test('a disk hit (lstat first, open first, and judged) does not move the entry file’s atime', async (t) => {
    const dir = tempDir('larder-atime')
    if (fs.constants.O_NOATIME === undefined) return t.skip('no O_NOATIME on this platform')
    if (!readsUpdateAtime(dir)) return t.skip('this file system does not update atime on reads')
    const writer = await Larder.open({ dir })
    for (let i = 0; i < 40; i++) await writer.set(`k${i}`, { i, text: 'x'.repeat(i * 1000) }) // some over 16 KiB
    await writer.close()
    const files = entryFiles(dir)
    const before = new Map(files.map((file) => [file, atimeBeforeMtime(file)]))
    const reader = await Larder.open({ dir })
    // The first reads go lstat first, the later ones open first (the tier's gets find files).
    for (let i = 0; i < 40; i++) assert.deepEqual(await reader.get(`k${i}`), { i, text: 'x'.repeat(i * 1000) })
    // Looked at before close, which writes the remembered last uses (a touch sets both times).
    const moved = files.filter((file) => fs.statSync(file).atimeMs !== before.get(file))
    await reader.close()
    assert.deepEqual(moved, [], 'reads moved the atime of entry files')
  })

  test('verify (every byte, in a maintenance worker) and a streamed read leave atime alone too', async (t) => {
    const dir = tempDir('larder-atime-verify')
    if (fs.constants.O_NOATIME === undefined) return t.skip('no O_NOATIME on this platform')
    if (!readsUpdateAtime(dir)) return t.skip('this file system does not update atime on reads')
    const cache = await Larder.open({ dir })
    const big = randomBytes(300_000) // streamed: over the synchronous read's 64 KiB
    await cache.setStream('artifact', big)
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, { i })
    const files = entryFiles(dir)
    const before = new Map(files.map((file) => [file, atimeBeforeMtime(file)]))
    const report = await cache.verify()
    assert.equal(report.corrupt, 0)
    const stream = await cache.getStream('artifact')
    assert.ok(stream !== undefined)
    const chunks: Buffer[] = []
    for await (const chunk of stream) chunks.push(chunk as Buffer)
    assert.ok(Buffer.concat(chunks).equals(big))
    const moved = files.filter((file) => fs.statSync(file).atimeMs !== before.get(file))
    await cache.close()
    assert.deepEqual(moved, [], 'verify or the stream moved the atime of entry files')
  })

  test('a file this process may not open with O_NOATIME (EPERM) is read without it, and so are the files after it', async (t) => {
    if (fs.constants.O_NOATIME === undefined) return t.skip('no O_NOATIME on this platform')
    const dir = tempDir('larder-atime-eperm')
    const cache = await Larder.open({ dir })
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, i)
    const flags: number[] = []
    disk.openSync = ((file: string, openFlags: number, ...rest: unknown[]) => {
      flags.push(openFlags)
      // As the kernel answers for a file of another user.
      if ((openFlags & fs.constants.O_NOATIME) !== 0)
        throw Object.assign(new Error(`EPERM: operation not permitted, open '${file}'`), { code: 'EPERM' })
      return (realDisk.openSync as (...args: unknown[]) => number)(file, openFlags, ...rest)
    }) as typeof disk.openSync
    for (let i = 0; i < 5; i++) assert.equal(await cache.get(`k${i}`), i)
    assert.equal(flags.filter((f) => (f & fs.constants.O_NOATIME) !== 0).length, 1, 'asked once with O_NOATIME, then without')
    const stats = await cache.stats()
    assert.equal(stats.errors, 0, 'no disk failure counted')
    assert.equal(stats.breaker.state, 'closed')
    await cache.close()
  })
})
