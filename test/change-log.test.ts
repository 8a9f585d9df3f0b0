/**
 * The change log (store/change-clock.ts) names the key of every write, so a memory tier drops
 * what other processes changed and keeps the rest: with several processes writing one
 * directory, a hot value stays a memory hit until its own key is written. Everything is read
 * again when the log cannot say which keys: a clear, a key too long to record, bytes that do
 * not parse (an older larder's one-byte records, a torn append), a log removed or replaced, or
 * more than 64 KiB of records since the last look. A reader never blocks on, nor reads through,
 * what is planted at the log's name.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { Layout } from '../src/store/layout.ts'
import { ChangeWatch } from '../src/store/change-watch.ts'
import { ChangeClock, EVERYTHING } from '../src/store/change-clock.ts'
import { check32, loadHasher } from '../src/format/checksum.ts'
import { Child, startChild } from './children/harness.ts'
import { tempDir } from './helpers.ts'

/** Comfortably past the memory tier's 5 ms between looks at the log. */
const PAST_THE_BOUND = 50

const logOf = (dir: string): string => path.join(new Layout(dir, '').metaDir, 'changes')

/** A key record as another writer appends it: 'k', its id, the key's length in UTF-16 units,
 *  the key in UTF-16LE, and the xxhash32 of what follows the kind (`check`: that, unless given). */
function keyRecord(id: Buffer, keyBytes: Buffer, check?: number): Buffer {
  const body = Buffer.concat([id, Buffer.from([(keyBytes.length / 2) & 0xff, (keyBytes.length / 2) >> 8]), keyBytes])
  const tail = Buffer.alloc(4)
  tail.writeUInt32LE(check ?? check32(body))
  return Buffer.concat([Buffer.from([0x6b]), body, tail])
}

interface Counts {
  memoryHits: number
  hits: number
}

const children: Child[] = []
after(async () => {
  await Promise.all(children.map((c) => c.kill()))
})
const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))

describe('the change log names the keys other writers changed', () => {
  before(() => loadHasher())
  test("another process's set and delete drop only their keys from this process's memory tier", { timeout: 30_000 }, async () => {
    const dir = tempDir()
    const b = await Larder.open({ dir, maintenance: false })
    for (let i = 0; i < 20; i++) await b.set(`k${i}`, { v: 1, i })
    const a = await startChild('peer.ts')
    children.push(a)
    const ha = await a.call<number>('open', { options: { dir, memory: true, maintenance: false } })
    const get = async (key: string): Promise<unknown> => (await a.call<{ value: unknown }>('get', { h: ha, key })).value
    for (let i = 0; i < 20; i++) assert.deepEqual(await get(`k${i}`), { v: 1, i }) // read from disk, held in memory
    const before = await a.call<Counts>('stats', { h: ha })

    await b.set('k3', { v: 2, i: 3 })
    await b.delete('k7')
    await delay(PAST_THE_BOUND)
    for (let i = 0; i < 20; i++) assert.deepEqual(await get(`k${i}`), i === 7 ? undefined : { v: i === 3 ? 2 : 1, i }, `k${i}`)

    const now = await a.call<Counts>('stats', { h: ha })
    assert.equal(now.memoryHits - before.memoryHits, 18, 'the 18 keys B did not write were memory hits')
    assert.equal(now.hits - now.memoryHits - (before.hits - before.memoryHits), 1, 'k3 alone was read from disk')
    await b.close()
    await a.shutdown()
  })

  test('keys are recorded exactly: non-ASCII, astral, and the longest key there is (8 KiB)', { timeout: 30_000 }, async () => {
    const dir = tempDir()
    const b = await Larder.open({ dir, maintenance: false })
    const keys = ['😀x', '😁x', 'é', 'e\u0301', 'z'.repeat(8192), 'z'.repeat(8191)]
    for (const key of keys) await b.set(key, 1)
    const a = await Larder.open({ dir, memory: true, maintenance: false }) // opened after: no news
    for (const key of keys) assert.equal(await a.get(key), 1)
    for (const key of [keys[0]!, keys[3]!, keys[4]!]) await b.set(key, 2)
    await delay(PAST_THE_BOUND)
    const before = await a.stats()
    for (const key of keys) assert.equal(await a.get(key), [keys[0], keys[3], keys[4]].includes(key) ? 2 : 1, JSON.stringify(key))
    const now = await a.stats()
    // 'é' and 'e' + a combining accent are different keys; so are two emoji that differ in
    // the low surrogate alone.
    assert.equal(now.memoryHits - before.memoryHits, 3, 'the three keys not written stayed in memory')
    await a.close()
    await b.close()
  })

  test('opening an instance reads none of the log: what came before is not news', { timeout: 30_000 }, async () => {
    const dir = tempDir()
    const b = await Larder.open({ dir, maintenance: false })
    for (let i = 0; i < 500; i++) await b.set(`key-${i}`, i)
    const log = logOf(dir)
    let opened = 0
    disk.openSync = (file, flags, mode) => {
      if (file === log) opened++
      return realDisk.openSync(file, flags, mode)
    }
    const a = await Larder.open({ dir, memory: true, maintenance: false })
    for (let i = 0; i < 5; i++) assert.equal(await a.get(`key-${i}`), i)
    await delay(PAST_THE_BOUND)
    for (let i = 0; i < 5; i++) assert.equal(await a.get(`key-${i}`), i)
    assert.equal(opened, 0, 'the log was never opened: one stat at open, one at each look')
    const stats = await a.stats()
    assert.equal(stats.memoryHits, 5)
    await a.close()
    await b.close()
  })

  // A read of an entry over 64 KiB goes through the thread pool, so other calls (and a look
  // at the log) run while it is in flight. Its open is held at a gate here until the look.
  for (const named of [false, true]) {
    test(
      named
        ? 'a read in flight when a look names its key: its value is not held (it may be what the write replaced)'
        : 'a read in flight when a look names other keys: its value is held all the same',
      { timeout: 30_000 },
      async () => {
        const dir = tempDir()
        const a = await Larder.open({ dir, memory: true, maintenance: false })
        const b = await Larder.open({ dir, maintenance: false })
        const big = (): string => crypto.randomBytes(150_000).toString('base64') // ~150 KiB stored
        const first = big()
        await b.set('big', first)
        await b.set('small', 1)
        await delay(PAST_THE_BOUND)
        assert.equal(await a.get('small'), 1) // a look hears b's writes so far; then read and held
        assert.equal(await a.get('small'), 1)

        let reachedGate!: () => void
        const reached = new Promise<void>((resolve) => (reachedGate = resolve))
        let openGate!: () => void
        const gate = new Promise<void>((resolve) => (openGate = resolve))
        let held = false
        disk.open = async (...args: Parameters<typeof realDisk.open>) => {
          if (!held) {
            held = true
            reachedGate()
            await gate
          }
          return realDisk.open(...args)
        }
        const reading = a.get('big')
        await reached // in flight: its ticket is taken
        const second = big()
        if (named) await b.set('big', second)
        else await b.set('other', 2)
        await delay(PAST_THE_BOUND)
        const before = await a.stats()
        assert.equal(await a.get('small'), 1) // a hit, and the look that names b's write
        assert.equal((await a.stats()).memoryHits - before.memoryHits, 1, 'small stayed in memory')
        openGate()
        assert.equal(await reading, named ? second : first)

        const then = await a.stats()
        assert.equal(await a.get('big'), named ? second : first)
        const now = await a.stats()
        assert.equal(now.memoryHits - then.memoryHits, named ? 0 : 1, named ? 'read again from disk' : 'held, a memory hit')
        await a.close()
        await b.close()
      },
    )
  }

  const everything: Record<string, (b: Larder, log: string) => Promise<unknown> | void> = {
    'a clear': (b) => b.clear(),
    "an older larder's one-byte record": (_b, log) => fs.appendFileSync(log, '.'),
    'a torn record': (_b, log) => fs.appendFileSync(log, Buffer.from([0x6b, 1, 2, 3])),
    'a record that does not check out': (_b, log) => fs.appendFileSync(log, keyRecord(Buffer.alloc(8, 7), Buffer.from('k1', 'utf16le'), 1)),
    'a record of unknown kind': (_b, log) => fs.appendFileSync(log, Buffer.alloc(20, 0x51)),
    'the log removed': (_b, log) => fs.unlinkSync(log),
    'the log removed, and a new one written': async (b, log) => {
      fs.unlinkSync(log)
      await b.set('other', 1)
    },
    'more than 64 KiB of records since the last look': async (b) => {
      for (let i = 0; i < 800; i++) await b.set(`${'other'.repeat(8)}-${i}`, i) // ~90 bytes a record
    },
  }
  for (const [name, change] of Object.entries(everything)) {
    test(`${name}: every held value is read again`, { timeout: 30_000 }, async () => {
      const dir = tempDir()
      const a = await Larder.open({ dir, memory: true, maintenance: false })
      const b = await Larder.open({ dir, maintenance: false })
      for (let i = 0; i < 10; i++) await b.set(`k${i}`, i)
      for (let i = 0; i < 10; i++) assert.equal(await a.get(`k${i}`), i)
      await delay(PAST_THE_BOUND)
      assert.equal(await a.get('k0'), 0) // a look: what came before is heard
      const before = await a.stats()
      await change(b, logOf(dir))
      await delay(PAST_THE_BOUND)
      const cleared = name === 'a clear'
      for (let i = 0; i < 10; i++) assert.equal(await a.get(`k${i}`), cleared ? undefined : i)
      const now = await a.stats()
      assert.equal(now.memoryHits - before.memoryHits, 0, 'no value was served from memory')
      if (!cleared) assert.equal(now.hits - before.hits, 10, 'every value read again from disk')
      await a.close()
      await b.close()
    })
  }

  // A look can find the log's size in the middle of another writer's append (the kernel grows
  // it page by page while the write copies; a stat does not wait). That look reads a torn
  // record, and the next one begins inside it: made here by appending a record in two parts,
  // with a look between. The record's key is crafted so that its tail, read from where the
  // second part begins, is laid out as a record naming k5 (whose last 4 bytes are the real
  // record's check): without the check, that look would drop k5 alone and keep serving the
  // other keys, whatever the record was about.
  test(
    'a look that begins inside a record (the last one saw it half appended) reads everything, never keys made up from its bytes',
    { timeout: 30_000 },
    async () => {
      const dir = tempDir()
      const a = await Larder.open({ dir, memory: true, maintenance: false })
      const b = await Larder.open({ dir, maintenance: false })
      const keys = Array.from({ length: 10 }, (_, i) => `k${i}`)
      for (const key of keys) await b.set(key, 1)
      /** Every key read (once after a look, then held); then how many of the next gets were memory hits. */
      const memoryHitsAfterALook = async (values: Record<string, number> = {}): Promise<number> => {
        await delay(PAST_THE_BOUND)
        const before = await a.stats()
        for (const key of keys) assert.equal(await a.get(key), values[key] ?? 1, key)
        const hits = (await a.stats()).memoryHits - before.memoryHits
        for (const key of keys) assert.equal(await a.get(key), values[key] ?? 1, key)
        return hits
      }
      await memoryHitsAfterALook() // b's sets heard, then read

      const embedded = Buffer.concat([Buffer.from([0x6b]), Buffer.alloc(8, 6), Buffer.from([2, 0]), Buffer.from('k5', 'utf16le')])
      const keyBytes = Buffer.concat([Buffer.from([0x61]), embedded]) // 16 bytes: 8 UTF-16 units
      const record = keyRecord(Buffer.alloc(8, 5), keyBytes)
      const split = 1 + 8 + 2 + 1 // where `embedded` begins
      const log = logOf(dir)
      fs.appendFileSync(log, record.subarray(0, split))
      assert.equal(await memoryHitsAfterALook(), 0, 'a torn record: everything')
      fs.appendFileSync(log, record.subarray(split))
      assert.equal(await memoryHitsAfterALook(), 0, 'read from inside a record: everything, not k5 alone')

      await b.set('k3', 2)
      assert.equal(await memoryHitsAfterALook({ k3: 2 }), 9, 'the next records are read in step again: k3 alone')
      await a.close()
      await b.close()
    },
  )

  const planted: Record<string, (log: string, outside: string) => void> = {
    FIFO: (log) => execFileSync('mkfifo', [log]),
    'symlink to a file outside the cache': (log, outside) => fs.symlinkSync(outside, log),
  }
  for (const [name, plant] of Object.entries(planted)) {
    test(
      `a ${name} at the log's name: a reader neither blocks nor reads through it, and re-reads everything`,
      { timeout: 30_000 },
      async () => {
        const base = tempDir()
        const dir = path.join(base, 'cache')
        const outside = path.join(base, 'outside')
        // Parses as records naming k1..k9 (but not k0), were it read.
        const records = Buffer.concat(
          Array.from({ length: 9 }, (_, i) => keyRecord(Buffer.alloc(8, 9), Buffer.from(`k${i + 1}`, 'utf16le'))),
        )
        fs.writeFileSync(outside, records)
        const a = await Larder.open({ dir, memory: true, maintenance: false })
        for (let i = 0; i < 10; i++) await a.set(`k${i}`, i)
        const log = logOf(dir)
        fs.unlinkSync(log)
        await delay(PAST_THE_BOUND)
        for (let i = 0; i < 10; i++) assert.equal(await a.get(`k${i}`), i) // the removal heard; read again
        for (let i = 0; i < 10; i++) assert.equal(await a.get(`k${i}`), i) // held again
        plant(log, outside)
        await delay(PAST_THE_BOUND)
        const before = await a.stats()
        for (let i = 0; i < 10; i++) assert.equal(await a.get(`k${i}`), i)
        const now = await a.stats()
        assert.equal(now.memoryHits - before.memoryHits, 0, 'every value read again (k0 too: nothing was parsed)')
        assert.deepEqual(fs.readFileSync(outside), records, 'the file outside is untouched')
        await a.close()
      },
    )
  }
})

/** A namespace's layout with its meta/ made and nothing else, for ChangeClocks made by hand. */
async function bareLog(): Promise<Layout> {
  await loadHasher()
  const dir = tempDir()
  fs.mkdirSync(path.join(dir, 'v1', 'default', 'meta'), { recursive: true })
  return new Layout(dir, 'default')
}

describe('the records before and after a change', () => {
  test('are told apart, by writer: a reader learns which changes are begun and not yet ended', async () => {
    const layout = await bareLog()
    const reader = new ChangeClock(layout)
    const [one, two] = [new ChangeClock(layout), new ChangeClock(layout)]
    const told: string[] = []
    const writers = new Map<string, string>()
    const name = (writer: string): string => {
      if (!writers.has(writer)) writers.set(writer, `w${writers.size + 1}`)
      return writers.get(writer)!
    }
    const progress = {
      begun: (writer: string, key: string | undefined) => told.push(`${name(writer)} begun ${key ?? '*'}`),
      ended: (writer: string, key: string | undefined) => told.push(`${name(writer)} ended ${key ?? '*'}`),
    }
    one.announce('a')
    two.announce('a')
    reader.announce('mine')
    assert.deepEqual(reader.changesElsewhere(progress), new Set(['a']))
    one.bump('a')
    one.announce()
    reader.bump('mine')
    assert.equal(reader.changesElsewhere(progress), EVERYTHING)
    two.bump('a')
    one.bump()
    reader.changesElsewhere(progress)
    assert.deepEqual(told, ['w1 begun a', 'w2 begun a', 'w1 ended a', 'w1 begun *', 'w2 ended a', 'w1 ended *'])
    for (const clock of [reader, one, two]) clock.close()
  })
})

describe('the records after changes in flight (bumpSoon)', () => {
  test('go out together at the end of the turn, before any record a later announce makes, and resolve once written', async () => {
    const layout = await bareLog()
    const log = path.join(layout.metaDir, 'changes')
    const reader = new ChangeClock(layout)
    const writer = new ChangeClock(layout)
    const told: string[] = []
    const progress = {
      begun: (_: string, key: string | undefined) => told.push(`begun ${key ?? '*'}`),
      ended: (_: string, key: string | undefined) => told.push(`ended ${key ?? '*'}`),
    }
    for (const key of ['a', 'b', 'c']) writer.announce(key)
    const sizeBefore = fs.statSync(log).size
    let resolved = 0
    const ends = ['a', 'b'].map((key) => writer.bumpSoon(key).then(() => resolved++))
    assert.equal(fs.statSync(log).size, sizeBefore, 'nothing written yet: the records wait for the end of the turn')
    // A change begun now: the ends held are written first, in its write
    writer.announce('a')
    const afterAnnounce = fs.statSync(log).size
    assert.ok(afterAnnounce > sizeBefore)
    assert.equal(resolved, 0, 'resolved at the end of the turn, not before')
    const third = writer.bumpSoon('c').then(() => resolved++)
    await Promise.all([...ends, third])
    assert.equal(resolved, 3)
    reader.changesElsewhere(progress)
    assert.deepEqual(told, ['begun a', 'begun b', 'begun c', 'ended a', 'ended b', 'begun a', 'ended c'])
    // One write for the ends of a turn: three records after, of the same length, one append
    const writeSync = disk.writeSync
    let appends = 0
    disk.writeSync = (...args) => (appends++, writeSync(...args))
    try {
      await Promise.all(['x', 'y', 'z'].map((key) => writer.bumpSoon(key)))
    } finally {
      disk.writeSync = writeSync
    }
    assert.equal(appends, 1)
    // close() writes what is held, and a bumpSoon after close writes at once
    void writer.bumpSoon('w')
    writer.close()
    const closedAt = fs.statSync(log).size
    await writer.bumpSoon('v')
    assert.ok(fs.statSync(log).size > closedAt)
    told.length = 0
    reader.changesElsewhere(progress)
    assert.deepEqual(told, ['ended x', 'ended y', 'ended z', 'ended w', 'ended v'])
    reader.close()
  })

  test('sets in flight on one instance: each resolves with its record after in the log, so another instance holds what it reads then', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir })
    const reader = await Larder.open({ dir, memory: true })
    try {
      const keys = Array.from({ length: 16 }, (_, i) => `k${i}`)
      await Promise.all(keys.map((key) => writer.set(key, { key })))
      await delay(PAST_THE_BOUND)
      // The first read holds the value, the look at the log the second makes drops it (the
      // writer's records name it) and reads it once more; from then on it is held
      for (let round = 0; round < 2; round++) for (const key of keys) assert.deepEqual(await reader.get(key), { key })
      const before = (await reader.stats()).tiers.memory!.hits
      for (const key of keys) assert.deepEqual(await reader.get(key), { key })
      assert.equal(
        (await reader.stats()).tiers.memory!.hits - before,
        keys.length,
        'every second read a memory hit: no change was left begun',
      )
    } finally {
      await writer.close()
      await reader.close()
    }
  })
})

describe('a log made again under the inode number of the one it replaced', () => {
  test('is not taken for the old log grown: the changes before the old size are not skipped (ext4 gives a freed inode number out again at once)', async () => {
    const layout = await bareLog()
    const reader = new ChangeClock(layout)
    for (let round = 0; round < 20; round++) {
      // The old log: 10 records, all seen by the reader.
      const first = new ChangeClock(layout)
      for (let i = 0; i < 10; i++) first.bump(`old${i}`)
      first.close()
      reader.changesElsewhere()
      const log = path.join(layout.metaDir, 'changes')
      // A rotated log lived long enough to grow to 4 MiB: made in another tick of the file
      // system's clock (a coarse one: a few ms) than the log that replaces it.
      await delay(15)
      // Rotated away (as an appender past 4 MiB does), and made again by another writer with
      // records of the same length, a few more than before: the new log is longer than the
      // old one, and its record boundaries fall where the old one's did.
      fs.unlinkSync(log)
      const second = new ChangeClock(layout)
      for (let i = 0; i < 12; i++) second.bump(`new${i}`)
      second.close()
      const seen = reader.changesElsewhere()
      assert.ok(
        seen === EVERYTHING || (seen !== undefined && ['new0', 'new9', 'new11'].every((k) => seen.has(k))),
        `round ${round}: the new log's first changes were missed (${seen === undefined || seen === EVERYTHING ? 'none' : [...seen].join(',')})`,
      )
      fs.unlinkSync(log)
      reader.changesElsewhere()
    }
    reader.close()
  })
})

describe('ChangeWatch: what a getOrSet load asks of the log before it stores', () => {
  before(() => loadHasher())
  test('names the keys written since a mark, by any writer; a clear or a removed log counts as a change of every key', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir, maintenance: false, memory: false })
    await writer.set('before', 1) // the log exists
    const watch = new ChangeWatch(new Layout(dir, ''))
    const mark = watch.mark()
    const mark2 = watch.mark()
    const other = watch.mark() // kept open: the watch remembers for it
    assert.equal(await watch.changedSince(watch.mark(), 'k'), false, 'nothing written since')
    await writer.set('k', 1)
    await writer.set('other', 1)
    assert.equal(await watch.changedSince(mark, 'k'), true)
    assert.equal(await watch.changedSince(mark2, 'unwritten'), false)
    assert.equal(await watch.changedSince(watch.mark(), 'k'), false, 'a later mark does not see it')
    const beforeClear = watch.mark()
    await writer.clear()
    assert.equal(await watch.changedSince(beforeClear, 'unwritten'), true, 'a clear changes every key')
    const beforeRemoval = watch.mark()
    fs.rmSync(logOf(dir), { force: true }) // short of the rotation size: not a rotation
    assert.equal(await watch.changedSince(beforeRemoval, 'unwritten'), true, 'a log removed counts as a change')
    const noLog = watch.mark()
    await writer.set('k', 2)
    assert.equal(await watch.changedSince(noLog, 'k'), true, 'a log made since is read from its start')
    assert.equal(await watch.changedSince(undefined, 'k'), true, 'a mark that could not be taken counts as a change')
    assert.equal(await watch.changedSince(other, 'unwritten'), true, 'the clear and the removal were after it')
    watch.close()
    await writer.close()
  })

  test('a rotation loses nothing: the old log is read to its end, the new one from its start', async () => {
    const dir = tempDir()
    const layout = new Layout(dir, '')
    fs.mkdirSync(layout.metaDir, { recursive: true })
    const log = logOf(dir)
    const id = crypto.randomBytes(8)
    const record = (key: string): Buffer => keyRecord(id, Buffer.from(key, 'utf16le'))
    const filler = Buffer.concat(Array.from({ length: 300 }, (_, i) => record(`f${i}`.padEnd(8000, '.'))))
    fs.writeFileSync(log, filler) // ~4.8 MiB: past the rotation size
    const watch = new ChangeWatch(layout)
    const mark = watch.mark() // one question per mark, as each load asks once
    const mark2 = watch.mark()
    fs.appendFileSync(log, record('in-old-tail'))
    fs.rmSync(log) // the rotation: removed past 4 MiB, then made again by the next write
    fs.writeFileSync(log, record('in-new-log'))
    assert.equal(await watch.changedSince(watch.mark(), 'x'), false, 'after the rotation, a fresh mark sees nothing')
    assert.equal(await watch.changedSince(mark, 'in-old-tail'), true, 'the old log was read to its end')
    const again = watch.mark()
    assert.equal(await watch.changedSince(mark2, 'in-new-log'), true, 'the new log was read from its start')
    assert.equal(await watch.changedSince(again, 'unwritten'), false, 'a rotation is not a change of every key')
    watch.close()
  })

  test('an instance that writes only a few entries still removes a log past the rotation size (short-lived writers)', async () => {
    const dir = tempDir()
    const layout = new Layout(dir, '')
    fs.mkdirSync(layout.metaDir, { recursive: true })
    const log = logOf(dir)
    const record = keyRecord(crypto.randomBytes(8), Buffer.from('f'.padEnd(8000, '.'), 'utf16le'))
    fs.writeFileSync(log, Buffer.concat(Array.from({ length: 300 }, () => record))) // ~4.8 MiB
    const cache = await Larder.open({ dir, maintenance: false })
    try {
      await cache.set('one', 1)
      assert.ok(fs.statSync(log).size < 64 * 1024, `the log is ${fs.statSync(log).size} bytes`)
    } finally {
      await cache.close()
    }
  })

  test('many loads in flight: each question reads only what is new (one cursor), and all are answered right', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir, maintenance: false, memory: false })
    await writer.set('start', 1)
    const watch = new ChangeWatch(new Layout(dir, ''))
    const reads: number[] = []
    const realRead = disk.readFd
    disk.readFd = (fd, buffer, offset, length, position) => {
      reads.push(length)
      return realRead(fd, buffer, offset, length, position)
    }
    const marks = []
    for (let i = 0; i < 500; i++) {
      marks.push(watch.mark())
      await writer.set(`k${i}`, i)
    }
    for (let i = 0; i < 500; i++) assert.equal(await watch.changedSince(marks[i], `k${i}`), true, `k${i} was set after its mark`)
    assert.equal(await watch.changedSince(marks[499], 'k0'), false, 'k0 was set before the last mark')
    const logBytes = fs.statSync(logOf(dir)).size
    const read = reads.reduce((a, b) => a + b, 0)
    assert.ok(read <= logBytes, `read ${read} bytes of a ${logBytes}-byte log for 501 questions`)
    watch.close()
    await writer.close()
  })
})

describe('a prune that removes entries by filter reaches every memory tier', () => {
  before(() => loadHasher())
  test(
    "prune by pattern, tag or age: neither this process's memory tier nor another's serves what it removed",
    { timeout: 30_000 },
    async () => {
      const dir = tempDir()
      const b = await Larder.open({ dir, maintenance: false, memory: true })
      const keys = ['user:1', 'user:2', 'post:1', 'post:2', 'old']
      for (const key of keys) await b.set(key, key, { tags: key === 'post:1' ? ['posts'] : [] })
      const a = await startChild('peer.ts')
      children.push(a)
      const ha = await a.call<number>('open', { options: { dir, memory: true, maintenance: false } })
      const everywhere = async (): Promise<Record<string, unknown>> => {
        await delay(PAST_THE_BOUND)
        const seen: Record<string, unknown> = {}
        for (const key of keys) {
          const here = await b.get(key)
          const there = (await a.call<{ value: unknown }>('get', { h: ha, key })).value
          assert.equal(there, here, `${key}: this process and the other agree`)
          if (here !== undefined) seen[key] = here
        }
        return seen
      }
      assert.equal(Object.keys(await everywhere()).length, 5) // held in both memory tiers
      assert.equal((await b.prune({ pattern: 'user:*' })).matched, 2)
      assert.deepEqual(Object.keys(await everywhere()), ['post:1', 'post:2', 'old'])
      assert.equal((await b.prune({ tags: ['posts'] })).matched, 1)
      assert.deepEqual(Object.keys(await everywhere()), ['post:2', 'old'])
      await delay(600)
      await b.set('post:2', 'post:2') // newer than the cut below (with room for a loaded machine's stalls)
      assert.equal((await b.prune({ maxAge: 400 })).matched, 1)
      assert.deepEqual(Object.keys(await everywhere()), ['post:2'])
      const dry = await b.prune({ pattern: '*', dryRun: true })
      assert.deepEqual(dry.keys, ['post:2'])
      assert.deepEqual(Object.keys(await everywhere()), ['post:2'], 'a dry run removes nothing anywhere')
      await b.close()
      await a.shutdown()
    },
  )
})
