/**
 * Two edges of the budget (maxSize) where one write decided the outcome:
 * - an entry larger than the budget by itself used to empty the namespace: the prune evicted
 *   every other entry first (by policy, the new entry being the most recent) and it last;
 * - a write that took the cache over budget just after the running totals were read (a
 *   `stats()`, say), after a quiet spell, started no prune: its change was flushed at once and
 *   the estimate then counted neither the file nor the pending change.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Larder, type PruneReport } from '../src/index.ts'
import { chooseVictims, RECORD_FIELDS } from '../src/maintenance/policy.ts'
import { entryFiles, runChildScript, tempDir } from './helpers.ts'

const KB = 1024

describe('an entry larger than the budget by itself', () => {
  it('is evicted alone, under every policy: the entries that fit stay', () => {
    // Ten 10-byte entries, then one of 500 bytes, the newest, most used and last created.
    const sizes = [...Array.from({ length: 10 }, () => 10), 500]
    const records = new Float64Array(sizes.length * RECORD_FIELDS)
    sizes.forEach((size, i) => records.set([size, i, i, i], i * RECORD_FIELDS))
    const names = sizes.map((_, i) => String(i).padStart(16, '0')).join('')
    const hits = new Map([[String(10).padStart(16, '0'), 1000]])
    for (const policy of ['lru', 'lfu', 'fifo', 'random'] as const) {
      const input = { policy, hitsDir: '', records, names, now: 0, halfLife: 1, targetEntries: Infinity, targetBytes: 450 }
      const plan = chooseVictims(input, hits)
      assert.equal(plan.names, String(10).padStart(16, '0'), `${policy}: only the entry that cannot fit`)
      assert.equal(plan.remainingBytes, 100, policy)
    }
  })

  it('an entry over the target goes first, then the policy picks among the rest as before', () => {
    const sizes = [100, 100, 100, 300]
    const records = new Float64Array(sizes.length * RECORD_FIELDS)
    sizes.forEach((size, i) => records.set([size, i, i, i], i * RECORD_FIELDS))
    const names = sizes.map((_, i) => String(i).padStart(16, '0')).join('')
    const plan = chooseVictims(
      { policy: 'lru', hitsDir: '', records, names, now: 0, halfLife: 1, targetEntries: 2, targetBytes: 250 },
      undefined,
    )
    assert.deepEqual(plan.names.match(/.{16}/g), ['0000000000000003', '0000000000000000'])
  })

  it('a real cache: one set over maxSize does not empty it', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maxSize: '1MB' })
    try {
      for (let i = 0; i < 20; i++) await cache.set(`small${i}`, randomBytes(40 * KB))
      const pruned = once(cache, 'prune') as Promise<[PruneReport]>
      await cache.set('huge', randomBytes(2048 * KB)) // incompressible: 2 MB on disk
      const [report] = await pruned
      assert.equal(report.evicted, 1, 'the huge entry alone (it emptied the namespace)')
      assert.equal(await cache.get('huge'), undefined)
      for (let i = 0; i < 20; i++) assert.ok((await cache.get(`small${i}`)) !== undefined, `small${i} stays`)
    } finally {
      await cache.close()
    }
  })
})

describe('the running totals', () => {
  it('a write that takes the cache over budget right after a read of the totals starts a prune', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maxSize: 100 * KB })
    try {
      for (let i = 0; i < 8; i++) await cache.set(`k${i}`, randomBytes(10 * KB))
      // A quiet spell (over 250 ms since the last flush: the next change is flushed at once),
      // then a fresh read of the totals.
      await new Promise((resolve) => setTimeout(resolve, 800))
      assert.ok((await cache.stats()).size < 100 * KB)
      const pruned = once(cache, 'prune') as Promise<[PruneReport]>
      await cache.set('over', randomBytes(30 * KB))
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('no prune started (the write was not counted)')), 5000))
      const [report] = (await Promise.race([pruned, timeout])) as [PruneReport]
      assert.ok(report.evicted >= 1)
      assert.ok((await cache.stats()).size <= 100 * KB)
    } finally {
      await cache.close()
    }
  })
})

describe('a prune killed outright (SIGKILL) after its evictions, before it wrote its count', () => {
  it('leaves the running totals as the disk is: what it removed is taken off batch by batch', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir, maintenance: false })
    try {
      await writer.setMany(Array.from({ length: 600 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(500), ttl: i < 100 ? 1 : 0 })))
    } finally {
      await writer.close()
    }
    await new Promise((resolve) => setTimeout(resolve, 20)) // the first 100 expire: the scan removes them
    const { code, err } = await runChildScript('maintenance-child.ts', ['killed-prune', dir, '50'])
    assert.equal(code, null, err) // killed
    const reader = await Larder.open({ dir, maintenance: false, readOnly: true })
    try {
      const files = entryFiles(dir)
      const stats = await reader.stats()
      assert.equal(files.length, 50)
      // Before: 600 entries and every byte of them counted, the totals of before the prune.
      assert.equal(stats.entries, files.length)
      assert.equal(
        stats.size,
        files.reduce((sum, file) => sum + fs.statSync(file).size, 0),
      )
    } finally {
      await reader.close()
    }
  })
})

describe('a verify with repair killed outright (SIGKILL) after its checks, before it wrote its count', () => {
  it('leaves the running totals as the disk is: the corrupt entries it removed are taken off', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir, maintenance: false })
    try {
      await writer.setMany(Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: 'x'.repeat(500) })))
    } finally {
      await writer.close()
    }
    for (const file of entryFiles(dir).slice(0, 60)) {
      const bytes = fs.readFileSync(file)
      bytes[bytes.length - 1] = bytes.at(-1)! ^ 0xff // a checksum that no longer matches
      fs.writeFileSync(file, bytes)
    }
    const { code, err } = await runChildScript('maintenance-child.ts', ['killed-verify', dir])
    assert.equal(code, null, err) // killed
    const reader = await Larder.open({ dir, maintenance: false, readOnly: true })
    try {
      const files = entryFiles(dir)
      assert.equal(files.length, 140)
      // Before: 200, the totals of before the verify.
      assert.equal((await reader.stats()).entries, files.length)
    } finally {
      await reader.close()
    }
  })
})

describe('a clear while another instance writes', () => {
  it("keeps the other's writes in the running totals: never fewer counted than are on disk", async () => {
    const dir = tempDir()
    const clearer = await Larder.open({ dir, maintenance: false })
    const writer = await Larder.open({ dir, maintenance: false })
    try {
      await clearer.setMany(Array.from({ length: 6000 }, (_, i) => ({ key: `old${i}`, value: i })))
      let writing = true
      let written = 0
      const writes = (async () => {
        while (writing) {
          await writer.set(`new${written++}`, 'x'.repeat(100))
          if (written % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5))
        }
      })()
      await new Promise((resolve) => setTimeout(resolve, 50))
      await clearer.clear() // moves 6,000 entries aside and removes them: the writer's flushes land meanwhile
      await new Promise((resolve) => setTimeout(resolve, 400)) // the writer goes on a little
      writing = false
      await writes
    } finally {
      await writer.close()
      await clearer.close()
    }
    const reader = await Larder.open({ dir, maintenance: false, readOnly: true })
    try {
      const onDisk = entryFiles(dir).length
      const counted = (await reader.stats()).entries
      assert.ok(onDisk > 0)
      assert.ok(counted >= onDisk, `counted ${counted}, on disk ${onDisk}: a write the totals lost leaves a budget unenforced`)
    } finally {
      await reader.close()
    }
  })
})

describe('LRU and two instances in one process', () => {
  it("a prune by one instance sees the other's disk hits (they were pending in it, unwritten)", async () => {
    const dir = tempDir()
    const options = { dir, evictionPolicy: 'lru' as const, maintenance: { interval: 0 } }
    const writer = await Larder.open({ ...options, maintenance: false })
    for (let i = 0; i < 40; i++) {
      await writer.set(`k${i}`, randomBytes(200))
      await new Promise((resolve) => setTimeout(resolve, 3)) // mtimes apart: k0 the least recent
    }
    await writer.close()
    const hot = Array.from({ length: 5 }, (_, i) => `k${i}`) // the oldest, read now
    const reader = await Larder.open(options)
    const pruner = await Larder.open(options)
    try {
      for (const key of hot) assert.ok((await reader.get(key)) !== undefined)
      await pruner.prune({ maxEntries: 20 })
      for (const key of hot) assert.equal(await pruner.has(key), true, `${key} was read just now: not the least recently used`)
    } finally {
      await reader.close()
      await pruner.close()
    }
  })
})
