/**
 * The write path's promises: a write that does not complete is never renamed into an entry's
 * place (real full tmpfs, and short or stalled writes through the disk seam); the tree is
 * owner-only by default and `open()` refuses a directory others control; `clear()` empties
 * the namespace for every process but keeps its metadata; a live stream's temp file survives
 * any prune however slow its source; `close()` leaves nothing in flight behind.
 */
import { after, afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder, type LarderError } from '../src/index.ts'
import { loadHasher } from '../src/format/checksum.ts'
import { disk } from '../src/store/disk.ts'
import { Layout } from '../src/store/layout.ts'
import { Child, startChild } from './children/harness.ts'
import { eventually } from './eventually.ts'
import { listFiles, tempDir } from './helpers.ts'
import { smallTmpfs } from './tmpfs.ts'

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

const children: Child[] = []
after(async () => {
  await Promise.all(children.map((c) => c.kill()))
})

async function entryPath(dir: string, key: string, namespace = ''): Promise<string> {
  await loadHasher()
  const layout = new Layout(dir, namespace)
  return layout.entryPath(layout.hashKey(key))
}

/** Temp files left in the partitions of the default namespace. */
function temps(dir: string): string[] {
  return listFiles(path.join(dir, 'v1', 'default')).filter((f) => /^[0-9a-f]{2}\/[0-9a-f]{16}\./.test(f))
}

/** Incompressible bytes (stored as they are, so the entry is as large as the value). */
function incompressible(size: number): Buffer {
  return randomBytes(size)
}

// ── 1. a full disk ─────────────────────────────────────────────────────────────

describe('a write that does not fit', () => {
  const tmpfs = smallTmpfs('larder-tmpfs')

  for (const [path_, size] of [
    ['sync', 40_000],
    ['async', 80_000],
  ] as const) {
    test(`a set over an existing entry on a full disk (real 256 KiB tmpfs, ${path_} path, ${size} bytes) is a counted drop, and the entry it was to replace is served no more, here or in another process`, async (t) => {
      if (tmpfs.refusal !== undefined) return t.skip(tmpfs.refusal)
      const dir = path.join(tmpfs.dir, `cache-${path_}`)
      const cache = await Larder.open({ dir })
      await cache.set('k', { v: 'old' })
      const before = await cache.stats()
      const filler = tmpfs.leaveFree(24 * 1024)
      try {
        const free = fs.statfsSync(tmpfs.dir)
        assert.ok(free.bavail * free.bsize <= 24 * 1024, `free ${free.bavail * free.bsize}`)
        await cache.set('k', incompressible(size))
        const stats = await cache.stats()
        assert.equal(stats.sets, 1, 'the failed set is not counted as stored')
        assert.equal(stats.dropped, 1, 'the failed set is a counted drop')
        assert.equal(stats.bytesWritten, before.bytesWritten, 'bytes not written are not counted')
        assert.ok(stats.size <= before.size, 'the running totals do not count the failed write')
        // The caller was not told (failOpen): the key must not go on answering with the value
        // it asked to replace. A full disk still unlinks, so the old entry is gone at once.
        assert.equal(await cache.get('k'), undefined, 'the replaced value is not served')
        const other = await Larder.open({ dir, readOnly: true })
        assert.equal(await other.get('k'), undefined, 'nor in another process')
        await other.close()
        assert.equal((await cache.stats()).entries, before.entries - 1)
        assert.deepEqual(temps(dir), [], 'no temp file left behind')
        assert.equal((await cache.stats()).corrupt, 0)
      } finally {
        fs.rmSync(filler)
        await cache.close()
      }
    })
  }

  test('with failOpen false, a set on a full disk rejects with ERR_UNAVAILABLE and the old entry survives', async (t) => {
    if (tmpfs.refusal !== undefined) return t.skip(tmpfs.refusal)
    const dir = path.join(tmpfs.dir, 'cache-strict')
    const cache = await Larder.open({ dir, failOpen: false })
    await cache.set('k', 'old')
    const filler = tmpfs.leaveFree(24 * 1024)
    try {
      await assert.rejects(
        cache.set('k', incompressible(60_000)),
        (e: LarderError) => e.code === 'ERR_UNAVAILABLE' && (e.cause as { code?: string }).code === 'ENOSPC',
      )
      assert.equal(await cache.get('k'), 'old')
      assert.deepEqual(temps(dir), [])
    } finally {
      fs.rmSync(filler)
      await cache.close()
    }
  })

  test("a 'breaker' listener that throws: the breaker opens and closes as without it, and the throw is heard as 'error', not thrown into the host", async (t) => {
    if (tmpfs.refusal !== undefined) return t.skip(tmpfs.refusal)
    const dir = path.join(tmpfs.dir, 'cache-breaker-listener')
    const cache = await Larder.open({ dir, breaker: { resetTimeout: 200 }, maintenance: false })
    const uncaught: unknown[] = []
    const onUncaught = (error: unknown): void => void uncaught.push(error)
    process.on('uncaughtException', onUncaught)
    const states: string[] = []
    const heard: Error[] = []
    cache.on('error', (error) => heard.push(error))
    cache.on('breaker', (state) => {
      states.push(state)
      throw new Error('a listener failed')
    })
    const filler = tmpfs.leaveFree(4 * 1024)
    try {
      for (let i = 0; i < 10; i++) await cache.set(`k${i}`, incompressible(20_000))
      assert.equal((await cache.stats()).breaker.state, 'open')
      fs.rmSync(filler)
      await eventually(async () => {
        await cache.set('after', 'v')
        return (await cache.stats()).breaker.state === 'closed'
      }, 'the breaker closes once the disk takes writes again')
      assert.equal(await cache.get('after'), 'v')
      assert.deepEqual(states, ['open', 'halfOpen', 'closed'])
      assert.deepEqual(uncaught, [])
      assert.equal(heard.filter((error) => error.message === 'a listener failed').length, 3)
    } finally {
      process.off('uncaughtException', onUncaught)
      fs.rmSync(filler, { force: true })
      await cache.close()
    }
  })
})

// ── 1b. short and stalled writes through the seam ──────────────────────────────

describe('short writes (through the disk seam)', () => {
  type WriteSync = (fd: number, buffer: Buffer, offset: number, length: number, position?: number | null) => number
  type Write = (handle: fs.promises.FileHandle, buffer: Buffer, offset: number, length: number) => Promise<{ bytesWritten: number }>
  const seam = disk as unknown as { writeSync: WriteSync; write: Write }

  test('a disk that takes a little at a time (short counts) still stores every byte, on both paths and for streams', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    const realWriteSync = seam.writeSync
    const realWrite = seam.write
    assert.equal(typeof realWriteSync, 'function', 'the seam has writeSync')
    assert.equal(typeof realWrite, 'function', 'the seam has write')
    let calls = 0
    seam.writeSync = (fd, buffer, offset, length, position) => {
      calls++
      return realWriteSync(fd, buffer, offset, Math.min(length, 1000), position)
    }
    seam.write = (handle, buffer, offset, length) => {
      calls++
      return realWrite(handle, buffer, offset, Math.min(length, 1000))
    }
    const small = incompressible(30_000)
    const large = incompressible(100_000)
    await cache.set('small', small)
    await cache.set('large', large)
    await cache.setStream('stream', [large])
    assert.ok(calls > 200, `writes went through the seam (${calls})`)
    Object.assign(disk, realDisk)
    assert.deepEqual(await cache.get('small'), small)
    assert.deepEqual(await cache.get('large'), large)
    const stream = await cache.getStream('stream')
    assert.deepEqual(Buffer.concat(await stream!.toArray()), large)
    const stats = await cache.stats()
    assert.equal(stats.dropped, 0)
    assert.equal(stats.sets, 3)
    await cache.close()
  })

  for (const failure of ['a zero count', 'ENOSPC after part of the bytes'] as const) {
    for (const route of ['set (sync path)', 'set (async path)', 'setStream'] as const) {
      test(`${route}: a write that stops with ${failure} is never renamed into place; the set is a counted drop, and the entry it was to replace is served no more`, async () => {
        const dir = tempDir()
        const cache = await Larder.open({ dir })
        const old = { v: 'old' }
        await cache.set('k', old)
        const before = await cache.stats()
        const realWriteSync = seam.writeSync
        const realWrite = seam.write
        let written = 0
        const budget = 10_000
        const stop = (): never => {
          throw Object.assign(new Error('ENOSPC: no space left on device, write (injected)'), { code: 'ENOSPC' })
        }
        seam.writeSync = (fd, buffer, offset, length, position) => {
          const room = budget - written
          if (room <= 0) return failure === 'a zero count' ? 0 : stop()
          const n = realWriteSync(fd, buffer, offset, Math.min(length, room), position)
          written += n
          return n
        }
        seam.write = async (handle, buffer, offset, length) => {
          const room = budget - written
          if (room <= 0) return failure === 'a zero count' ? { bytesWritten: 0 } : stop()
          const r = await realWrite(handle, buffer, offset, Math.min(length, room))
          written += r.bytesWritten
          return r
        }
        const value = incompressible(route === 'set (sync path)' ? 40_000 : 120_000)
        if (route === 'setStream') await cache.setStream('k', [value])
        else await cache.set('k', value)
        Object.assign(disk, realDisk)
        assert.ok(written > 0, 'the write went through the seam')
        const stats = await cache.stats()
        assert.equal(stats.dropped, 1, 'a counted drop')
        assert.equal(stats.sets, before.sets)
        assert.equal(stats.bytesWritten, before.bytesWritten)
        assert.ok(stats.size <= before.size, 'the totals count no byte of it')
        assert.equal(await cache.get('k'), undefined, 'the replaced value is not served')
        assert.equal((await cache.stats()).corrupt, 0, 'nothing torn was renamed into place')
        assert.deepEqual(temps(dir), [], 'the temp file was removed')
        await cache.close()
      })
    }
  }
})

// ── 3. modes and trust ─────────────────────────────────────────────────────────

/** Every directory and file under `dir` (the root included) with its permission bits. */
function modes(dir: string): { dirs: Map<string, number>; files: Map<string, number> } {
  const dirs = new Map<string, number>()
  const files = new Map<string, number>()
  const walk = (at: string): void => {
    const s = fs.lstatSync(at)
    const rel = path.relative(dir, at) || '.'
    if (s.isDirectory()) {
      dirs.set(rel, s.mode & 0o7777)
      for (const name of fs.readdirSync(at)) walk(path.join(at, name))
    } else files.set(rel, s.mode & 0o7777)
  }
  walk(dir)
  return { dirs, files }
}

/** Writes something of every kind: entries (both paths), a stream, a stamp, budget, totals, activity, hit logs, a prune. */
async function useEverything(cache: Larder): Promise<void> {
  await cache.set('small', { a: 1 }, { tags: ['t'] })
  await cache.set('large', incompressible(70_000))
  await cache.setStream('stream', [incompressible(2000)])
  await cache.get('small')
  await cache.invalidateTags(['t'])
  await cache.set('again', 1)
  await cache.prune()
}

function withUmask<T>(mask: number, run: () => Promise<T>): Promise<T> {
  const previous = process.umask(mask)
  return run().finally(() => process.umask(previous))
}

describe('modes and trust', () => {
  test('a new cache is owner-only: every directory 0700 and every file 0600, whatever the umask', async () => {
    const dir = path.join(tempDir(), 'cache')
    await withUmask(0o022, async () => {
      const cache = await Larder.open({ dir, maxEntries: 100, evictionPolicy: 'lfu' })
      await useEverything(cache)
      await cache.close()
    })
    const { dirs, files } = modes(dir)
    assert.ok(files.size >= 8, `files: ${[...files.keys()].join(', ')}`)
    assert.ok(
      dirs.has('v1/default/meta/hits') && dirs.has('v1/default/tags') && dirs.has('v1/default/meta/activity'),
      [...dirs.keys()].join(', '),
    )
    for (const [rel, mode] of dirs) assert.equal(mode.toString(8), '700', `directory ${rel}`)
    for (const [rel, mode] of files) assert.equal(mode.toString(8), '600', `file ${rel}`)
  })

  test('shared: "group" makes directories 2770 and files 0660 even under umask 022', async () => {
    const dir = path.join(tempDir(), 'cache')
    await withUmask(0o022, async () => {
      const cache = await Larder.open({ dir, shared: 'group', maxEntries: 100, evictionPolicy: 'lfu' })
      await useEverything(cache)
      await cache.close()
    })
    const { dirs, files } = modes(dir)
    for (const [rel, mode] of dirs) assert.equal(mode.toString(8), '2770', `directory ${rel}`)
    for (const [rel, mode] of files) assert.equal(mode.toString(8), '660', `file ${rel}`)
  })

  test('an existing tree left readable by others is closed at open (v1/ tightened to the configured mode)', async () => {
    const dir = path.join(tempDir(), 'cache')
    fs.mkdirSync(path.join(dir, 'v1', 'default'), { recursive: true, mode: 0o755 })
    fs.chmodSync(dir, 0o755)
    fs.chmodSync(path.join(dir, 'v1'), 0o755)
    const cache = await Larder.open({ dir })
    await cache.close()
    assert.equal((fs.statSync(path.join(dir, 'v1')).mode & 0o777).toString(8), '700')
  })

  test('open() refuses a directory owned by another user, and writes nothing into it', async () => {
    const dir = path.join(tempDir(), 'planted')
    fs.mkdirSync(dir, { mode: 0o755 })
    fs.chownSync(dir, 12345, 12345)
    await assert.rejects(Larder.open({ dir }), (e: LarderError) => {
      assert.equal(e.code, 'ERR_UNSAFE_DIR')
      assert.equal(e.field, 'dir')
      assert.match(e.message, /owned by uid 12345/)
      assert.ok(e.message.includes(dir), e.message)
      assert.match(e.message, /shared/)
      return true
    })
    await assert.rejects(Larder.open({ dir, failOpen: true }), { code: 'ERR_UNSAFE_DIR' })
    await assert.rejects(Larder.open({ dir, readOnly: true }), { code: 'ERR_UNSAFE_DIR' }, 'reading is what the check protects')
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing was created inside')
    const shared = await Larder.open({ dir, shared: 'group' })
    await shared.set('k', 1)
    assert.equal(await shared.get('k'), 1)
    await shared.close()
  })

  test('open() refuses a directory writable by group or others without the sticky bit', async () => {
    for (const mode of [0o777, 0o775, 0o757]) {
      const dir = path.join(tempDir(), 'open')
      fs.mkdirSync(dir)
      fs.chmodSync(dir, mode)
      for (const readOnly of [false, true]) {
        await assert.rejects(
          Larder.open({ dir, readOnly }),
          (e: LarderError) => e.code === 'ERR_UNSAFE_DIR' && /writable by (group|others)/.test(e.message),
          `mode ${mode.toString(8)}, readOnly ${readOnly}`,
        )
      }
      assert.deepEqual(fs.readdirSync(dir), [])
    }
    const sticky = path.join(tempDir(), 'sticky')
    fs.mkdirSync(sticky)
    fs.chmodSync(sticky, 0o1777)
    const inSticky = await Larder.open({ dir: sticky })
    await inSticky.set('k', 1)
    await inSticky.close()

    const group = path.join(tempDir(), 'group')
    fs.mkdirSync(group)
    fs.chmodSync(group, 0o770)
    const grouped = await Larder.open({ dir: group, shared: 'group' })
    await grouped.close()
    fs.chmodSync(group, 0o777)
    await assert.rejects(Larder.open({ dir: group, shared: 'group' }), { code: 'ERR_UNSAFE_DIR' })
    const everyone = await Larder.open({ dir: group, shared: 'everyone' })
    await everyone.set('k', 1)
    assert.equal(await everyone.get('k'), 1)
    await everyone.close()
  })

  test('a directory of ours inside a sticky root, pre-created by another user, is refused', async () => {
    const root = path.join(tempDir(), 'tmp-like')
    fs.mkdirSync(root)
    fs.chmodSync(root, 0o1777)
    fs.mkdirSync(path.join(root, 'v1'), { mode: 0o777 })
    fs.chownSync(path.join(root, 'v1'), 12345, 12345)
    await assert.rejects(
      Larder.open({ dir: root }),
      (e: LarderError) => e.code === 'ERR_UNSAFE_DIR' && e.message.includes(path.join(root, 'v1')),
    )
  })

  test('a cache directory that is a symlink made by its owner is used; one made by another user is refused', async () => {
    const base = tempDir()
    fs.mkdirSync(path.join(base, 'real'))
    fs.symlinkSync(path.join(base, 'real'), path.join(base, 'mine'))
    const cache = await Larder.open({ dir: path.join(base, 'mine') })
    await cache.set('k', 1)
    await cache.close()
    assert.ok(fs.existsSync(path.join(base, 'real', 'v1')), "the tree is inside the link's target")

    fs.symlinkSync(path.join(base, 'real'), path.join(base, 'theirs'))
    fs.lchownSync(path.join(base, 'theirs'), 12345, 12345)
    await assert.rejects(
      Larder.open({ dir: path.join(base, 'theirs') }),
      (e: LarderError) => e.code === 'ERR_UNSAFE_DIR' && /symlink/.test(e.message),
    )
  })
})

// ── 4. clear() ─────────────────────────────────────────────────────────────────

describe('clear()', () => {
  test('brings the running totals to zero in this process and in another (a real child process)', { timeout: 60_000 }, async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const child = await startChild('worker.ts')
    children.push(child)
    const h = await child.call<number>('open', { options: { dir } })
    for (let i = 0; i < 10; i++) await child.call('set', { h, key: `theirs-${i}`, value: { i } })
    // The child's writes reach its delta file within its flush interval: wait until we see them.
    for (let tries = 0; (await cache.stats()).entries < 10; tries++) {
      assert.ok(tries < 400, 'the child never flushed its totals')
      await delay(25)
    }
    // Ours are still pending (not yet flushed) when the clear comes.
    for (let i = 0; i < 10; i++) await cache.set(`mine-${i}`, { i })
    assert.equal((await cache.stats()).entries, 20)
    await cache.clear()
    const mine = await cache.stats()
    assert.equal(mine.entries, 0)
    assert.equal(mine.size, 0)
    const theirs = await child.call<{ entries: number; size: number }>('stats', { h })
    assert.equal(theirs.entries, 0, 'the other process sees the clear in its totals')
    assert.equal(theirs.size, 0)
    const fresh = await Larder.open({ dir })
    assert.equal((await fresh.stats()).entries, 0, 'a new instance too')
    await fresh.close()

    // Writes after the clear count again, in both.
    await cache.set('after', 1)
    await child.call('set', { h, key: 'after-theirs', value: 2 })
    await child.call('close', { h })
    await cache.close()
    const reopened = await Larder.open({ dir })
    assert.equal((await reopened.stats()).entries, 2)
    await reopened.close()
    await child.shutdown()
  })

  test('keeps tag stamps: an old tagged entry copied back into place is still stale', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.set('user:1', { name: 'old' }, { tags: ['users'] })
    const file = await entryPath(dir, 'user:1')
    const backup = fs.readFileSync(file)
    await cache.invalidateTags(['users'])
    await cache.clear()
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, backup) // restored from a backup, or written late by a slow process
    assert.equal(await cache.get('user:1'), undefined, 'the invalidation still holds')
    await cache.close()
    const other = await Larder.open({ dir })
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, backup)
    assert.equal(await other.get('user:1'), undefined, 'for a fresh instance too')
    await other.close()
  })

  test('keeps the namespace metadata that is not entries: budget.json, activity records, hit logs', async () => {
    const dir = tempDir()
    const first = await Larder.open({ dir, maxEntries: 50, evictionPolicy: 'lfu' })
    await first.set('a', 1)
    await first.get('a')
    await first.close()
    const meta = path.join(dir, 'v1', 'default', 'meta')
    const before = listFiles(meta)
      .filter((f) => !f.startsWith('totals/'))
      .sort()
    assert.ok(
      before.includes('budget.json') && before.some((f) => f.startsWith('activity/')) && before.some((f) => f.startsWith('hits/')),
      before.join(', '),
    )
    const second = await Larder.open({ dir, maxEntries: 50, evictionPolicy: 'lfu' })
    await second.clear()
    await second.close()
    const afterwards = listFiles(meta)
    for (const f of before) assert.ok(afterwards.includes(f), `${f} survived the clear`)
    const reader = await Larder.open({ dir })
    assert.ok((await reader.activity()).runs >= 1, 'the activity records still add up')
    await reader.close()
  })

  test('deletes its trash, keeps meta/, and a set after it is stored', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    for (let i = 0; i < 50; i++) await cache.set(`k${i}`, i)
    await cache.clear()
    const v1 = fs.readdirSync(path.join(dir, 'v1'))
    assert.deepEqual(
      v1.filter((n) => n.startsWith('.trash-')),
      [],
      'the trash was deleted',
    )
    assert.ok(fs.existsSync(path.join(dir, 'v1', 'default', 'meta')), 'meta/ kept')
    for (let i = 0; i < 50; i++) assert.equal(await cache.get(`k${i}`), undefined)
    await cache.set('k1', 'new')
    assert.equal(await cache.get('k1'), 'new')
    await cache.close()
  })
})

// ── 5. a live, slow stream and prune ───────────────────────────────────────────

describe('temp files of streams', () => {
  test(
    "a prune in another process never removes the temp file of a live stream, however slow its source; a dead writer's is reclaimed",
    { timeout: 90_000 },
    async () => {
      const dir = tempDir()
      // 10 KB every 200 ms, then held open until told: far below the 1 MiB a frame holds, so
      // nothing reaches the file until it finishes.
      const slow = await startChild('slow-stream.ts', [dir, 'slow', '5', '200', 'hold'], false)
      children.push(slow)
      await slow.next('writing')
      // tempMaxAge at its documented minimum: each wait below is that plus a second's margin.
      const janitor = await Larder.open({ dir, maintenance: { interval: 0, tempMaxAge: '1s' } })
      let temp: string | undefined
      for (let tries = 0; temp === undefined; tries++) {
        assert.ok(tries < 400, 'the stream never made its temp file')
        temp = temps(dir)[0]
        if (temp === undefined) await delay(10)
      }
      const seen = Date.now()
      // Past the temp file's maximum age, the writer still feeding its stream.
      while (Date.now() - seen < 2000) await delay(100)
      assert.equal(slow.has('done'), false, 'the stream is still being written')
      const pruned = await janitor.prune()
      assert.equal(pruned.tempFilesRemoved, 0, "the live writer's temp file was left alone")
      assert.ok(fs.existsSync(path.join(dir, 'v1', 'default', temp)), 'its temp file is still there')
      slow.proc.send({ type: 'finish' })
      const done = await slow.next('done')
      assert.equal((done.stats as { dropped: number }).dropped, 0, 'the stream was stored')
      const stream = await janitor.getStream('slow')
      assert.ok(stream !== undefined, 'the entry is there')
      assert.equal(Buffer.concat(await stream.toArray()).length, 5 * 10_000)

      // A writer killed mid-stream leaves its temp file; once it is older than tempMaxAge, it goes.
      const doomed = await startChild('slow-stream.ts', [dir, 'doomed', '1000', '200'], false)
      children.push(doomed)
      await doomed.next('writing')
      let doomedTemp: string | undefined
      for (let tries = 0; doomedTemp === undefined; tries++) {
        assert.ok(tries < 400, 'the doomed stream never made its temp file')
        doomedTemp = temps(dir).find((f) => f !== temp)
        if (doomedTemp === undefined) await delay(10)
      }
      await doomed.kill()
      const killed = Date.now()
      while (Date.now() - killed < 2000) await delay(100)
      const reclaimed = await janitor.prune()
      assert.equal(reclaimed.tempFilesRemoved, 1)
      assert.deepEqual(temps(dir), [])
      await janitor.close()
      await slow.shutdown()
    },
  )

  test('tempMaxAge below the documented minimum (1 s) is rejected', async () => {
    await assert.rejects(
      Larder.open({ dir: tempDir(), maintenance: { tempMaxAge: 500 } }),
      (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.field === 'maintenance.tempMaxAge',
    )
  })
})

// ── 6. close() with writes in flight ───────────────────────────────────────────

describe('close() with streams in flight', () => {
  test(
    'waits for a stream that finishes, aborts the rest cleanly: nothing written after it resolves, no temp file left (a real process that then exits)',
    { timeout: 60_000 },
    async () => {
      const dir = tempDir()
      const child = await startChild('close-in-flight.ts', [dir], false)
      children.push(child)
      const report = await child.next('closed')
      const exit = await child.exited
      assert.equal(exit.code, 0, child.stderr)
      const outcome = report.outcome as Record<string, string>
      assert.deepEqual(Object.keys(outcome).sort(), ['endless', 'quick', 'stalled'], 'every setStream had settled when close() resolved')
      assert.equal(outcome.quick, 'stored')
      assert.equal(outcome.endless, 'dropped')
      assert.equal(outcome.stalled, 'dropped')
      assert.deepEqual(report.tempsAtClose, [], 'no temp file when close() resolved')
      assert.deepEqual(report.filesLater, report.filesAtClose, 'nothing written after close() resolved')
      assert.deepEqual(temps(dir), [], 'no temp file after the process exited')
      const cache = await Larder.open({ dir })
      assert.ok(await cache.getStream('quick'), 'the stream that finished within the bound is stored')
      assert.equal(await cache.getStream('endless'), undefined)
      assert.equal(await cache.getStream('stalled'), undefined)
      await cache.close()
    },
  )

  test('a stream queued behind one that close() aborts is aborted too: settled when close() resolves, and nothing of it written after', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    const outcome: string[] = []
    const settle = (name: string, write: Promise<void>): void =>
      void write.then(
        () => outcome.push(`${name} settled`),
        () => outcome.push(`${name} rejected`),
      )
    settle(
      'endless',
      cache.setStream(
        'k',
        (async function* () {
          yield Buffer.from('endless')
          await new Promise(() => {})
        })(),
      ),
    )
    settle(
      'queued',
      cache.setStream(
        'k',
        (async function* () {
          yield Buffer.from('queued')
          await gate // ends once close() has resolved
        })(),
      ),
    )
    await delay(50)
    await cache.close()
    assert.deepEqual(outcome.sort(), ['endless settled', 'queued settled'], 'both had settled (dropped) when close() resolved')
    const atClose = listFiles(dir)
    open()
    await delay(200)
    assert.deepEqual(listFiles(dir), atClose, 'nothing written after close() resolved')
    assert.deepEqual(temps(dir), [])
    const reopened = await Larder.open({ dir })
    assert.equal(await reopened.getStream('k'), undefined)
    await reopened.close()
  })
})

describe('temp files of bookkeeping writes', () => {
  test('a stray temp file in tags/ or meta/ (a writer killed mid-write) is removed by the next prune and verify once older than tempMaxAge; a fresh one is left', async () => {
    const dir = tempDir('larder-meta-temps')
    const cache = await Larder.open({ dir, maxEntries: 100, evictionPolicy: 'lfu', maintenance: { interval: 0, tempMaxAge: '1s' } })
    await cache.set('k', 1, { tags: ['t'] })
    await cache.invalidateTags(['u'])
    await cache.get('k')
    await cache.close()
    const ns = path.join(dir, 'v1', 'default')
    const old = new Date(Date.now() - 60_000)
    const strays = [
      'tags/0123456789abcdef.4242-1.tmp',
      'meta/budget.json.4242-2.tmp',
      'meta/totals/base.4242-3.tmp',
      'meta/activity/4242.x.json.4242-4.tmp',
      'meta/changes.4242-5.tmp',
      'meta/redis-owed/0123456789abcdef.json.4242-6.tmp', // what Redis missed, left at close
    ].map((f) => path.join(ns, f))
    for (const f of strays) {
      fs.mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 })
      fs.writeFileSync(f, 'half a write')
      fs.utimesSync(f, old, old)
    }
    const fresh = path.join(ns, 'meta', 'totals', 'base.4243-1.tmp')
    fs.writeFileSync(fresh, 'a live writer')
    const notOurs = path.join(ns, 'meta', 'notes.txt')
    fs.writeFileSync(notOurs, 'not a temp name')
    fs.utimesSync(notOurs, old, old)

    // A dead lock moved aside by a taker killed before it removed it (maintenance/lock.ts).
    const deadLock = path.join(ns, 'meta', 'maintenance.lock.4242-0a1b2c3d.dead')
    fs.mkdirSync(deadLock)
    fs.writeFileSync(path.join(deadLock, 'owner'), '{"pid":4242}')
    fs.utimesSync(deadLock, old, old)
    strays.push(deadLock)

    const janitor = await Larder.open({ dir, maintenance: { interval: 0, tempMaxAge: '1s' } })
    const pruned = await janitor.prune()
    await janitor.close()
    assert.deepEqual(
      strays.filter((f) => fs.existsSync(f)),
      [],
      'stray bookkeeping temps left after prune',
    )
    assert.ok(pruned.tempFilesRemoved >= strays.length, `counted ${pruned.tempFilesRemoved}`)
    assert.ok(fs.existsSync(fresh), 'a fresh temp (a live writer) was removed')
    assert.ok(fs.existsSync(notOurs), 'a file that is not a temp of ours was removed')
  })
})
