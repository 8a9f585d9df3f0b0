/**
 * The tag clock looks at the tags directory through an open handle (an `fstat`, cheaper than
 * a `stat` of its path on every read of a tagged entry). What that must not cost: an
 * invalidation written into a tags directory that replaced the one the handle is on, and a
 * handle left open after `close()`. A and B are two instances on one directory, as two
 * processes would be (each has its own tag clock).
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { openFileTargets, tempDir } from './helpers.ts'
import { eventually } from './eventually.ts'

const base = tempDir('larder-tag-handle')
after(() => rmSync(base, { recursive: true, force: true }))
let dirs = 0
const freshDir = (): string => path.join(base, `cache-${++dirs}`)
const tagsDirOf = (dir: string): string => path.join(dir, 'v1', 'default', 'tags')

/** This process's open file descriptors on `target`. */
function handlesOn(target: string): string[] {
  return openFileTargets().filter((found) => found === target)
}

/** A cache whose tags directory exists and whose memory tier holds `user:1`, tagged `users`. */
async function warmed(dir: string): Promise<{ a: Larder; b: Larder }> {
  const a = await Larder.open({ dir, maintenance: false })
  const b = await Larder.open({ dir, maintenance: false, memory: true })
  await a.invalidateTags(['unrelated']) // the tags directory now exists
  // Past the racy window of that change (tag-clock.ts): from here B trusts what it read and
  // asks only whether the directory changed.
  await delay(150)
  await b.set('user:1', { name: 'Ada' }, { tags: ['users'] })
  for (let i = 0; i < 3; i++) assert.deepEqual(await b.get('user:1'), { name: 'Ada' }) // B's handle is open
  assert.ok((await b.stats()).memoryHits >= 2, 'the reads were not memory hits')
  return { a, b }
}

describe('the tag clock reads the tags directory through a handle', () => {
  test("a tags directory removed and made again: a hit sees an invalidation written into the new one (within the memory tier's window)", async () => {
    const dir = freshDir()
    const { a, b } = await warmed(dir)
    try {
      rmSync(tagsDirOf(dir), { recursive: true })
      await a.invalidateTags(['users']) // A makes a new tags directory
      await eventually(async () => (await b.get('user:1')) === undefined, 'B served a value of an invalidated tag')
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  test('a tags directory moved away and replaced: an invalidation in the new one is seen within the recheck bound', async () => {
    const dir = freshDir()
    const { a, b } = await warmed(dir)
    try {
      // The old directory still exists under another name, so the handle's fstat alone would
      // keep answering for it; the path is looked up again 100 ms after the last look.
      renameSync(tagsDirOf(dir), path.join(dir, 'v1', 'default', 'tags-moved'))
      await a.invalidateTags(['users'])
      await delay(250)
      assert.equal(await b.get('user:1'), undefined, 'B kept reading the moved directory')
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  test('no tag ever invalidated: a tagged set or read makes the tags directory and holds it (a read-only cache does not make it)', async () => {
    const dir = freshDir()
    const b = await Larder.open({ dir, maintenance: false, memory: true })
    const reader = await Larder.open({ dir, maintenance: false, readOnly: true })
    try {
      await b.set('user:1', { name: 'Ada' }, { tags: ['users'] })
      assert.deepEqual(await b.get('user:1'), { name: 'Ada' })
      assert.equal(existsSync(tagsDirOf(dir)), true, 'no tags directory after a tagged set and get')
      assert.equal(handlesOn(tagsDirOf(dir)).length, 1, 'B holds no handle on the tags directory it made')
      rmSync(tagsDirOf(dir), { recursive: true }) // as an entry written by an older larder would find it
      assert.deepEqual(await reader.get('user:1'), { name: 'Ada' })
      assert.equal(existsSync(tagsDirOf(dir)), false, 'a read-only cache made the tags directory')
      await reader.close()
      const a = await Larder.open({ dir, maintenance: false })
      await a.invalidateTags(['users'])
      await a.close()
      await eventually(async () => (await b.get('user:1')) === undefined, 'B served a value of an invalidated tag')
    } finally {
      await Promise.all([b.close(), reader.close()])
    }
  })

  test('a failing disk while the handle is being opened leaves no descriptor behind', async () => {
    const dir = freshDir()
    const b = await Larder.open({ dir, maintenance: false, memory: true, breaker: { volumeThreshold: 1_000_000 } })
    const real = disk.fstatSync
    try {
      await b.set('user:1', { name: 'Ada' }, { tags: ['users'] })
      rmSync(tagsDirOf(dir), { recursive: true }) // so that the next read opens a handle anew
      mkdirSync(tagsDirOf(dir))
      await delay(150) // past the racy window, so that each read asks the handle
      disk.fstatSync = (...args: Parameters<typeof real>) => {
        throw Object.assign(new Error('EIO: injected, fstat'), { code: 'EIO', syscall: 'fstat', args })
      }
      for (let i = 0; i < 20; i++) await b.get('user:1')
      assert.equal(handlesOn(tagsDirOf(dir)).length, 0, 'a handle was left open by a failed fstat')
    } finally {
      disk.fstatSync = real
      await b.close()
    }
  })

  test('close() lets go of the handle', async () => {
    const dir = freshDir()
    const handles = (): string[] => handlesOn(tagsDirOf(dir))
    const { a, b } = await warmed(dir)
    assert.equal(handles().length, 1, 'B reads the tags directory through one handle')
    await Promise.all([a.close(), b.close()])
    assert.deepEqual(handles(), [], 'the handle outlived close()')
  })
})
