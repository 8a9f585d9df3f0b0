/**
 * Tag invalidations seen across processes whatever the file system's timestamp resolution:
 * on a real loop-mounted ext4 made with 128-byte inodes (whole-second mtimes, as on ext3,
 * HFS+ and, at two seconds, FAT), and on the default file system. Process A is a child
 * (test/children/peer.ts); process B is this test process.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { Child, startChild } from './children/harness.ts'

const base = mkdtempSync(path.join(tmpdir(), 'larder-tag-clock-'))
const children: Child[] = []

/** A loop-mounted ext4 with 128-byte inodes (1-second timestamps), or why there is none. */
function mountCoarseExt4(): { dir: string; reason?: undefined } | { dir?: undefined; reason: string } {
  const image = path.join(base, 'ext4-128.img')
  const mnt = path.join(base, 'mnt')
  mkdirSync(mnt)
  const made = spawnSync('truncate', ['-s', '32M', image])
  if (made.status !== 0) return { reason: `truncate failed: ${String(made.stderr)}` }
  const fs = spawnSync('mkfs.ext4', ['-q', '-F', '-I', '128', image])
  if (fs.status !== 0) return { reason: `mkfs.ext4 -I 128 failed: ${String(fs.stderr ?? fs.error)}` }
  const mounted = spawnSync('mount', ['-o', 'loop', image, mnt])
  if (mounted.status !== 0) return { reason: `mount -o loop is not permitted here: ${String(mounted.stderr ?? mounted.error)}` }
  return { dir: mnt }
}

const coarse = mountCoarseExt4()
after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  if (coarse.dir !== undefined && spawnSync('umount', [coarse.dir]).status !== 0) spawnSync('umount', ['-l', coarse.dir])
  rmSync(base, { recursive: true, force: true })
})

/** Waits until just after a wall-clock second begins, so a round's steps share one second. */
async function startOfASecond(): Promise<void> {
  while (Date.now() % 1000 > 20) await delay(Math.max(1, 1000 - (Date.now() % 1000)))
}

/**
 * Rounds of: B invalidates another tag (the tags directory's mtime is now this second), A reads
 * `user:1` twice, 150 ms apart (past the old 100 ms racy window, so A trusts its cached stamps),
 * B invalidates `users`, and A reads again: it must miss. Returns how many rounds left the tags
 * directory's mtime unchanged by B's invalidation (the case whole-second mtimes make common).
 */
async function invalidationRounds(dir: string, rounds: number, untilUnchanged: number): Promise<{ rounds: number; unchanged: number }> {
  const a = await startChild('peer.ts')
  children.push(a)
  const ha = await a.call<number>('open', { options: { dir, maintenance: false } })
  const b = await Larder.open({ dir, maintenance: false })
  const tagsDir = path.join(dir, 'v1', 'default', 'tags')
  const get = async (): Promise<unknown> => (await a.call<{ value: unknown }>('get', { h: ha, key: 'user:1' })).value
  let unchanged = 0
  let round = 0
  for (; round < rounds && (round < 3 || unchanged < untilUnchanged); round++) {
    await a.call('set', { h: ha, key: 'user:1', value: `v${round}`, options: { tags: ['users'] } })
    await startOfASecond()
    await b.invalidateTags(['other'])
    assert.equal(await get(), `v${round}`, `round ${round}: A's first read`)
    await delay(150)
    assert.equal(await get(), `v${round}`, `round ${round}: A's second read`)
    const before = statSync(tagsDir).mtimeMs
    await b.invalidateTags(['users'])
    if (statSync(tagsDir).mtimeMs === before) unchanged++
    assert.equal(
      await get(),
      undefined,
      `round ${round}: A still serves v${round} after B invalidated "users" (tags dir mtime ${before}, ${unchanged} unchanged rounds)`,
    )
    await delay(50)
    assert.equal(await get(), undefined, `round ${round}: A serves v${round} again later`)
  }
  await b.close()
  await a.shutdown()
  return { rounds: round, unchanged }
}

describe('tag invalidations across processes', () => {
  test(
    "on ext4 with 1-second timestamps (mkfs.ext4 -I 128), process A sees B's invalidation on its next read, even within the second of its last read",
    { timeout: 120_000 },
    async (t) => {
      if (coarse.dir === undefined) {
        t.skip(coarse.reason)
        return
      }
      const dir = path.join(coarse.dir, 'cache')
      mkdirSync(dir)
      // beside the cache, not in it: larder makes a cache only of an empty directory or its own
      mkdirSync(path.join(coarse.dir, 'probe'))
      assert.equal(statSync(path.join(coarse.dir, 'probe')).mtimeMs % 1000, 0, 'this file system keeps whole-second mtimes')
      const { rounds, unchanged } = await invalidationRounds(dir, 12, 2)
      assert.ok(
        unchanged >= 1,
        `no round had B's invalidation land within the second of the previous one (${rounds} rounds): the case under test never happened`,
      )
    },
  )

  test("on the default file system, process A sees B's invalidation on its next read", { timeout: 60_000 }, async () => {
    const dir = path.join(base, 'default-fs')
    await invalidationRounds(dir, 3, 0)
  })
})
