/**
 * Many processes on one directory: 8 processes each run mixed operations (set, get, has,
 * delete, getOrSet, tagged sets, invalidateTags, setStream, getStream, increment) on shared
 * keys while a ninth prunes to a budget and verifies, over and over. Every value read carries
 * its own checksum, names its key and the write that made it (writer and sequence number).
 * Each process logs when every write, delete, invalidation and read began and ended, on the
 * host's monotonic clock, and every read is then checked against that history: it must be a
 * miss (eviction is allowed) or a version that was not yet superseded when the read began — no
 * write of another version, no delete and no invalidation of its tags that started after it
 * was acknowledged may have been acknowledged before the read started (a process with a
 * memory tier may lag by its documented bound, measured from when it last knew the time). test/multiprocess.test.ts has the smaller,
 * set/get-only version.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Child } from '../children/harness.ts'
import type { HistoryEvent } from './children/concurrency-child.ts'
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
  history: HistoryEvent[]
  /** Whether the process keeps a memory tier (memory.ttl 50 ms). */
  memory: boolean
}

/**
 * How long before the moment it last knew the time a process's memory tier may serve a value
 * another process has replaced (src/tiers/memory-tier.ts). A hit looks at the change log and
 * the tags directory, so sees every set, delete and invalidation acknowledged before the look,
 * once the tier knows CHANGE_CHECK_MS (5 ms) have passed since its last look: when its timer
 * fires (only while the event loop runs timers), or when a call that is not a hit reads the
 * clock. The child logs the latest such moment before each read (`seen`); the 2 ms beyond the
 * 5 are for timers' whole-millisecond rounding. How long before the read that moment was is
 * measured, not assumed: a process that was not running could not look.
 */
const MEMORY_LOOK_MS = 7

/** How much earlier than the read began a superseding change may have been acknowledged and
 *  the read still return the old version: none for a value read from disk, the memory tier's
 *  bound (MEMORY_LOOK_MS before `seen`) for one that may have come from memory. */
function allowance(read: HistoryEvent, memory: boolean): number {
  return memory && read.tier !== 'file' ? read.s - (read.seen ?? read.s) + MEMORY_LOOK_MS : 0
}

/**
 * Checks every read of every process against the merged history (see the file comment).
 * Returns one line per violation.
 */
function staleReads(results: readonly OpsResult[]): string[] {
  const writes = new Map<string, HistoryEvent & { p: number }>()
  const mutations = new Map<string, (HistoryEvent & { p: number })[]>()
  const invalidations = new Map<string, (HistoryEvent & { p: number })[]>()
  for (const [p, r] of results.entries()) {
    for (const e of r.history) {
      if (e.k === 'w') writes.set(e.v!, { ...e, p })
      if (e.k === 'w' || e.k === 'd') {
        const list = mutations.get(e.key!) ?? []
        list.push({ ...e, p })
        mutations.set(e.key!, list)
      }
      if (e.k === 'i') {
        const list = invalidations.get(e.tag!) ?? []
        list.push({ ...e, p })
        invalidations.set(e.tag!, list)
      }
    }
  }
  const violations: string[] = []
  for (const [p, r] of results.entries()) {
    for (const read of r.history) {
      if (read.k !== 'r' || read.v === null || read.v === undefined) continue
      const lag = allowance(read, r.memory)
      const at = (ms: number): string => `${(ms - read.s).toFixed(1)} ms`
      // Everything needed to tell a wrong value served from a model too strict for the load.
      const since = (ms: number | undefined): string => `${(read.s - (ms ?? read.s)).toFixed(1)} ms`
      const reader = `process ${p} (${r.memory ? `memory tier, which last knew the time ${since(read.seen)} before the read; timers ${since(read.tick)}` : 'no memory tier'}) ${read.how ?? 'read'} ${read.key} = ${read.v} (${read.tier ?? 'unknown tier'}, took ${(read.e - read.s).toFixed(1)} ms, allowed ${lag.toFixed(1)} ms late)`
      const write = writes.get(read.v)
      if (write === undefined) {
        violations.push(`${reader}: a version no process logged writing`)
        continue
      }
      const written = `written by process ${write.p} from ${at(write.s)} to ${at(write.e)}`
      if (write.s > read.e) violations.push(`${reader}: ${written}, after the read ended`)
      const newer = (mutations.get(read.key!) ?? []).find((m) => m !== write && m.v !== read.v && m.s > write.e && m.e < read.s - lag)
      if (newer !== undefined) {
        violations.push(
          `${reader}: ${written}, but ${newer.k === 'd' ? 'a delete' : `version ${newer.v}`} by process ${newer.p} ran from ${at(newer.s)} to ${at(newer.e)}`,
        )
        continue
      }
      for (const tag of write.tags ?? []) {
        const invalidated = (invalidations.get(tag) ?? []).find((i) => i.s > write.e && i.e < read.s - lag)
        if (invalidated !== undefined) {
          violations.push(
            `${reader}: ${written} tagged ${tag}, but an invalidation of ${tag} by process ${invalidated.p} ran from ${at(invalidated.s)} to ${at(invalidated.e)}`,
          )
          break
        }
      }
    }
  }
  return violations
}

describe('the history check itself', () => {
  const result = (history: HistoryEvent[], memory = false): OpsResult => ({
    counts: {},
    wrong: [],
    thrown: [],
    thrownCount: 0,
    corrupt: [],
    errors: [],
    counter: 0,
    finalCounter: undefined,
    stats: { errors: 0, corrupt: 0, dropped: 0 },
    history,
    memory,
  })
  const v1: HistoryEvent = { k: 'w', key: 'a', v: '0.1', tags: ['t'], s: 0, e: 10 }

  test('flags a read of a version superseded, deleted or invalidated before the read began', () => {
    const v2: HistoryEvent = { k: 'w', key: 'a', v: '1.2', s: 20, e: 30 }
    const del: HistoryEvent = { k: 'd', key: 'a', s: 20, e: 30 }
    const inv: HistoryEvent = { k: 'i', tag: 't', s: 20, e: 30 }
    const read: HistoryEvent = { k: 'r', key: 'a', v: '0.1', s: 40, e: 41 }
    for (const later of [v2, del, inv]) assert.equal(staleReads([result([v1, later]), result([read])]).length, 1, `after a ${later.k}`)
    assert.equal(staleReads([result([v1]), result([{ k: 'r', key: 'a', v: '9.9', s: 40, e: 41 }])]).length, 1, 'a version nobody wrote')
  })

  test('accepts a read that raced the newer write, a miss, and a memory tier within its bound', () => {
    const v2: HistoryEvent = { k: 'w', key: 'a', v: '1.2', s: 5, e: 30 } // began before v1 was acknowledged
    const raced: HistoryEvent = { k: 'r', key: 'a', v: '0.1', s: 25, e: 26 }
    assert.deepEqual(staleReads([result([v1, v2]), result([raced, { k: 'r', key: 'a', v: null, s: 50, e: 51 }])]), [])
    const v3: HistoryEvent = { k: 'w', key: 'a', v: '1.3', s: 20, e: 30 }
    // The memory tier last knew the time 1 ms after v3 was acknowledged (or the process did not run until the read).
    const late: HistoryEvent = { k: 'r', key: 'a', v: '0.1', s: 400, e: 401, tier: 'memory', seen: 31 }
    assert.deepEqual(staleReads([result([v1, v3]), result([late], true)]), [])
  })

  test('flags a memory-tier read later than its bound, and gives a read from disk none', () => {
    const v3: HistoryEvent = { k: 'w', key: 'a', v: '1.3', s: 20, e: 30 }
    const pastTheBound: HistoryEvent = { k: 'r', key: 'a', v: '0.1', s: 400, e: 401, tier: 'memory', seen: 30 + MEMORY_LOOK_MS + 1 }
    assert.equal(staleReads([result([v1, v3]), result([pastTheBound], true)]).length, 1, 'from memory')
    const fromDisk: HistoryEvent = { k: 'r', key: 'a', v: '0.1', s: 31, e: 32, tier: 'file', seen: 31 }
    assert.equal(staleReads([result([v1, v3]), result([fromDisk], true)]).length, 1, 'from disk')
  })
})

describe('8 processes on one directory, with a prune running', () => {
  const PROCESSES = 8
  const OPS = scale(400, 10_000)
  const KEYS = scale(60, 400)

  test(
    `${PROCESSES} × ${OPS} mixed operations: every read is a miss or a version not superseded before the read began; 0 wrong, 0 errors`,
    { timeout: scale(180_000, 1_200_000) },
    async (t) => {
      const dir = await mkdtemp(path.join(tmpdir(), 'larder-torture-concurrency-'))
      dirs.push(dir)
      const seed = seedFor('concurrency')
      const workers = Array.from(
        { length: PROCESSES },
        (_, w) =>
          new Child('../torture/children/concurrency-child.ts', ['ops', dir, String(w), String(seed * 13 + w), String(OPS), String(KEYS)]),
      )
      const pruner = new Child('../torture/children/concurrency-child.ts', ['prune', dir, String(seed), String(Math.floor(KEYS * 0.7))])
      children.push(...workers, pruner)
      await Promise.all([...workers, pruner].map((c) => c.next('ready')))
      for (const c of [pruner, ...workers]) c.proc.send({ op: 'go' })
      const results = (await Promise.all(workers.map((c) => c.next('result')))) as unknown as OpsResult[]
      pruner.proc.send({ op: 'stop' })
      const pruned = (await pruner.next('result')) as unknown as { totals: Record<string, number>; thrown: string[] }
      const exits = await Promise.all([...workers, pruner].map((c) => c.exited))
      assert.ok(
        exits.every((e) => e.code === 0),
        `children exited with ${JSON.stringify(exits)}`,
      )

      // Each validated read counts as tried; it survived unless it was a stale or resurrected
      // version. Process-level failures (thrown errors, corrupt entries met, disk errors,
      // dropped writes, a lost increment) lower it too.
      const failures: string[] = []
      let validated = 0
      let ops = 0
      for (const [w, r] of results.entries()) {
        failures.push(...r.wrong.map((x) => `process ${w}: wrong value ${x}`))
        if (r.thrownCount > 0) failures.push(`process ${w}: ${r.thrownCount} thrown: ${r.thrown.join(' | ')}`)
        failures.push(...r.corrupt.map((x) => `process ${w}: corrupt entry met: ${x}`))
        if (r.stats.errors > 0) failures.push(`process ${w}: disk errors ${r.errors.join('; ')}`)
        if (r.stats.dropped > 0) failures.push(`process ${w}: ${r.stats.dropped} dropped writes`)
        // The counter only this process increments survived every concurrent prune and write.
        if (r.counts.increment! > 0 && !(r.finalCounter === r.counter || r.finalCounter === undefined))
          failures.push(`process ${w}: counter ${JSON.stringify(r.finalCounter) ?? 'undefined'}, expected ${r.counter} (or evicted)`)
        validated += r.counts.validated! + r.wrong.length
        ops += Object.entries(r.counts)
          .filter(([k]) => k !== 'validated' && k !== 'misses')
          .reduce((n, [, v]) => n + v, 0)
      }
      const stale = staleReads(results)
      // Every violation in full (record() shows only the first few).
      for (const line of stale) t.diagnostic(`stale: ${line}`)
      failures.push(...stale)
      const reads = results.reduce((n, r) => n + r.history.filter((e) => e.k === 'r' && e.v !== null).length, 0)
      record(
        t,
        {
          area: 'concurrency',
          what: `${PROCESSES} processes × ${OPS.toLocaleString('en-US')} mixed ops + a pruning process`,
          tried: validated,
          unit: 'reads validated',
          survived: Math.max(0, validated - failures.length),
          note: `seed ${seed}; ${ops} operations; ${reads} reads checked against the acknowledged history, ${stale.length} stale; ${pruned.totals.prunes} prunes (${pruned.totals.evicted} evicted), ${pruned.totals.verifies} verifies alongside`,
        },
        failures,
      )
      assert.deepEqual(pruned.thrown, [], 'the pruner failed')
      assert.equal(pruned.totals.corrupt, 0, 'prune found damaged entries')
      assert.equal(pruned.totals.verifyCorrupt, 0, 'verify found damaged entries')
      assert.ok(pruned.totals.prunes! > 0, 'no prune ran alongside')
      assert.ok(validated > ops / 10, `only ${validated} reads validated`)
    },
  )
})
