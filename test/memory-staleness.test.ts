/**
 * The memory tier and other processes' writes, with the default options (`memory.ttl` 0):
 * every set, setStream, delete and clear by another process is seen within the documented
 * bound, while this process's own writes never cost its memory tier a re-read.
 * Process A is a child (test/children/peer.ts) or this process; B is the other.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { Child, startChild } from './children/harness.ts'
import { childScript, runScript, repoRoot } from './children/shared.ts'

const base = mkdtempSync(path.join(tmpdir(), 'larder-memory-'))
const children: Child[] = []
after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  rmSync(base, { recursive: true, force: true })
})
let dirs = 0
const freshDir = (): string => path.join(base, `cache-${++dirs}`)

/** Comfortably past the documented bound (another process's write is seen within ~5 ms). */
const PAST_THE_BOUND = 50

interface StatsLike {
  memoryHits: number
  hits: number
  bytesRead: number
}

describe("another process's writes reach this process's memory tier (default options)", () => {
  const ops = {
    set: { write: (b: Larder) => b.set('user:1', { name: 'v2' }), expected: { name: 'v2' } },
    setStream: { write: (b: Larder) => b.setStream('user:1', [Buffer.from('"streamed"')]), expected: Buffer.from('"streamed"') },
    delete: { write: async (b: Larder) => void (await b.delete('user:1')), expected: undefined },
    clear: { write: (b: Larder) => b.clear(), expected: undefined },
  }
  for (const [name, op] of Object.entries(ops)) {
    test(`${name} by process B is seen by process A's memory tier`, { timeout: 30_000 }, async () => {
      const dir = freshDir()
      const b = await Larder.open({ dir, maintenance: false })
      await b.set('user:1', { name: 'v1' })
      const a = await startChild('peer.ts')
      children.push(a)
      const ha = await a.call<number>('open', { options: { dir, memory: true, maintenance: false } })
      const get = async (): Promise<unknown> => (await a.call<{ value: unknown }>('get', { h: ha, key: 'user:1' })).value
      assert.deepEqual(await get(), { name: 'v1' }) // from disk, promoted to memory
      assert.deepEqual(await get(), { name: 'v1' })
      assert.equal((await a.call<StatsLike>('stats', { h: ha })).memoryHits, 1, 'the second read came from memory')

      await op.write(b)
      await delay(PAST_THE_BOUND)
      assert.deepEqual(await get(), op.expected, `A's memory tier after B's ${name}`)
      assert.deepEqual(await get(), op.expected)
      await b.close()
      await a.shutdown()
    })
  }

  test(
    'a write by another process is seen within 16 memory hits by a run of hits that never yields to the event loop',
    { timeout: 60_000 },
    async () => {
      const dir = freshDir()
      const a = await Larder.open({ dir, memory: true, maintenance: false })
      await a.set('k', 'v1')
      assert.equal(await a.get('k'), 'v1')
      // From here to the end of the loop this process's event loop never turns (timers cannot
      // fire): B writes in a child run synchronously, then A reads.
      execFileSync(process.execPath, [...runScript(childScript('peer.ts')), 'once', dir, 'set', 'k', '"v2"'], { cwd: repoRoot })
      const seen: unknown[] = []
      for (let i = 0; i < 16; i++) seen.push(await a.get('k'))
      assert.ok(seen.includes('v2'), `16 hits after B's write: ${seen.join(', ')}`)
      assert.equal(seen.at(-1), 'v2')
      await a.close()
    },
  )

  test("this process's own sets, deletes and clears do not make its memory tier re-read anything", { timeout: 30_000 }, async () => {
    const dir = freshDir()
    const a = await Larder.open({ dir, memory: true, maintenance: false })
    for (let i = 0; i < 20; i++) await a.set(`k${i}`, { i })
    const read = async (): Promise<void> => {
      for (let i = 0; i < 20; i++) assert.deepEqual(await a.get(`k${i}`), { i })
    }
    await read()
    const before = await a.stats()
    await a.set('other', 1)
    await a.setStream('stream', [Buffer.from('s')])
    await a.delete('other')
    await delay(PAST_THE_BOUND)
    await read()
    const after = await a.stats()
    assert.equal(after.memoryHits - before.memoryHits, 20, 'every read was a memory hit')
    assert.equal(after.hits - after.memoryHits, before.hits - before.memoryHits, 'no read went to disk')
    await a.close()
  })

  test("two instances in one process see each other's writes like two processes", { timeout: 30_000 }, async () => {
    const dir = freshDir()
    const a = await Larder.open({ dir, memory: true, maintenance: false })
    const b = await Larder.open({ dir, memory: true, maintenance: false })
    await a.set('k', 'v1')
    assert.equal(await b.get('k'), 'v1')
    assert.equal(await b.get('k'), 'v1')
    await a.set('k', 'v2')
    await delay(PAST_THE_BOUND)
    assert.equal(await b.get('k'), 'v2')
    await a.close()
    await b.close()
  })

  test('memory.ttl is an extra bound: with a ttl the value is still seen once another process writes', { timeout: 30_000 }, async () => {
    const dir = freshDir()
    const a = await Larder.open({ dir, memory: { ttl: '1h' }, maintenance: false })
    const b = await Larder.open({ dir, maintenance: false })
    await b.set('k', 'v1')
    assert.equal(await a.get('k'), 'v1')
    await b.set('k', 'v2')
    await delay(PAST_THE_BOUND)
    assert.equal(await a.get('k'), 'v2')
    await a.close()
    await b.close()
  })
})
