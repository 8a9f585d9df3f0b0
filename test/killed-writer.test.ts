/**
 * A writer process killed between its change (the rename of an entry into place, or its unlink)
 * and the change-log record written after it: other processes' memory tiers must still drop
 * the old value (the record written before the change told them), not serve it until the key
 * changes again. The child kills itself right after that syscall (test/children/killed-writer.ts),
 * so the moment is exact, not a race. And a change whose record cannot be written at all is
 * not made (a dropped write), rather than made unheard.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { Layout } from '../src/store/layout.ts'
import { startChild } from './children/harness.ts'
import { eventually } from './eventually.ts'
import { entryFiles, tempDir } from './helpers.ts'

/** Runs the child's change; resolves once it died of its own SIGKILL right after the syscall.
 *  `between`: run once the child has recorded its change and stopped just before making it. */
async function killedWhile(
  dir: string,
  op: 'set' | 'delete' | 'stream' | 'clear',
  key: string,
  value?: string,
  between?: () => Promise<void>,
): Promise<void> {
  const gate = between === undefined ? undefined : tempDir('gate')
  const pause = gate === undefined ? [] : [`--pause=${gate}`]
  const child = await startChild('killed-writer.ts', [...pause, dir, op, key, ...(value === undefined ? [] : [value])], false)
  if (gate !== undefined) {
    await eventually(() => fs.existsSync(path.join(gate, 'paused')), `the writer reached its ${op}'s syscall`, 20_000)
    await between!()
    fs.writeFileSync(path.join(gate, 'go'), '')
  }
  const exit = await child.exited
  assert.equal(exit.signal, 'SIGKILL', `the writer died right after its ${op}'s syscall (exit ${JSON.stringify(exit)})`)
}

/** What `cache` serves for `key` once it has looked at the change log (a hit looks every
 *  few ms), waiting up to 2 s for `expected`. */
async function servedAfterwards(cache: Larder, key: string, expected: unknown): Promise<unknown> {
  let served: unknown
  for (let i = 0; i < 200; i++) {
    served = await cache.get(key)
    if (isDeepStrictEqual(served, expected)) return served
    await sleep(10)
  }
  return served
}

describe('a writer killed right after its change', () => {
  for (const op of ['set', 'stream'] as const) {
    it(`${op}: another process's memory tier stops serving the old value`, async () => {
      const dir = tempDir()
      const reader = await Larder.open({ dir, memory: true })
      await reader.set('k', op === 'set' ? 'old' : Buffer.from('old'))
      assert.deepEqual(await reader.get('k'), op === 'set' ? 'old' : Buffer.from('old')) // held in memory
      await killedWhile(dir, op, 'k', 'new')
      const disk = await Larder.open({ dir, readOnly: true })
      const written = op === 'set' ? 'new' : Buffer.from('new') // a stream's get() is its bytes
      assert.deepEqual(await disk.get('k'), written, 'the change reached the disk')
      assert.deepEqual(await servedAfterwards(reader, 'k', written), written)
      await disk.close()
      await reader.close()
    })
  }

  it("delete: another process's memory tier stops serving the deleted value", async () => {
    const dir = tempDir()
    const reader = await Larder.open({ dir, memory: true })
    await reader.set('k', 'old')
    assert.equal(await reader.get('k'), 'old')
    await killedWhile(dir, 'delete', 'k')
    assert.equal(await servedAfterwards(reader, 'k', undefined), undefined)
    await reader.close()
  })
})

describe('a writer killed right after its change, whose record before it another process heard first', () => {
  // The reader hears the record written before the change, drops the key, and reads it again
  // from disk before the change lands: the old value. The record after the change never
  // comes. Held in memory, that old value was served until the key changed again.
  for (const op of ['set', 'stream', 'delete'] as const) {
    it(`${op}: the old value read between the two records is served, not held`, async () => {
      const dir = tempDir()
      const reader = await Larder.open({ dir, memory: true })
      const old = op === 'stream' ? Buffer.from('old') : 'old'
      const written = op === 'set' ? 'new' : op === 'stream' ? Buffer.from('new') : undefined
      await reader.set('k', old)
      assert.deepEqual(await reader.get('k'), old)
      await killedWhile(dir, op, 'k', op === 'delete' ? undefined : 'new', async () => {
        for (let i = 0; i < 3; i++) {
          await sleep(20) // a look at the change log is due: it finds the record before the change
          assert.deepEqual(await reader.get('k'), old, 'the change has not landed yet')
        }
      })
      assert.deepEqual(await servedAfterwards(reader, 'k', written), written)
      // Once the change can no longer be in progress, the key is held again.
      await sleep(1200)
      assert.deepEqual(await reader.get('k'), written)
      if (written !== undefined) {
        const before = (await reader.stats()).memoryHits
        await eventually(async () => {
          assert.deepEqual(await reader.get('k'), written)
          return (await reader.stats()).memoryHits > before
        }, 'the key is promoted into memory again')
      }
      await reader.close()
    })
  }
})

describe('a writer that goes on after its change, whose record before it a reader heard first', () => {
  it('lets the key be held again as soon as its record after is read, by a reader whose reads all miss', async () => {
    const dir = tempDir()
    const reader = await Larder.open({ dir, memory: true })
    await reader.set('other', 'v') // held: its hits are what look at the change log
    await reader.set('k', 'old')
    const gate = tempDir('gate')
    const child = await startChild('killed-writer.ts', [`--pause=${gate}`, '--survive', dir, 'set', 'k', 'new'], false)
    await eventually(() => fs.existsSync(path.join(gate, 'paused')), "the writer reached its set's rename", 20_000)
    await sleep(20)
    await reader.get('other') // a look: the record before the change
    assert.equal(await reader.get('k'), 'old', 'read from disk, not held')
    fs.writeFileSync(path.join(gate, 'go'), '')
    assert.deepEqual(await child.exited, { code: 0, signal: null })
    // Only misses from here: the record after is read by the promotion that asks, not at the
    // next hit or a second later.
    const before = (await reader.stats()).memoryHits
    for (let i = 0; i < 4; i++) {
      await sleep(10)
      assert.equal(await reader.get('k'), 'new')
    }
    assert.ok((await reader.stats()).memoryHits > before, 'held again')
    await reader.close()
  })
})

describe('a clear killed part way', () => {
  /** The entry files the namespace holds (not a clear's trash), and their bytes. */
  const live = (dir: string): { entries: number; bytes: number } => {
    // (a prune may remove a file between the listing and its stat)
    const sizes = entryFiles(dir)
      .filter((file) => !file.includes(`${path.sep}.trash-`))
      .flatMap((file) => fs.statSync(file, { throwIfNoEntry: false })?.size ?? [])
    return { entries: sizes.length, bytes: sizes.reduce((sum, size) => sum + size, 0) }
  }

  it('leaves the entries it did not move counted again by the next instance, and the budget kept', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir, maintenance: false })
    for (let i = 0; i < 400; i++) await writer.set(`k${i}`, 'v'.repeat(1000))
    await writer.close()
    // The clear zeroes the totals, moves one partition of 256 into its trash, and dies.
    await killedWhile(dir, 'clear', '-')
    const left = live(dir)
    assert.ok(left.entries > 300, `most entries were not moved (${left.entries} left)`)
    const maxSize = Math.floor(left.bytes / 4)
    const next = await Larder.open({ dir, maxSize })
    await eventually(async () => {
      const { entries, size } = await next.stats()
      const now = live(dir)
      return entries === now.entries && size === now.bytes && now.bytes <= maxSize
    }, 'the totals count what is on disk again, and the budget is kept')
    await next.close()
  })

  it('is noticed by an instance already open at its next write', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir, maintenance: false })
    for (let i = 0; i < 400; i++) await writer.set(`k${i}`, 'v'.repeat(1000))
    await writer.close()
    const maxSize = 100_000
    const open = await Larder.open({ dir, maxSize })
    await killedWhile(dir, 'clear', '-')
    await open.set('after', 'v')
    await eventually(async () => {
      const { entries, size } = await open.stats()
      const now = live(dir)
      return entries === now.entries && size === now.bytes && now.bytes <= maxSize
    }, 'the totals count what is on disk again, and the budget is kept')
    await open.close()
  })
})

/** Runs `body` while the change log can be neither written nor removed (EROFS). */
async function withUnwritableLog(body: () => Promise<void>): Promise<void> {
  const readOnlyFs = (): never => {
    throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' })
  }
  const isLog = (file: string): boolean => file.endsWith(`${path.sep}meta${path.sep}changes`)
  const { writeSync, unlinkSync } = disk
  disk.writeSync = (fd, ...rest) => (isLog(fs.readlinkSync(`/proc/self/fd/${fd}`)) ? readOnlyFs() : writeSync(fd, ...rest))
  disk.unlinkSync = (file) => (isLog(String(file)) ? readOnlyFs() : unlinkSync(file))
  try {
    await body()
  } finally {
    disk.writeSync = writeSync
    disk.unlinkSync = unlinkSync
  }
}

describe('a change whose record cannot be written (the log neither appended to nor removable)', () => {
  it('is not made: counted as a dropped write, and every process goes on reading the old value', async () => {
    const dir = tempDir()
    const reader = await Larder.open({ dir, memory: true })
    const writer = await Larder.open({ dir })
    await writer.set('k', 'old')
    assert.equal(await reader.get('k'), 'old') // held in memory
    await withUnwritableLog(async () => {
      await writer.set('k', 'new') // fail-open: resolves
      assert.equal((await writer.stats()).dropped, 1, 'counted as a dropped write')
    })
    const fresh = await Larder.open({ dir, readOnly: true })
    assert.equal(await fresh.get('k'), 'old', 'the entry was not replaced without its signal')
    assert.equal(await servedAfterwards(reader, 'k', 'old'), 'old')
    await Promise.all([fresh.close(), writer.close(), reader.close()])
  })
})

describe('writes in flight together (their records go to the log in one append)', () => {
  it('each renames only once the record before it is in the log', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const layout = new Layout(dir, '') // the default namespace
    const log = path.join(layout.metaDir, 'changes')
    const keys = Array.from({ length: 12 }, (_, i) => `in-flight:${i}`)
    const keyOf = new Map(keys.map((key) => [layout.entryPath(layout.hashKey(key)), key]))
    const renamed: string[] = []
    const unannounced: string[] = []
    const { renameSync } = disk
    disk.renameSync = (temp, file) => {
      const key = keyOf.get(String(file))
      if (key !== undefined) {
        renamed.push(key)
        if (!fs.readFileSync(log).includes(Buffer.from(key, 'utf16le'))) unannounced.push(key)
      }
      renameSync(temp, file)
    }
    try {
      await Promise.all(keys.map((key) => cache.set(key, key)))
    } finally {
      disk.renameSync = renameSync
    }
    assert.equal(renamed.length, keys.length)
    assert.deepEqual(unannounced, [])
    for (const key of keys) assert.equal(await cache.get(key), key)
    await cache.close()
  })

  it('whose records cannot be written: none is made, each counted as dropped, no temp file left', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir })
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`)
    await Promise.all(keys.map((key) => writer.set(key, 'old')))
    await withUnwritableLog(async () => {
      await Promise.all(keys.map((key) => writer.set(key, 'new'))) // fail-open: resolves
      assert.equal((await writer.stats()).dropped, keys.length, 'each counted as a dropped write')
    })
    const fresh = await Larder.open({ dir, readOnly: true })
    for (const key of keys) assert.equal(await fresh.get(key), 'old', `${key} was not replaced without its signal`)
    const temps = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((name) => name.endsWith('.tmp'))
    assert.deepEqual(temps, [])
    await Promise.all([fresh.close(), writer.close()])
  })
})

describe('a prune by filter (its workers remove the entries)', () => {
  it('records the change before its workers remove anything, not only after', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.set('user:1', 'v')
    const files = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((name) => /[0-9a-f]{2}[/\\][0-9a-f]{16}$/.test(name))
    assert.equal(files.length, 1)
    const file = path.join(dir, files[0]!)
    const isLog = (fd: number): boolean => fs.readlinkSync(`/proc/self/fd/${fd}`).endsWith(`${path.sep}meta${path.sep}changes`)
    const entryThereAtEachRecord: boolean[] = []
    const { writeSync } = disk
    disk.writeSync = (fd, ...rest) => {
      if (isLog(fd)) entryThereAtEachRecord.push(fs.existsSync(file))
      return writeSync(fd, ...rest)
    }
    try {
      assert.equal((await cache.prune({ pattern: 'user:*' })).matched, 1)
    } finally {
      disk.writeSync = writeSync
    }
    assert.equal(fs.existsSync(file), false, 'removed')
    assert.deepEqual(entryThereAtEachRecord, [true, false], 'a record while the entry was still there, and one after')
    await cache.close()
  })
})
