/**
 * The merged LRU touches (maintenance/last-use.ts): hits on fresh entries are remembered and
 * written later; a large batch (10,000 at most) is written by a maintenance worker, not on the
 * event loop, and a prune waits for it; nothing is touched through a link planted in place of a
 * partition.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { loadHasher } from '../src/format/checksum.ts'
import { Layout } from '../src/store/layout.ts'
import { disk } from '../src/store/disk.ts'
import { entryFiles, tempDir } from './helpers.ts'

async function entryPath(dir: string, key: string): Promise<string> {
  await loadHasher()
  const layout = new Layout(dir, '')
  return layout.entryPath(layout.hashKey(key))
}

/** Counts the `lutimes` calls made on this thread (a worker thread has its own `disk`). */
function countTouchesHere(): { count: () => number; restore: () => void } {
  const original = disk.lutimesSync
  let count = 0
  disk.lutimesSync = (...args: Parameters<typeof original>) => {
    count++
    return original(...args)
  }
  return { count: () => count, restore: () => (disk.lutimesSync = original) }
}

const keyOf = (i: number): string => `k${i}`

describe('merged LRU touches', () => {
  test('10,000 remembered hits are written by a maintenance worker, not on the event loop; all of them reach the files', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
    const n = 10_050
    for (let i = 0; i < n; i++) await cache.set(keyOf(i), i)
    const written = new Map(entryFiles(dir).map((file) => [file, fs.statSync(file).mtimeMs]))
    assert.equal(written.size, n)
    await new Promise((resolve) => setTimeout(resolve, 5)) // every hit is later than every write
    const here = countTouchesHere()
    try {
      for (let i = 0; i < n; i++) assert.equal(await cache.get(keyOf(i)), i)
      assert.equal(here.count(), 0, 'no file was touched on the event loop while the hits were read')
      await cache.close()
      assert.ok(here.count() <= n - 10_000, `close wrote only what was left (${here.count()} touches here)`)
    } finally {
      here.restore()
    }
    const moved = [...written].filter(([file, mtime]) => fs.statSync(file).mtimeMs > mtime).length
    assert.equal(moved, n, 'every hit moved its file to the time of the hit')
  })

  test('a prune started while the worker writes the batch waits for it: the entries read stay, the unread go', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
    const hot = 10_000
    const cold = 20
    // The entries to be read are written first (the oldest mtimes), then the ones never read.
    for (let i = 0; i < hot + cold; i++) await cache.set(keyOf(i), i)
    await new Promise((resolve) => setTimeout(resolve, 5))
    for (let i = 0; i < hot; i++) await cache.get(keyOf(i))
    const report = await cache.prune({ maxEntries: hot, listKeys: true })
    assert.equal(report.evicted, cold)
    assert.deepEqual(
      [...(report.keys ?? [])].sort(),
      Array.from({ length: cold }, (_, i) => keyOf(hot + i)).sort(),
      'the evicted entries are the ones never read',
    )
    await cache.close()
  })

  test('a hit is never written through a link planted in place of its partition', async () => {
    const dir = tempDir()
    const outside = tempDir('larder-outside')
    const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
    await cache.set('k', 'v')
    const file = await entryPath(dir, 'k')
    await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(await cache.get('k'), 'v') // remembered: the entry was written just now
    // The partition becomes a link to a directory outside the cache holding a file of that name.
    const partition = path.dirname(file)
    fs.renameSync(partition, `${partition}.moved`)
    fs.writeFileSync(path.join(outside, path.basename(file)), 'not ours')
    fs.utimesSync(path.join(outside, path.basename(file)), 1_000_000, 1_000_000)
    fs.symlinkSync(outside, partition)
    await cache.close()
    assert.equal(fs.statSync(path.join(outside, path.basename(file))).mtimeMs, 1_000_000_000, 'the file outside was not touched')
  })
})
