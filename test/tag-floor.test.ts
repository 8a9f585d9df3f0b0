/**
 * tags/ stays bounded: past its bound, a prune folds the oldest stamps into the floor
 * (maintenance/stamp-fold.ts, store/tag-clock.ts). Every tagged entry created at or before the
 * floor reads as stale, in every instance and in the workers' scans; the stamps above it stay;
 * an invalidation that races the fold keeps its newer stamp. The bound is lowered here
 * (stampLimits) so that a dozen invalidations cross it.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { loadHasher } from '../src/format/checksum.ts'
import { foldStamps, stampLimits } from '../src/maintenance/stamp-fold.ts'
import { disk } from '../src/store/disk.ts'
import { Layout } from '../src/store/layout.ts'
import { readFloor, readStamp, TagClock } from '../src/store/tag-clock.ts'
import { eventually } from './eventually.ts'
import { entryFiles, runChildScript, tempDir } from './helpers.ts'

await loadHasher()

const STAMP_FILE = /^[0-9a-f]{16}$/
const bound = { ...stampLimits }
after(() => Object.assign(stampLimits, bound))

/** The stamp files in the namespace's tags/ (the floor's not counted), and their raise directories. */
function stampsIn(dir: string): { files: number; raises: number } {
  const names = fs.readdirSync(new Layout(dir, '').tagsDir)
  return { files: names.filter((n) => STAMP_FILE.test(n)).length, raises: names.filter((n) => /^[0-9a-f]{16}\.d$/.test(n)).length }
}

describe('tag stamps past their bound fold into a floor', () => {
  test('a prune folds the oldest: tags/ shrinks, tagged entries older than the floor read as misses everywhere, the rest stay', async () => {
    Object.assign(stampLimits, { max: 10, keep: 4 })
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
    const other = await Larder.open({ dir, maintenance: { interval: 0 }, memory: { maxEntries: 100 } })
    await cache.set('old tagged', { v: 1 }, { tags: ['never invalidated'] })
    await cache.set('old plain', { v: 2 })
    assert.deepEqual(await other.get('old tagged'), { v: 1 }, 'held by the other instance’s memory tier')
    for (let i = 0; i < 12; i++) await cache.invalidateTags([`row:${i}`])
    await cache.set('after row 10', { v: 3 }, { tags: ['row:10'] })
    await cache.set('new tagged', { v: 4 }, { tags: ['never invalidated'] })
    assert.deepEqual(stampsIn(dir), { files: 12, raises: 12 })

    const layout = new Layout(dir, '')
    const eighth = readStamp(layout.tagPath('row:7'))
    const report = await cache.prune()
    assert.equal(report.stampsFolded, 8, '12 stamps, 4 kept')
    assert.deepEqual(stampsIn(dir), { files: 4, raises: 4 }, 'the folded stamps’ files and raise directories are gone')
    assert.equal(readFloor(layout.tagsDir), eighth, 'the floor is the newest stamp folded')
    assert.ok(readStamp(layout.tagPath('row:8')) > readFloor(layout.tagsDir), 'the kept stamps are above the floor')
    assert.equal(readStamp(layout.tagPath('row:0')), 0, 'a folded stamp is gone')
    assert.ok(report.expired >= 1, 'the scan after the fold removed the tagged entry the floor made stale')

    assert.equal(await cache.get('old tagged'), undefined, 'created before the floor: stale')
    assert.deepEqual(await cache.get('old plain'), { v: 2 }, 'untagged: the floor does not apply')
    assert.deepEqual(await cache.get('new tagged'), { v: 4 })
    assert.deepEqual(await cache.get('after row 10'), { v: 3 })
    await eventually(
      async () => (await other.get('old tagged')) === undefined,
      'the other instance’s memory tier drops it at its next look',
    )
    const fresh = await Larder.open({ dir, maintenance: { interval: 0 } })
    assert.equal(await fresh.get('old tagged'), undefined)
    assert.deepEqual(await fresh.get('new tagged'), { v: 4 })

    // A folded tag invalidated again: its stamp is made anew, above the floor.
    await fresh.set('row 0 again', { v: 5 }, { tags: ['row:0'] })
    assert.deepEqual(await fresh.get('row 0 again'), { v: 5 })
    await cache.invalidateTags(['row:0'])
    assert.equal(await fresh.get('row 0 again'), undefined, 'invalidated again after the fold')
    assert.deepEqual(await cache.get('new tagged'), { v: 4 })
    await Promise.all([cache.close(), other.close(), fresh.close()])
  })

  test('an entry file older than the floor reads as a miss before any scan removes it; a write after it does not', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: { interval: 0 }, memory: false })
    await cache.set('old', 1, { tags: ['kept tag'] })
    for (let i = 0; i < 3; i++) await cache.invalidateTags([`t${i}`])
    await cache.set('new', 2, { tags: ['kept tag'] })
    const held = await Larder.open({ dir, maintenance: { interval: 0 }, memory: { maxEntries: 10 } })
    assert.equal(await held.get('old'), 1, 'in the memory tier of another instance')
    const layout = new Layout(dir, '')
    const out = foldStamps({ task: 'fold-stamps', root: dir, tagsDir: layout.tagsDir, shared: false, max: 1, keep: 1, dryRun: false })
    assert.equal(out.folded, 2)
    assert.equal(entryFiles(dir).length, 2, 'both entry files are still there')
    assert.equal(await cache.get('old'), undefined, 'the file tier judges it by the floor')
    assert.equal(await cache.get('new'), 2)
    await cache.set('newer', 3, { tags: ['t0'] })
    assert.equal(await cache.get('newer'), 3, 'a write after the fold takes a time above the floor')
    await eventually(async () => (await held.get('old')) === undefined, 'the memory tier drops it at its next look at the stamps')
    assert.equal(await held.get('new'), 2)
    await Promise.all([cache.close(), held.close()])
  })

  test('another process folding over and over while this one writes, invalidates and reads: an entry written before its tag’s invalidation is never served', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: false, memory: { maxEntries: 100 } })
    const reader = await Larder.open({ dir, maintenance: false, memory: false })
    await cache.invalidateTags(['warm-up']) // the tags directory exists before the child starts
    const folder = runChildScript('stamp-folder.ts', [dir, '2500'])
    /** Per key: the tag it was written with, and whether that tag was invalidated since. */
    const written = new Map<string, { tag: string; invalidated: boolean }>()
    let checks = 0
    const until = Date.now() + 2500
    for (let i = 0; Date.now() < until; i++) {
      const key = `k${i % 20}`
      const tag = `t${i % 7}`
      await cache.set(key, { i }, { tags: [tag] })
      written.set(key, { tag, invalidated: false })
      if (i % 3 === 0) {
        const stale = `t${(i * 5) % 7}`
        await cache.invalidateTags([stale])
        for (const w of written.values()) if (w.tag === stale) w.invalidated = true
      }
      for (const [k, w] of written) {
        if (!w.invalidated) continue
        checks++
        assert.equal(await cache.get(k), undefined, `${k} (tag ${w.tag}) served after its tag's invalidation`)
        assert.equal(await reader.get(k), undefined, `${k} (tag ${w.tag}) served by another instance after its tag's invalidation`)
      }
    }
    const { code, out, err } = await folder
    assert.equal(code, 0, err)
    const { folds, folded } = JSON.parse(out) as { folds: number; folded: number }
    assert.ok(folds > 10 && folded > 20, `the child folded while this process ran (${folds} folds, ${folded} stamps)`)
    assert.ok(checks > 100, `${checks} reads of invalidated entries`)
    await Promise.all([cache.close(), reader.close()])
  })

  test('a dry run counts what it would fold and changes nothing', async () => {
    Object.assign(stampLimits, { max: 3, keep: 1 })
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
    await cache.set('tagged', 1, { tags: ['x'] })
    for (let i = 0; i < 5; i++) await cache.invalidateTags([`t${i}`])
    const report = await cache.prune({ dryRun: true })
    assert.equal(report.stampsFolded, 4)
    const reader = await Larder.open({ dir, readOnly: true })
    assert.equal((await reader.prune({ dryRun: true })).stampsFolded, 4, 'a read-only instance’s dry run counts them too')
    await reader.close()
    assert.deepEqual(stampsIn(dir), { files: 5, raises: 5 })
    assert.equal(fs.existsSync(path.join(new Layout(dir, '').tagsDir, 'floor.d')), false, 'no floor')
    assert.equal(await cache.get('tagged'), 1)
    await cache.close()
  })

  test('within the bound nothing is folded', async () => {
    Object.assign(stampLimits, { max: 10, keep: 4 })
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
    for (let i = 0; i < 10; i++) await cache.invalidateTags([`t${i}`])
    assert.equal((await cache.prune()).stampsFolded, 0)
    assert.deepEqual(stampsIn(dir), { files: 10, raises: 10 })
    await cache.close()
  })

  test('an invalidation that lands during the fold keeps its newer stamp (before the raises are removed, and before the file is taken aside)', () => {
    const dir = tempDir()
    const layout = new Layout(dir, '')
    const clock = new TagClock(layout)
    clock.invalidate(['a'], 1000)
    clock.invalidate(['b'], 2000)
    clock.invalidate(['c'], 3000)
    clock.invalidate(['d'], 4000)
    const late = new TagClock(layout) // another process's clock
    const real = { rmdirSync: disk.rmdirSync, renameSync: disk.renameSync }
    let inside = false
    const around = (target: string, act: () => void) => (at: fs.PathLike) => {
      if (!inside && String(at).startsWith(target)) {
        inside = true
        try {
          act()
        } finally {
          inside = false
        }
      }
    }
    const beforeRmdir = around(layout.tagPath('a'), () => late.invalidate(['a'], 9000))
    const beforeAside = around(layout.tagPath('b'), () => late.invalidate(['b'], 9500))
    disk.rmdirSync = (p: fs.PathLike) => {
      beforeRmdir(p)
      real.rmdirSync(p)
    }
    disk.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
      if (path.basename(String(to)) !== path.basename(layout.tagPath('b'))) beforeAside(from)
      real.renameSync(from, to)
    }
    let out
    try {
      out = foldStamps({ task: 'fold-stamps', root: dir, tagsDir: layout.tagsDir, shared: false, max: 1, keep: 1, dryRun: false })
    } finally {
      Object.assign(disk, real)
    }
    assert.equal(out.floor, 3000)
    assert.equal(out.folded, 1, 'only c was folded: a and b were raised meanwhile')
    assert.equal(readStamp(layout.tagPath('a')), 9000, 'raised before its raises were removed: left whole')
    assert.equal(readStamp(layout.tagPath('b')), 9500, 'written before its file was taken aside: put back')
    assert.equal(readStamp(layout.tagPath('c')), 0)
    assert.equal(readStamp(layout.tagPath('d')), 4000)
    assert.equal(readFloor(layout.tagsDir), 3000)
    assert.deepEqual(
      fs.readdirSync(layout.tagsDir).filter((n) => n.endsWith('.tmp')),
      [],
      'no file left aside',
    )
    const fresh = new TagClock(layout)
    assert.equal(fresh.isStale(['c'], 2500), true, 'below the floor: stale whatever its own stamp')
    assert.equal(fresh.isStale(['zzz'], 3000), true, 'any tagged entry at or below the floor')
    assert.equal(fresh.isStale(['zzz'], 3001), false)
    assert.equal(fresh.isStale([], 10), false, 'an untagged entry never')
    assert.equal(fresh.isStale(['a'], 8000), true)
  })

  test('something planted where the floor belongs counts as a floor raised when it was put there', () => {
    const dir = tempDir()
    const layout = new Layout(dir, '')
    new TagClock(layout).invalidate(['t'], 1000)
    fs.writeFileSync(path.join(layout.tagsDir, 'floor.d'), 'not a directory')
    const planted = fs.statSync(path.join(layout.tagsDir, 'floor.d')).mtimeMs
    assert.equal(readFloor(layout.tagsDir), planted)
    const clock = new TagClock(layout)
    assert.equal(clock.isStale(['other'], planted - 1), true, 'never fewer misses for it')
    assert.equal(clock.isStale(['other'], planted + 1), false)
  })

  test('an invalidation whose raise directory a fold removes between its check and its create makes it again', () => {
    const dir = tempDir()
    const layout = new Layout(dir, '')
    const clock = new TagClock(layout)
    clock.invalidate(['t'], 1000)
    const raises = `${layout.tagPath('t')}.d`
    const realOpen = disk.openSync
    let removed = false
    disk.openSync = (file: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode | null) => {
      if (!removed && String(file).startsWith(raises + path.sep)) {
        removed = true
        for (const name of fs.readdirSync(raises)) fs.unlinkSync(path.join(raises, name))
        fs.rmdirSync(raises) // as a fold would, just after the writer made sure it was there
      }
      return realOpen(file, flags ?? 'r', mode)
    }
    try {
      clock.invalidate(['t'], 2000)
    } finally {
      disk.openSync = realOpen
    }
    assert.ok(removed)
    assert.equal(readStamp(layout.tagPath('t')), 2000)
    assert.deepEqual(fs.readdirSync(raises), ['2000'])
  })
})
