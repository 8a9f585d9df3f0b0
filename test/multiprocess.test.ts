/**
 * larder shared by several real processes on one directory: persistence from one process to
 * the next, concurrent mixed traffic with every value checked, and tag invalidation seen
 * across processes. Children are `node --import tsx test/children/worker.ts`.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { Child, startChild } from './children/harness.ts'
import { persistenceFixtures, STREAM_FIXTURE } from './children/fixtures.ts'
import { artifactDigest, recordProblem, scanEntries } from './children/shared.ts'
import { eventually } from './eventually.ts'

const dirs: string[] = []
const children: Child[] = []

async function freshDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `larder-mp-${label}-`))
  dirs.push(dir)
  return dir
}

async function worker(): Promise<Child> {
  const child = await startChild('worker.ts')
  children.push(child)
  return child
}

after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

interface StatsLike {
  hits: number
  misses: number
  sets: number
  corrupt: number
  errors: number
  dropped: number
  breaker: { state: string }
}

describe('persistence across processes', () => {
  test(
    'values written by one process with the json, v8, msgpack and raw serializers read back deep-equal and byte-exact in another',
    { timeout: 60_000 },
    async () => {
      const dir = await freshDir('persist')
      const writer = await worker()
      const written = await writer.call<{ written: number; stats: Record<string, StatsLike> }>('writeFixtures', { dir })
      await writer.shutdown()
      const fixtures = persistenceFixtures()
      assert.equal(written.written, fixtures.length)
      for (const [name, s] of Object.entries(written.stats)) {
        assert.equal(s.errors, 0, `writer ${name}: disk errors`)
        assert.equal(s.dropped, 0, `writer ${name}: dropped writes`)
      }

      const reader = await worker()
      const read = await reader.call<{
        results: { key: string; via: string; present: boolean; isBuffer: boolean; problem?: string; value: unknown }[]
        leaks: string[]
        streamDigest: { sha256: string; length: number } | undefined
        stats: Record<string, StatsLike>
      }>('readFixtures', { dir })
      await reader.shutdown()

      assert.equal(read.results.length, fixtures.length * 2)
      for (const r of read.results) {
        const f = fixtures.find((x) => x.key === r.key)!
        const expected = 'expected' in f ? f.expected : f.value
        assert.ok(r.present, `${r.key} (read via ${r.via}) is missing in the second process`)
        assert.equal(r.problem, undefined, `${r.key} (read via ${r.via}) differs in the reading process`)
        // And again here, on what came back over IPC.
        assert.deepStrictEqual(r.value, expected, `${r.key} (read via ${r.via})`)
        assert.equal(r.isBuffer, Buffer.isBuffer(expected), `${r.key}: Buffer-ness`)
        if (Buffer.isBuffer(expected)) assert.ok(Buffer.from(r.value as Uint8Array).equals(expected), `${r.key}: bytes differ`)
      }
      assert.deepEqual(read.leaks, [], 'another namespace must not see these entries')
      assert.deepEqual(read.streamDigest, artifactDigest(STREAM_FIXTURE.spec), 'streamed entry differs')
      for (const [name, s] of Object.entries(read.stats)) {
        assert.equal(s.corrupt, 0, `reader ${name}: corrupt entries`)
        assert.equal(s.errors, 0, `reader ${name}: disk errors`)
        assert.equal(s.misses, 0, `reader ${name}: misses`)
      }
    },
  )
})

describe('concurrent processes on one directory', () => {
  const PROCESSES = 8
  const OPS = 400
  const KEYS = 50

  test(
    'eight processes mixing set, setStream, get, getStream and delete over 50 shared keys never read a wrong or damaged value',
    { timeout: 90_000 },
    async (t) => {
      const dir = await freshDir('stress')
      const seed = Number(process.env.LARDER_TEST_SEED ?? Date.now() % 1_000_000)
      const workers = await Promise.all(Array.from({ length: PROCESSES }, () => worker()))
      // Every child is up before any starts, so their workloads overlap.
      const reports = await Promise.all(
        workers.map((w, i) =>
          w.call<{
            counts: Record<string, number>
            wrongCount: number
            wrong: string[]
            thrownCount: number
            thrown: string[]
            errorEvents: string[]
            corruptEvents: string[]
            stats: StatsLike
          }>('stress', { dir, writer: i, ops: OPS, keys: KEYS, seed: seed * 31 + i }),
        ),
      )
      await Promise.all(workers.map((w) => w.shutdown()))

      let validated = 0
      let writes = 0
      for (const [i, r] of reports.entries()) {
        const who = `writer ${i} (seed ${seed})`
        assert.deepEqual(r.wrong, [], `${who}: wrong values read`)
        assert.equal(r.wrongCount, 0, `${who}: wrong values read`)
        assert.deepEqual(r.thrown, [], `${who}: operations threw`)
        assert.deepEqual(r.errorEvents, [], `${who}: error events`)
        assert.deepEqual(r.corruptEvents, [], `${who}: corrupt events`)
        assert.equal(r.stats.errors, 0, `${who}: stats.errors`)
        assert.equal(r.stats.corrupt, 0, `${who}: stats.corrupt`)
        assert.equal(r.stats.dropped, 0, `${who}: stats.dropped`)
        assert.equal(r.stats.breaker.state, 'closed', `${who}: breaker`)
        const c = r.counts
        assert.equal(c.set! + c.setStream! + c.get! + c.getStream! + c.delete!, OPS, `${who}: ops run`)
        validated += c.validated!
        writes += c.set! + c.setStream!
      }
      t.diagnostic(`seed ${seed}: ${writes} writes, ${validated} reads validated across ${PROCESSES} processes`)
      // The workload really overlapped reads with writes of the same keys.
      assert.ok(writes > PROCESSES * OPS * 0.3, `only ${writes} writes`)
      assert.ok(validated > PROCESSES * OPS * 0.2, `only ${validated} hits were validated`)

      // Afterwards: every key is a valid record or absent, and nothing but entries is left.
      const cache = await Larder.open({ dir })
      try {
        let present = 0
        for (let k = 0; k < KEYS; k++) {
          const key = `shared-${k}`
          const value = await cache.get(key)
          if (value === undefined) continue
          present++
          assert.equal(recordProblem(key, value), undefined, `${key} after the run`)
        }
        assert.ok(present > 0, 'no key survived the run')
        const s = await cache.stats()
        assert.equal(s.corrupt, 0)
        assert.equal(s.errors, 0)
      } finally {
        await cache.close()
      }
      const scan = scanEntries(dir)
      assert.deepEqual(scan.temps, [], 'temp files left behind by processes that exited cleanly')
      assert.deepEqual(scan.other, [], 'unexpected files in the partitions')
      assert.ok(scan.entries.length <= KEYS)
    },
  )
})

describe('tags across processes', () => {
  let dir: string
  let a: Child
  let b: Child
  let ha: number
  let hb: number

  let warmedUpAt = 0

  before(async () => {
    dir = await freshDir('tags')
    a = await worker()
    ha = await a.call<number>('open', { options: { dir } })
    // A tags directory that already exists, so A's tag clock caches stamps and trusts them
    // while the directory's mtime stays put (and is older than its 100 ms racy window).
    await a.call('invalidateTags', { h: ha, tags: ['warm-up'] })
    warmedUpAt = Date.now()
    b = await worker()
    hb = await b.call<number>('open', { options: { dir } })
  })

  after(async () => {
    await Promise.all([a?.shutdown(), b?.shutdown()])
  })

  const get = async (c: Child, h: number, key: string): Promise<unknown> => (await c.call<{ value: unknown }>('get', { h, key })).value

  test(
    'entries tagged in process A read as misses in A once process B invalidates the tag, and other entries are untouched',
    { timeout: 30_000 },
    async () => {
      for (let i = 0; i < 5; i++) await a.call('set', { h: ha, key: `user:${i}`, value: { i }, options: { tags: ['users'] } })
      await a.call('set', { h: ha, key: 'order:1', value: 'o1', options: { tags: ['orders'] } })
      await a.call('set', { h: ha, key: 'plain', value: 'p' })
      await a.call('set', { h: ha, key: 'both', value: 'b', options: { tags: ['orders', 'users'] } })

      // Past the racy window, so these reads are served from A's cached tag stamps.
      const racyWait = 150 - (Date.now() - warmedUpAt)
      if (racyWait > 0) await delay(racyWait)
      for (let i = 0; i < 5; i++) assert.deepEqual(await get(a, ha, `user:${i}`), { i })
      assert.equal(await get(a, ha, 'both'), 'b')
      // B sees them too before the invalidation.
      assert.deepEqual(await get(b, hb, 'user:3'), { i: 3 })

      await b.call('invalidateTags', { h: hb, tags: ['users'] })
      const invalidatedBy = Date.now() // B's stamp is at most this

      for (let i = 0; i < 5; i++) assert.equal(await get(a, ha, `user:${i}`), undefined, `user:${i} in A after B invalidated "users"`)
      assert.equal(await get(a, ha, 'both'), undefined, 'an entry with any invalidated tag is stale')
      assert.equal(await get(a, ha, 'order:1'), 'o1', 'another tag is untouched')
      assert.equal(await get(a, ha, 'plain'), 'p', 'an untagged entry is untouched')
      assert.equal(await get(b, hb, 'user:3'), undefined)

      // A value set after the invalidation is fresh, in A and in B. (Past the invalidation's
      // millisecond: a set within that same millisecond is the next test's subject.)
      while (Date.now() <= invalidatedBy) await delay(1)
      await a.call('set', { h: ha, key: 'user:0', value: { i: 0, v: 2 }, options: { tags: ['users'] } })
      assert.deepEqual(await get(a, ha, 'user:0'), { i: 0, v: 2 })
      assert.deepEqual(await get(b, hb, 'user:0'), { i: 0, v: 2 })
      assert.equal(await get(a, ha, 'user:1'), undefined, 'the other invalidated entries stay stale')

      const [sa, sb] = await Promise.all([a.call<StatsLike>('stats', { h: ha }), b.call<StatsLike>('stats', { h: hb })])
      assert.equal(sa.corrupt + sa.errors + sb.corrupt + sb.errors, 0)
    },
  )

  test(
    'process A’s memory tier stops serving an entry once process B invalidates its tag (within its ~5 ms window)',
    { timeout: 30_000 },
    async () => {
      const hm = await a.call<number>('open', { options: { dir, memory: true } })
      await a.call('set', { h: hm, key: 'cached:1', value: 'in memory', options: { tags: ['memo'] } })
      await a.call('set', { h: hm, key: 'cached:2', value: 'untagged' })
      assert.equal(await get(a, hm, 'cached:1'), 'in memory')
      const before = await a.call<StatsLike & { memoryHits: number }>('stats', { h: hm })
      assert.ok(before.memoryHits >= 1, 'the read was served from memory')

      await b.call('invalidateTags', { h: hb, tags: ['memo'] })
      await eventually(
        async () => (await get(a, hm, 'cached:1')) === undefined,
        'served from memory after another process invalidated its tag',
      )
      assert.equal(await get(a, hm, 'cached:2'), 'untagged')
      await a.call('close', { h: hm })
    },
  )

  test('a value that process A sets right after process B invalidated its tag is fresh, every time', { timeout: 30_000 }, async () => {
    // Each round: B's invalidation completes, then (one IPC hop later, often within the same
    // millisecond) A sets a tagged value and reads it back. The set happened after the
    // invalidation, so the read must hit.
    const ROUNDS = 40
    const stale: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const tag = `quick-${round % 4}`
      await b.call('invalidateTags', { h: hb, tags: [tag] })
      await a.call('set', { h: ha, key: `quick:${round}`, value: round, options: { tags: [tag] } })
      if ((await get(a, ha, `quick:${round}`)) !== round) stale.push(round)
    }
    assert.deepEqual(stale, [], `rounds whose freshly set value read as a miss (of ${ROUNDS})`)
  })
})
