/**
 * Many processes on one directory: 8 processes each run mixed operations (set, get, has,
 * delete, getOrSet, tagged sets, invalidateTags, setStream, getStream, increment) on shared
 * keys while a ninth prunes to a budget and verifies, over and over. Every value read carries
 * its own checksum and names its key, so each read is validated against "something some
 * process wrote for this key": 0 wrong values, 0 errors, 0 corrupt. test/multiprocess.test.ts
 * has the smaller, set/get-only version.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Child } from '../children/harness.ts'
import { record, scale, seedFor } from './scale.ts'

const children: Child[] = []
const dirs: string[] = []
after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

interface OpsResult {
  counts: Record<string, number>
  wrong: string[]
  thrown: string[]
  thrownCount: number
  corrupt: string[]
  errors: string[]
  counter: number
  finalCounter: unknown
  stats: { errors: number; corrupt: number; dropped: number }
}

describe('8 processes on one directory, with a prune running', () => {
  const PROCESSES = 8
  const OPS = scale(400, 10_000)
  const KEYS = scale(60, 400)

  test(`${PROCESSES} × ${OPS} mixed operations: every read is a value some process wrote for that key; 0 wrong, 0 errors`, { timeout: scale(180_000, 1_200_000) }, async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'larder-torture-concurrency-'))
    dirs.push(dir)
    const seed = seedFor('concurrency')
    const workers = Array.from({ length: PROCESSES }, (_, w) => new Child('../torture/children/concurrency-child.ts', ['ops', dir, String(w), String(seed * 13 + w), String(OPS), String(KEYS)]))
    const pruner = new Child('../torture/children/concurrency-child.ts', ['prune', dir, String(seed), String(Math.floor(KEYS * 0.7))])
    children.push(...workers, pruner)
    await Promise.all([...workers, pruner].map((c) => c.next('ready')))
    for (const c of [pruner, ...workers]) c.proc.send({ op: 'go' })
    const results = (await Promise.all(workers.map((c) => c.next('result')))) as unknown as OpsResult[]
    pruner.proc.send({ op: 'stop' })
    const pruned = (await pruner.next('result')) as unknown as { totals: Record<string, number>; thrown: string[] }
    const exits = await Promise.all([...workers, pruner].map((c) => c.exited))
    assert.ok(exits.every((e) => e.code === 0), `children exited with ${JSON.stringify(exits)}`)

    let validated = 0
    let ops = 0
    for (const [w, r] of results.entries()) {
      assert.deepEqual(r.wrong, [], `process ${w} (seed ${seed}): wrong values`)
      assert.equal(r.thrownCount, 0, `process ${w}: ${r.thrown.join('\n')}`)
      assert.deepEqual(r.corrupt, [], `process ${w}: corrupt entries met`)
      assert.equal(r.stats.errors, 0, `process ${w}: disk errors ${r.errors.join('; ')}`)
      assert.equal(r.stats.dropped, 0, `process ${w}: dropped writes`)
      // The counter only this process increments survived every concurrent prune and write.
      if (r.counts.increment! > 0) assert.ok(r.finalCounter === r.counter || r.finalCounter === undefined, `process ${w}: counter ${String(r.finalCounter)}, expected ${r.counter} (or evicted)`)
      validated += r.counts.validated!
      ops += Object.entries(r.counts).filter(([k]) => k !== 'validated' && k !== 'misses').reduce((n, [, v]) => n + v, 0)
    }
    assert.deepEqual(pruned.thrown, [], 'the pruner failed')
    assert.equal(pruned.totals.corrupt, 0, 'prune found damaged entries')
    assert.equal(pruned.totals.verifyCorrupt, 0, 'verify found damaged entries')
    assert.ok(pruned.totals.prunes! > 0, 'no prune ran alongside')
    assert.ok(validated > ops / 10, `only ${validated} reads validated`)
    record(t, {
      area: 'concurrency', what: `${PROCESSES} processes × ${OPS.toLocaleString('en-US')} mixed ops + a pruning process`, tried: validated, unit: 'reads validated', survived: validated,
      note: `seed ${seed}; ${ops} operations, 0 wrong, 0 errors; ${pruned.totals.prunes} prunes (${pruned.totals.evicted} evicted), ${pruned.totals.verifies} verifies alongside`,
    })
  })
})
