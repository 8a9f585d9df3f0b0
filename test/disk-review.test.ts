/**
 * A review of the two disk properties (2026-12-05): a full disk can still be freed by the
 * calls meant to free it, and nothing outside the cache is written through a hard link or a
 * link swapped in for a held lock; foreign things where the tags or totals directories belong
 * are put right, not read as a failing disk for good.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { tryLock } from '../src/maintenance/lock.ts'
import { entryFiles, tempDir } from './helpers.ts'

const cliPath = path.resolve(import.meta.dirname, '..', 'src', 'cli', 'bin.ts')

describe('a full disk (real 4 MiB tmpfs)', () => {
  let mount = ''
  let refusal: string | undefined
  before(() => {
    mount = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-full-'))
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mount], { encoding: 'utf8' })
    refusal = r.status === 0 ? undefined : `mount -t tmpfs refused: ${(r.stderr || r.error?.message || '').trim()}`
  })
  after(() => {
    if (refusal === undefined) spawnSync('umount', [mount])
    fs.rmSync(mount, { recursive: true, force: true })
  })
  const used = (): number => {
    const s = fs.statfsSync(mount)
    return (s.blocks - s.bfree) * s.bsize
  }
  /** The cache's entries, then something else taking every byte left. */
  async function fillUp(dir: string, failOpen = true): Promise<Larder> {
    const cache = await Larder.open({ dir, failOpen, breaker: { volumeThreshold: 1000 }, compression: 'none' })
    cache.on('error', () => {})
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, randomBytes(20_000))
    const filler = fs.openSync(path.join(mount, 'other'), 'w')
    try {
      for (;;) fs.writeSync(filler, Buffer.alloc(16_384))
    } catch (error) {
      assert.equal((error as { code?: string }).code, 'ENOSPC')
    }
    fs.closeSync(filler)
    return cache
  }

  test('clear() frees it: the entries go though the totals and the trash directory found no room', async (t) => {
    if (refusal !== undefined) return t.skip(refusal)
    const dir = path.join(mount, 'clear')
    const cache = await fillUp(dir)
    const full = used()
    await cache.clear()
    assert.ok(used() < full - 1_500_000, `freed ${full - used()} bytes`)
    assert.equal(await cache.get('k1'), undefined)
    assert.deepEqual(entryFiles(dir), [])
    await cache.set('after', 1)
    assert.equal((await cache.usage()).entries, 1, 'the running totals start again from the clear')
    await cache.close()
    fs.rmSync(path.join(mount, 'other'))
  })

  test('clear() of a full tmpfs (where its trash directory takes no block) succeeds: nothing refused, and the totals say empty', async (t) => {
    if (refusal !== undefined) return t.skip(refusal)
    const dir = path.join(mount, 'clear-reported')
    const cache = await fillUp(dir, false)
    try {
      // The totals find no room before the partitions go, nor after they are moved into the
      // trash: only once the trash is deleted. failOpen: false, so a clear told failed rejects.
      await cache.clear()
      const stats = await cache.stats()
      assert.equal(stats.errors + stats.dropped, 0, 'no failure counted')
      assert.equal(stats.entries, 0, 'the running totals start again from the clear')
      assert.deepEqual(entryFiles(dir), [])
    } finally {
      await cache.close()
      fs.rmSync(path.join(mount, 'other'))
    }
  })

  test('prune({ maxSize }) and `larder prune` free it: the lock and the totals wait for room', async (t) => {
    if (refusal !== undefined) return t.skip(refusal)
    const dir = path.join(mount, 'prune')
    const cache = await fillUp(dir)
    const full = used()
    const report = await cache.prune({ maxSize: '1MB' })
    assert.ok(report.evicted > 40, `evicted ${report.evicted}`)
    assert.ok(used() < full - 800_000, `freed ${full - used()} bytes`)
    await cache.close()
    // Full again, from the CLI this time.
    const filler = fs.openSync(path.join(mount, 'other'), 'a')
    try {
      for (;;) fs.writeSync(filler, Buffer.alloc(16_384))
    } catch {
      // full
    }
    fs.closeSync(filler)
    const before = used()
    const run = spawnSync(process.execPath, ['--import', 'tsx', cliPath, '--dir', dir, 'prune', '--max-size', '200KB', '--json'], {
      encoding: 'utf8',
    })
    assert.equal(run.status, 0, run.stderr)
    assert.ok(used() < before - 300_000, `freed ${before - used()} bytes`)
    fs.rmSync(path.join(mount, 'other'))
  })
})

test('a hard link planted at meta/changes: no write and no mode change reaches the file it shares (shared: everyone)', async () => {
  const dir = tempDir()
  const outside = path.join(tempDir('outside'), 'precious')
  fs.writeFileSync(outside, '')
  fs.chmodSync(outside, 0o600)
  const first = await Larder.open({ dir, shared: 'everyone' })
  await first.set('k', 1)
  await first.close()
  const log = path.join(dir, 'v1', 'default', 'meta', 'changes')
  fs.rmSync(log)
  fs.linkSync(outside, log)
  const cache = await Larder.open({ dir, shared: 'everyone' })
  for (let i = 0; i < 20; i++) await cache.set(`k${i}`, i)
  await cache.delete('k1')
  await cache.close()
  assert.equal(fs.readFileSync(outside, 'utf8'), '', 'nothing appended outside')
  assert.equal(fs.statSync(outside).mode & 0o777, 0o600, 'its mode is unchanged')
  assert.equal(fs.statSync(log).nlink, 1, 'the log is a file of its own again')
})

test('a hard-linked snapshot of the cache (cp -al): hits never move the snapshot files’ mtimes', async () => {
  const dir = tempDir()
  const first = await Larder.open({ dir })
  for (let i = 0; i < 10; i++) await first.set(`k${i}`, `v${i}`)
  await first.close()
  const snapshot = path.join(tempDir('snapshot'), 'copy')
  execFileSync('cp', ['-al', dir, snapshot])
  const old = new Date('2020-01-01T00:00:00Z')
  for (const file of entryFiles(snapshot)) fs.utimesSync(file, old, old)
  const cache = await Larder.open({ dir, maintenance: { touchAfter: 0 } })
  for (let round = 0; round < 2; round++) for (let i = 0; i < 10; i++) assert.equal(await cache.get(`k${i}`), `v${i}`)
  await cache.close()
  for (const file of entryFiles(snapshot)) assert.equal(fs.statSync(file).mtimeMs, old.getTime(), file)
})

test('the maintenance lock swapped for a link while held: its refresh and release touch nothing outside', () => {
  const dir = tempDir()
  const outside = tempDir('outside')
  fs.writeFileSync(path.join(outside, 'owner'), 'precious\n')
  const old = new Date('2020-01-01T00:00:00Z')
  fs.utimesSync(outside, old, old)
  const lockDir = path.join(dir, 'maintenance.lock')
  const release = tryLock(lockDir, { dir: 0o700, file: 0o600 })
  assert.ok(release !== undefined)
  fs.renameSync(lockDir, path.join(dir, 'moved'))
  fs.symlinkSync(outside, lockDir)
  release()
  assert.equal(fs.readFileSync(path.join(outside, 'owner'), 'utf8'), 'precious\n')
  assert.equal(fs.statSync(outside).mtimeMs, old.getTime())
  assert.equal(fs.existsSync(lockDir), false, 'the link planted in its place is removed (a name in our tree)')
})

test('a release the disk refused (meta/ no longer writable) leaves a lock this process takes again at once, not after 30 s', (t) => {
  const dir = tempDir()
  const lockDir = path.join(dir, 'maintenance.lock')
  const release = tryLock(lockDir, { dir: 0o700, file: 0o600 })
  assert.ok(release !== undefined)
  // The lock's own directory stays writable, its parent not: its owner file can go, not the
  // lock. As root only an immutable parent refuses the rmdir; as anyone else, its mode.
  const asRoot = process.getuid?.() === 0
  if (asRoot && spawnSync('chattr', ['+i', dir]).status !== 0) return t.skip('chattr +i is refused here')
  if (!asRoot) fs.chmodSync(dir, 0o500)
  try {
    release()
  } finally {
    if (asRoot) execFileSync('chattr', ['-i', dir])
    else fs.chmodSync(dir, 0o700)
  }
  assert.ok(fs.existsSync(lockDir), 'the release could not remove the lock')
  // This process's own failed release, not a holder to wait for until the lock is stale (its
  // automatic prunes stood aside for it, and paced its writes, for 30 s).
  const again = tryLock(lockDir, { dir: 0o700, file: 0o600 })
  assert.ok(again !== undefined, 'taken again at once')
  again()
})

test('a file where tags/ belongs: put back as a directory and reported, no disk errors, tagged entries written before are stale (their stamps are lost)', async () => {
  const dir = tempDir()
  const first = await Larder.open({ dir })
  await first.set('untagged', 1)
  await first.set('tagged', 2, { tags: ['users'] })
  await first.invalidateTags(['other'])
  await first.close()
  const tags = path.join(dir, 'v1', 'default', 'tags')
  fs.rmSync(tags, { recursive: true })
  fs.writeFileSync(tags, 'junk')
  const cache = await Larder.open({ dir })
  const states: string[] = []
  cache.on('breaker', (state) => states.push(state))
  cache.on('error', () => {})
  let corrupt = 0
  cache.on('corrupt', () => corrupt++)
  for (let i = 0; i < 30; i++) {
    assert.equal(await cache.get('untagged'), 1)
    assert.equal(await cache.get('tagged'), undefined)
  }
  await cache.set('fresh', 3, { tags: ['users'] })
  assert.equal(await cache.get('fresh'), 3, 'written after the repair: fresh')
  await cache.invalidateTags(['users'])
  assert.equal(await cache.get('fresh'), undefined, 'and invalidated as ever')
  const stats = await cache.stats()
  assert.equal(stats.errors, 0)
  assert.deepEqual(states, [])
  assert.ok(fs.lstatSync(tags).isDirectory())
  assert.ok(corrupt >= 1, 'the foreign file is reported')
  await cache.close()
})

test('a file where meta/totals belongs: prunes, budgets and clear() work, and it is put back as a directory', async () => {
  const dir = tempDir()
  const first = await Larder.open({ dir })
  for (let i = 0; i < 30; i++) await first.set(`k${i}`, i)
  await first.close()
  const totals = path.join(dir, 'v1', 'default', 'meta', 'totals')
  fs.rmSync(totals, { recursive: true, force: true })
  fs.writeFileSync(totals, 'junk')
  const cache = await Larder.open({ dir })
  const report = await cache.prune({ maxEntries: 10 })
  assert.equal(report.remainingEntries, 10)
  assert.ok(fs.lstatSync(totals).isDirectory())
  await cache.clear()
  assert.deepEqual(entryFiles(dir), [])
  await cache.close()
})
