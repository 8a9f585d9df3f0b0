/**
 * The automatic prune's run (maintenance/auto-prune.ts): a write that comes while a pass runs
 * is left to that run, so a pass that freed nothing must still look for it. The race (a write
 * renamed into a partition the pass had already scanned) cannot be made on demand with real
 * workers, so the run is driven here by a scripted pass and scripted totals: what is tested
 * is the run's decisions, given what a pass and the totals report.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AutoPrune, type AutoPruneParts } from '../src/maintenance/auto-prune.ts'
import { emptyPruneReport, type PruneReport } from '../src/maintenance/maintainer.ts'

const BUDGET = 1000

function report(over: Partial<PruneReport> = {}): PruneReport {
  return { ...emptyPruneReport(false), ...over }
}

/** An AutoPrune over a budget of BUDGET bytes whose passes run `pass` (given the run and the
 *  totals to change); the bytes the totals report at each pass. */
function scripted(pass: (n: number, auto: AutoPrune, totals: { bytes: number }) => PruneReport): {
  auto: AutoPrune
  passes: number[]
} {
  const totals = { bytes: BUDGET + 100 }
  const passes: number[] = []
  const parts = {
    options: { maintenance: { auto: true, interval: 0 }, maxSize: BUDGET },
    maintainer: {
      // A pass takes time (its scan runs in workers): the write below comes while it runs.
      prune: async () => {
        passes.push(totals.bytes)
        await new Promise((resolve) => setImmediate(resolve))
        return pass(passes.length, auto, totals)
      },
    },
    totals: {
      estimate: () => ({ entries: 0, bytes: totals.bytes }),
      read: () => ({ entries: 0, bytes: totals.bytes, scannedAt: undefined }),
    },
    pruned: () => {},
    failed: (error: Error) => {
      throw error
    },
  } as unknown as AutoPruneParts
  const auto: AutoPrune = new AutoPrune(parts)
  return { auto, passes }
}

test('a pass that freed nothing while a write came: the run prunes again, and ends within budget', async () => {
  const { auto, passes } = scripted((n, run, totals) => {
    if (n === 1) {
      // The scan saw the cache within budget; a write lands meanwhile and takes it over.
      totals.bytes = BUDGET + 200
      void run.afterWrite()
      return report()
    }
    totals.bytes = BUDGET - 100
    return report({ evicted: 1, freedBytes: 300 })
  })
  auto.start()
  await auto.close()
  assert.deepEqual(passes, [BUDGET + 100, BUDGET + 200], 'a second pass for the write the first one missed')
})

test('a pass that freed nothing with no write meanwhile ends the run (every victim in use: no loop)', async () => {
  const { auto, passes } = scripted(() => report())
  auto.start()
  await auto.close()
  assert.equal(passes.length, 1)
})

test(
  'a burst of awaited small sets over maxSize: the run keeps pace during the burst, not only after it',
  { timeout: 120_000 },
  async () => {
    const { Larder } = await import('../src/index.ts')
    const { tempDir, entryFiles } = await import('./helpers.ts')
    const fs = await import('node:fs')
    const dir = tempDir()
    const budget = 256 * 1024
    const cache = await Larder.open({ dir, maxSize: budget, compression: 'none' })
    const value = 'x'.repeat(6000)
    const sets = 3000
    let most = 0
    const onDisk = (): number => entryFiles(dir).reduce((sum, file) => sum + (fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0), 0)
    for (let i = 0; i < sets; i++) {
      await cache.set(`k${i}`, value)
      if (i % 250 === 249) most = Math.max(most, onDisk())
    }
    const written = sets * 6000
    await cache.close()
    // Without a turn of the event loop per write, no eviction landed before the loop ended: the
    // disk held every value written (18 MB against a 256 KiB budget).
    assert.ok(most < written / 2, `at most ${most} bytes on disk during the burst, of ${written} written`)
    assert.ok(onDisk() <= budget, 'within budget once closed')
  },
)

test('writes over budget while another process holds the lock: spaced by the overshoot, in order, none waiting over a second', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 })
  const totals = { bytes: BUDGET * 50 } // 50 budgets' worth: 50 ms between writes
  const parts = {
    options: { maintenance: { auto: true, interval: 0 }, maxSize: BUDGET },
    // the lock is always held elsewhere, by a prune
    maintainer: { prune: () => Promise.resolve(report({ skipped: true })), lockHeldToEvict: () => true },
    totals: {
      estimate: () => ({ entries: 0, bytes: totals.bytes }),
      read: () => ({ entries: 0, bytes: totals.bytes, scannedAt: undefined }),
      abandonedClear: () => false,
    },
    pruned: () => {},
    failed: (error: Error) => {
      throw error
    },
  } as unknown as AutoPruneParts
  const auto = new AutoPrune(parts)
  auto.start()
  await new Promise((resolve) => setImmediate(resolve)) // the run found the lock held: it stands aside
  const waited: number[] = []
  const start = Date.now()
  const writes = Array.from({ length: 40 }, () => auto.afterWrite()!.then(() => waited.push(Date.now() - start)))
  for (let ms = 0; ms < 1000; ms += 10) {
    t.mock.timers.tick(10)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await Promise.all(writes)
  assert.deepEqual(waited.slice(0, 3), [50, 100, 150], 'spaced 50 ms apart, in call order')
  assert.equal(Math.max(...waited), 1000, 'the 40th (2 s away at that spacing) waits a second')
  totals.bytes = 0 // within budget: the run ends at its next try
  t.mock.timers.tick(250)
  await auto.close()
  t.mock.timers.reset()
})

test('writes over budget while the lock is held for work that evicts nothing (verify, rekey): not paced, and paced again once a prune holds it', async () => {
  let holderEvicts = false
  const parts = {
    options: { maintenance: { auto: true, interval: 0 }, maxSize: BUDGET },
    maintainer: { prune: () => Promise.resolve(report({ skipped: true })), lockHeldToEvict: () => holderEvicts },
    totals: {
      estimate: () => ({ entries: 0, bytes: BUDGET * 200 }), // 200 budgets' worth: 100 ms between writes if paced
      read: () => ({ entries: 0, bytes: BUDGET * 200, scannedAt: undefined }),
      abandonedClear: () => false,
    },
    pruned: () => {},
    failed: (error: Error) => {
      throw error
    },
  } as unknown as AutoPruneParts
  const auto = new AutoPrune(parts)
  auto.start()
  await new Promise((resolve) => setImmediate(resolve)) // the run found the lock held by a verify: it stands aside
  for (let i = 0; i < 100; i++) assert.equal(auto.afterWrite(), undefined, 'the write goes on at once')
  holderEvicts = true // the verify ended and another process's prune took the lock
  await new Promise((resolve) => setTimeout(resolve, 300)) // the run's next try finds it
  const paced = auto.afterWrite()
  assert.ok(paced !== undefined, 'paced again')
  await paced
  parts.options.maxSize = undefined // no budget: the run ends at its next try
  await auto.close()
})
