/**
 * The memory tier's hit of a tagged entry (issue 14, issue 12's Keyv row): it sees another
 * process's tag invalidation on the same cadence as that process's sets and deletes (within
 * about 5 ms: the tier's change-log look), this process's own at once, and between looks
 * makes no syscall for the tag clock.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { startChild, type Child } from './children/harness.ts'
import { eventually } from './eventually.ts'
import { tempDir } from './helpers.ts'

const base = tempDir('larder-mem-hit')
const children: Child[] = []
after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  rmSync(base, { recursive: true, force: true })
})
let dirs = 0
const freshDir = (): string => path.join(base, `cache-${++dirs}`)

describe('a memory-tier hit and the tag clock', () => {
  test(
    "another process's invalidateTags is seen by a memory-tier hit once the window has passed; other entries stay held",
    { timeout: 60_000 },
    async () => {
      const dir = freshDir()
      const a = await Larder.open({ dir, memory: true, maintenance: false })
      const b = await startChild('peer.ts')
      children.push(b)
      try {
        await a.set('user:1', 'Ada', { tags: ['users'] })
        await a.set('order:1', 'o1', { tags: ['orders'] })
        assert.equal(await a.get('user:1'), 'Ada')
        const hb = await b.call<number>('open', { options: { dir, maintenance: false } })
        await b.call('invalidateTags', { h: hb, tags: ['users'] })
        await eventually(async () => (await a.get('user:1')) === undefined, "A's memory tier kept serving an entry of a tag B invalidated")
        const before = (await a.stats()).memoryHits
        assert.equal(await a.get('order:1'), 'o1')
        assert.equal((await a.stats()).memoryHits, before + 1, 'an entry of another tag left the memory tier')
        assert.equal(await a.get('user:1'), undefined, 'the invalidated entry came back')
        await b.call('close', { h: hb })
      } finally {
        await a.close()
      }
    },
  )

  test("this process's own invalidateTags is seen by the next memory-tier hit", async () => {
    const dir = freshDir()
    const a = await Larder.open({ dir, memory: true, maintenance: false })
    try {
      for (let round = 0; round < 20; round++) {
        await a.set('user:1', round, { tags: ['users', `round-${round}`] })
        assert.equal(await a.get('user:1'), round)
        await a.invalidateTags([round % 2 === 0 ? 'users' : `round-${round}`])
        assert.equal(await a.get('user:1'), undefined, `round ${round}: served after this process invalidated its tag`)
      }
    } finally {
      await a.close()
    }
  })

  test('memory-tier hits of a tagged entry do not fstat the tags directory on each hit', async () => {
    const dir = freshDir()
    const a = await Larder.open({ dir, memory: true, maintenance: false })
    const real = disk.fstatSync
    try {
      await a.set('user:1', 'Ada', { tags: ['users'] })
      assert.equal(await a.get('user:1'), 'Ada')
      let fstats = 0
      disk.fstatSync = ((...args: Parameters<typeof real>) => {
        fstats++
        return real(...args)
      }) as typeof real
      const HITS = 1024
      const before = (await a.stats()).memoryHits
      for (let i = 0; i < HITS; i++) assert.equal(await a.get('user:1'), 'Ada')
      disk.fstatSync = real
      assert.equal((await a.stats()).memoryHits - before, HITS, 'the reads were not all memory hits')
      // A look (a change-log stat and a tags-directory fstat) is made at most once per 16
      // hits that run without the event loop turning, and only when 5 ms have passed: never
      // on every hit, which is what this would count.
      assert.ok(fstats <= HITS / 16 + 1, `${fstats} fstat calls for ${HITS} memory hits`)
    } finally {
      disk.fstatSync = real
      await a.close()
    }
  })
})
