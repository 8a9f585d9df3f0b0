/**
 * What prune() and verify() report as freed: besides the entries they remove, the bytes of the
 * stray temp files of dead writers (beside entries and beside bookkeeping files) and of the
 * trash a dead clear() left, which after a crash-heavy week is most of what they reclaim.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { entryFiles, tempDir } from './helpers.ts'

const MiB = 1024 * 1024

interface Strays {
  /** Every path planted, to check what is gone or kept. */
  files: string[]
  /** The bytes a sweep may count: the regular files planted (not the linked-to file outside). */
  bytes: number
  /** A file outside the cache a link in the trash points at: never removed nor counted. */
  outside: string
}

/**
 * A cache of a few entries, and what dead processes leave behind it, all older than any
 * `tempMaxAge`: a 3 MiB temp file of a killed setStream in a partition, a temp file of a
 * killed bookkeeping write, and a killed clear()'s trash holding 2.5 MiB of moved partitions,
 * a nested directory and a link to a 4 MiB file outside the cache.
 */
async function crashedCache(dir: string): Promise<Strays> {
  const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
  for (let i = 0; i < 5; i++) await cache.set(`k${i}`, `value ${i}`)
  await cache.close()
  const old = (Date.now() - 60 * 60_000) / 1000
  const entry = entryFiles(dir)[0]!
  const streamTemp = `${entry}.424242-1.tmp`
  fs.writeFileSync(streamTemp, Buffer.alloc(3 * MiB, 1))
  const bookkeepingTemp = path.join(dir, 'v1', 'default', 'meta', 'totals', 'base.424242-2.tmp')
  fs.mkdirSync(path.dirname(bookkeepingTemp), { recursive: true })
  fs.writeFileSync(bookkeepingTemp, Buffer.alloc(1000, 2))
  for (const f of [streamTemp, bookkeepingTemp]) fs.utimesSync(f, old, old)

  // A trash directory is judged by the time in its name.
  const trash = path.join(dir, 'v1', `.trash-424242-${Date.now() - 60 * 60_000}-dead`)
  const inTrash = {
    [path.join(trash, '3f', '3f00000000000001')]: 2 * MiB,
    [path.join(trash, '3f', '3f00000000000002.424242-3.tmp')]: 512 * 1024,
    [path.join(trash, '3f', 'deeper', 'more', 'file')]: 100,
  }
  for (const [file, size] of Object.entries(inTrash)) {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, Buffer.alloc(size, 3))
  }
  const outside = path.join(tempDir('larder-freed-outside'), 'big')
  fs.writeFileSync(outside, Buffer.alloc(4 * MiB, 4))
  fs.symlinkSync(outside, path.join(trash, '3f', 'link'))
  fs.symlinkSync(path.dirname(outside), path.join(trash, 'dirlink'))

  const bytes = 3 * MiB + 1000 + Object.values(inTrash).reduce((a, b) => a + b, 0)
  return { files: [streamTemp, bookkeepingTemp, trash], bytes, outside }
}

describe('freedBytes counts the stray temp files and the dead trash a sweep removes', () => {
  test('prune (and its dry run first)', async () => {
    const dir = tempDir('larder-freed')
    const strays = await crashedCache(dir)
    const cache = await Larder.open({ dir, maintenance: { interval: 0, tempMaxAge: '1s' } })
    try {
      const dry = await cache.prune({ dryRun: true })
      assert.equal(dry.freedBytes, strays.bytes, 'a dry run counts what it would free')
      assert.equal(dry.trashRemoved, 1)
      assert.equal(dry.tempFilesRemoved, 2, 'the trash directory is not a temp file')
      assert.deepEqual(
        strays.files.filter((f) => !fs.existsSync(f)),
        [],
        'a dry run removed something',
      )

      const pruned = await cache.prune()
      assert.equal(pruned.expired + pruned.matched + pruned.evicted + pruned.corrupt, 0, 'no entry went')
      assert.equal(pruned.freedBytes, strays.bytes, 'the temp files and the trash tree, and nothing behind its links')
      assert.equal(pruned.trashRemoved, 1)
      assert.equal(pruned.tempFilesRemoved, 2)
      assert.deepEqual(
        strays.files.filter((f) => fs.existsSync(f)),
        [],
        'strays left',
      )
      assert.equal(fs.statSync(strays.outside).size, 4 * MiB, 'the file a link in the trash points at was touched')
      assert.equal(pruned.remainingEntries, 5)
    } finally {
      await cache.close()
    }
  })

  test('verify, with and without repair', async () => {
    const dir = tempDir('larder-freed')
    const strays = await crashedCache(dir)
    const cache = await Larder.open({ dir, maintenance: { interval: 0, tempMaxAge: '1s' } })
    try {
      const checked = await cache.verify({ repair: false })
      assert.equal(checked.freedBytes, strays.bytes, 'without repair: what a repair would free')
      assert.equal(checked.trashRemoved, 1)
      assert.ok(
        strays.files.every((f) => fs.existsSync(f)),
        'verify without repair removed something',
      )

      const verified = await cache.verify()
      assert.equal(verified.corrupt, 0)
      assert.equal(verified.freedBytes, strays.bytes)
      assert.equal(verified.trashRemoved, 1)
      assert.equal(verified.tempFilesRemoved, 2)
      assert.deepEqual(
        strays.files.filter((f) => fs.existsSync(f)),
        [],
        'strays left',
      )
      assert.equal(fs.statSync(strays.outside).size, 4 * MiB)
    } finally {
      await cache.close()
    }
  })
})
