/**
 * Scale and reporting shared by the torture suite.
 *
 * `npm test` runs every torture file at reduced scale (a few seconds each); `npm run
 * test:torture` sets LARDER_TORTURE=full and runs them at full scale. Each test counts, case
 * by case, what it tried and what came out right, and reports both with `record()`: a TAP
 * diagnostic line always, and, when LARDER_TORTURE_SUMMARY names a file (run.ts sets it), one
 * JSON line appended to it, from which run.ts prints the summary table at the end. `record()`
 * is called BEFORE a test's other assertions, so a failing case still leaves its row, and it
 * fails the test itself when anything tried did not survive: the table can show a failure,
 * and a failure cannot hide behind the table. A case that could not run here (a mount refused)
 * is reported with `recordSkipped()`, never as run.
 */
import assert from 'node:assert/strict'
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
  /** How many came out right, counted from what the test observed case by case: a case that
   *  served a wrong value, threw into the host, leaked or left damage does not count. */
  survived: number
  /** Anything else worth a glance: seeds, outcome mix. */
  note?: string
}

function append(row: object): void {
  const file = process.env.LARDER_TORTURE_SUMMARY
  if (file) appendFileSync(file, JSON.stringify({ ...row, scale: FULL ? 'full' : 'reduced' }) + '\n')
}

/**
 * Reports a row of the summary table, then fails the test if fewer survived than were tried
 * (`failures`: a few examples of what went wrong, for the message). Call it before the
 * test's other assertions.
 */
export function record(t: TestContext, row: SummaryRow, failures: readonly string[] = []): void {
  t.diagnostic(
    `[torture] ${row.area} | ${row.what} | ${row.tried} ${row.unit} | ${row.survived} survived${row.note ? ` | ${row.note}` : ''}`,
  )
  append(row)
  assert.ok(row.tried > 0, `${row.area} / ${row.what}: nothing was tried, so nothing was proved`)
  assert.equal(
    row.survived,
    row.tried,
    `${row.area} / ${row.what}: ${row.tried - row.survived} of ${row.tried} ${row.unit} did not survive${failures.length > 0 ? `; e.g.\n  ${failures.slice(0, 5).join('\n  ')}` : ''}`,
  )
}

/** Reports a case that could not run on this machine, and why; the test is marked skipped. */
export function recordSkipped(t: TestContext, row: { area: string; what: string; reason: string }): void {
  t.diagnostic(`[torture] ${row.area} | ${row.what} | skipped: ${row.reason}`)
  append({ ...row, skipped: true, tried: 0, survived: 0, unit: '' })
  t.skip(row.reason)
}
