/**
 * Several writer processes in a burst over one budget (maintenance/auto-prune.ts): the one
 * whose automatic prune holds the lock paces its writes to its workers, and the others, whose
 * prunes stand aside, must be slowed too, or the cache on disk grows with the burst (a review
 * saw 290 times the budget).
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { runChildScript, tempDir } from './helpers.ts'

const BUDGET = 256 * 1024

/** The bytes of the entry files under the namespace (not a clear's trash, not temp files). */
function onDisk(dir: string): number {
  const namespace = path.join(dir, 'v1', 'default')
  let bytes = 0
  let partitions: string[]
  try {
    partitions = fs.readdirSync(namespace).filter((name) => /^[0-9a-f]{2}$/.test(name))
  } catch {
    return 0
  }
  for (const partition of partitions) {
    let names: string[]
    try {
      names = fs.readdirSync(path.join(namespace, partition))
    } catch {
      continue
    }
    for (const name of names)
      if (/^[0-9a-f]{16}$/.test(name)) bytes += fs.statSync(path.join(namespace, partition, name), { throwIfNoEntry: false })?.size ?? 0
  }
  return bytes
}

// Before the writers that stood aside were paced: 17 MB at once here (67 budgets); after: ~2 MB.
test('three writer processes in a burst keep the cache on disk near its budget', async () => {
  const dir = tempDir()
  let most = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, onDisk(dir))
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })()
  const runs = await Promise.all(['a', 'b', 'c'].map((tag) => runChildScript('budget-writer.ts', [dir, '2000', tag], 120_000)))
  sampling = false
  await sampler
  for (const run of runs) assert.equal(run.code, 0, run.err)
  assert.ok(most < 20 * BUDGET, `at most ${(most / 1024).toFixed(0)} KiB on disk during the burst (budget ${BUDGET / 1024} KiB)`)
  assert.ok(onDisk(dir) <= BUDGET, 'within budget once the writers closed')
})
