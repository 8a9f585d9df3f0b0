/**
 * Removing one judged inode (store/take-aside.ts) while other processes write and delete the
 * same key. The windows are a few system calls wide, so each case opens its window with a hook
 * on the one call inside it (the `disk` seam and node:fs, both patched, so the same case runs
 * against any version of the code) and makes the other process's move there, synchronously:
 * a real child process (spawnSync), or the rename a writer makes.
 */
import { afterEach, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { loadHasher } from '../src/format/checksum.ts'
import { removeIfSame } from '../src/maintenance/entry-scan.ts'
import { disk } from '../src/store/disk.ts'
import { removeIfUnchanged } from '../src/store/entry-files.ts'
import { Layout } from '../src/store/layout.ts'
import { tempDir } from './helpers.ts'
import { repoRoot } from './cli-runner.ts'

const realDisk = { ...disk }
const realLink = fs.linkSync
afterEach(() => {
  Object.assign(disk, realDisk)
  fs.linkSync = realLink
})
before(() => loadHasher())

const entryOf = (dir: string, key: string): string => {
  const layout = new Layout(dir, '')
  return layout.entryPath(layout.hashKey(key))
}

/** Another process deletes `key` in `dir`, and has finished when this returns. */
function deleteInAnotherProcess(dir: string, key: string): string {
  const script = `import { Larder } from ${JSON.stringify(path.join(repoRoot, 'src', 'index.ts'))}
const cache = await Larder.open({ dir: ${JSON.stringify(dir)}, maintenance: false })
process.stdout.write(String(await cache.delete(${JSON.stringify(key)})))
await cache.close()`
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  return run.stdout
}

describe('a removal that takes one inode aside', () => {
  test('eviction takes a fresh entry aside and puts it back; a delete from another process in between is not undone', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: false })
    await cache.set('k', 'v1')
    const file = entryOf(dir, 'k')
    const victim = fs.statSync(file) // chosen for eviction
    await cache.set('k', 'v2') // rewritten after it was chosen: a new inode
    let deleted: string | undefined
    const hooked = (original: typeof fs.linkSync) =>
      ((existing: fs.PathLike, target: fs.PathLike) => {
        deleted ??= deleteInAnotherProcess(dir, 'k') // the put-back's moment
        return original(existing, target)
      }) as typeof fs.linkSync
    disk.linkSync = hooked(realDisk.linkSync)
    fs.linkSync = hooked(realLink)
    assert.equal(removeIfSame(file, victim.ino, victim.mtimeMs), undefined, 'v2 was not the victim: nothing evicted')
    assert.ok(deleted !== undefined, 'the other process deleted while v2 was aside')
    assert.equal(await cache.get('k'), undefined, 'the delete stands')
    assert.equal(fs.existsSync(file), false)
    assert.deepEqual(
      fs.readdirSync(path.dirname(file)).filter((n) => n.startsWith(path.basename(file))),
      [],
      'nothing left aside',
    )
    await cache.close()
  })

  test("a reader's removal of an expired entry never takes a fresh one renamed into place meanwhile", async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: false })
    const file = entryOf(dir, 'k')
    // A fresh entry another process wrote, waiting in a temp file to be renamed into place.
    const fresh = `${file}.999999-1.tmp`
    await cache.set('k', 'fresh')
    fs.linkSync(file, fresh)
    await cache.set('k', 'expired', { ttl: 1 })
    const expiredNow = fs.statSync(file).ino // what a reader judged expired
    let renamed = false
    disk.unlinkSync = (target: fs.PathLike) => {
      if (!renamed) {
        renamed = true
        fs.renameSync(fresh, file) // the writer's rename, just before the unlink
      }
      return realDisk.unlinkSync(target)
    }
    await removeIfUnchanged(file, expiredNow)
    assert.ok(renamed)
    disk.unlinkSync = realDisk.unlinkSync
    assert.equal(await cache.get('k'), 'fresh', 'the fresh entry survives')
    await cache.close()
  })
})
