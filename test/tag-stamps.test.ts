/**
 * A tag's stamp only rises, whatever order the invalidations that wrote it finish in. Two
 * processes invalidating one tag may finish in the other order than they began (one took its
 * time, then was descheduled before writing); the stamp file alone is last-writer-wins, so the
 * older time would land over the newer one and entries written between the two would be served
 * again. The torture test's 8 processes found it on a loaded machine; here the late writer is a
 * second tag clock on the same directory (as another process has), writing its older time after
 * the newer invalidation resolved.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { loadHasher } from '../src/format/checksum.ts'
import { Layout } from '../src/store/layout.ts'
import { MAX_HELD_STAMPS, readStamp, TagClock } from '../src/store/tag-clock.ts'
import { entryFiles, tempDir } from './helpers.ts'

await loadHasher()

describe('tag stamps only rise', () => {
  test('an older invalidation that finishes last does not bring back what a newer one invalidated', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
    const begun = Date.now() // the late writer's invalidation takes its time here…
    await new Promise((resolve) => setTimeout(resolve, 5))
    await cache.set('query', { rows: 1 }, { tags: ['users'] })
    await cache.invalidateTags(['users'])
    assert.equal(await cache.get('query'), undefined, 'invalidated')

    // …and writes it only now, after the newer invalidation resolved.
    new TagClock(new Layout(dir, '')).invalidate(['users'], begun)

    const layout = new Layout(dir, '')
    assert.ok(readStamp(layout.tagPath('users')) > begun, 'the stamp kept the newer time')
    assert.equal(await cache.get('query'), undefined, 'still a miss in the instance that invalidated')
    const other = await Larder.open({ dir, maintenance: { interval: 0 } })
    assert.equal(await other.get('query'), undefined, 'and in another instance')
    await other.prune()
    assert.deepEqual(entryFiles(dir), [], 'prune (in a worker) judged it stale too, and removed it')
    await other.close()
    await cache.close()
  })

  test('the stamps held stay bounded however many distinct tags are asked about, and one let go is read again', () => {
    const dir = tempDir()
    const clock = new TagClock(new Layout(dir, ''))
    clock.invalidate(['users'], 5000) // the tags directory exists: a tag not held is read from disk
    for (let i = 0; i < MAX_HELD_STAMPS * 2 + 10; i++) assert.equal(clock.isStale([`user:${i}`], 100), false)
    assert.ok(clock.heldCount <= MAX_HELD_STAMPS, `${clock.heldCount} stamps held`)
    assert.equal(clock.isStale(['users'], 4000), true, 'the invalidation still counts once its stamp was let go')
    assert.equal(clock.isStale(['users'], 6000), false)
  })

  test('superseded stamp names are removed, the highest kept, and an older larder’s file is still read', () => {
    const dir = tempDir()
    const layout = new Layout(dir, '')
    const clock = new TagClock(layout)
    clock.invalidate(['t'], 1000)
    clock.invalidate(['t'], 3000)
    clock.invalidate(['t'], 2000) // late, older
    const raises = `${layout.tagPath('t')}.d`
    assert.deepEqual(fs.readdirSync(raises).sort(), ['2000', '3000'], 'names below the writer’s own removed, none above')
    assert.equal(readStamp(layout.tagPath('t')), 3000)
    // An older larder writes the file only: a newer time there counts too.
    fs.writeFileSync(layout.tagPath('t'), '4000\nt\n')
    assert.equal(readStamp(layout.tagPath('t')), 4000)
  })

  test('a link planted where the stamp names live is never followed: not read, not written through, replaced', () => {
    const dir = tempDir()
    const outside = tempDir('larder-outside')
    fs.writeFileSync(path.join(outside, '99999999999999'), 'not ours')
    const layout = new Layout(dir, '')
    const clock = new TagClock(layout)
    clock.invalidate(['t'], 1000)
    const raises = `${layout.tagPath('t')}.d`
    fs.rmSync(raises, { recursive: true })
    fs.symlinkSync(outside, raises)
    assert.equal(readStamp(layout.tagPath('t')), 1000, 'the names behind the link are not read')
    clock.invalidate(['t'], 5000)
    assert.ok(fs.lstatSync(raises).isDirectory(), 'a real directory again')
    assert.deepEqual(fs.readdirSync(outside), ['99999999999999'], 'nothing outside was created or removed')
    assert.equal(readStamp(layout.tagPath('t')), 5000)
  })
})
