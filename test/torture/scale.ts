/**
 * Scale and reporting shared by the torture suite.
 *
 * `npm test` runs every torture file at reduced scale (a few seconds each); `npm run
 * test:torture` sets LARDER_TORTURE=full and runs them at full scale. Each test reports what
 * it tried and what survived with `record()`: a TAP diagnostic line always, and, when
 * LARDER_TORTURE_SUMMARY names a file (run.ts sets it), one JSON line appended to it, from
 * which run.ts prints the summary table at the end.
 */
import { appendFileSync } from 'node:fs'
import type { TestContext } from 'node:test'

export const FULL = process.env.LARDER_TORTURE === 'full'

/** `reduced` in the default test run, `full` under `npm run test:torture`. */
export function scale<T>(reduced: T, full: T): T {
  return FULL ? full : reduced
}

/** A seed for every random choice of a test: LARDER_TEST_SEED replays a run. */
export function seedFor(label: string): number {
  const base = process.env.LARDER_TEST_SEED
  if (base !== undefined) return Number(base)
  let h = Date.now() % 1_000_000
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) % 1_000_000_007
  return h
}

export interface SummaryRow {
  /** The area of issue #6: crash, corruption, faults, concurrency, model, bad input, hygiene. */
  area: string
  /** What was done, in a few words. */
  what: string
  /** How many times it was tried, and the unit ('kills', 'files', 'operations', …). */
  tried: number
  unit: string
  /** How many came out right (a passing test has survived === tried). */
  survived: number
  /** Anything else worth a glance: seeds, outcome mix. */
  note?: string
}

/** Reports a row of the summary table. Call it only after the test's assertions passed. */
export function record(t: TestContext, row: SummaryRow): void {
  t.diagnostic(`[torture] ${row.area} | ${row.what} | ${row.tried} ${row.unit} | ${row.survived} survived${row.note ? ` | ${row.note}` : ''}`)
  const file = process.env.LARDER_TORTURE_SUMMARY
  if (file) appendFileSync(file, JSON.stringify({ ...row, scale: FULL ? 'full' : 'reduced' }) + '\n')
}
