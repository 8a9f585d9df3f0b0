import path from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { readSmallFileSync } from '../store/small-file.js'
import type { Layout } from '../store/layout.js'

/**
 * The budget of the last open of the cache (by any process, with or without a budget), left
 * in `meta/budget.json` so an operator's `larder stats` can say how full the cache is, and
 * `larder prune` can honour the same budget, without being told it again. An open without a
 * budget records that too (`null`s), so a budget the application dropped is not enforced by
 * the CLI forever. Written only when it changed (one small read per open), with the time it
 * changed; read-only opens record nothing.
 */
export interface RecordedBudget {
  maxSize?: number
  maxEntries?: number
  evictionPolicy?: string
  /** When an open last changed the record (ms since the epoch); absent in older records. */
  recordedAt?: number
}

export function budgetFile(layout: Layout): string {
  return path.join(layout.metaDir, 'budget.json')
}

export function recordBudget(layout: Layout, budget: RecordedBudget): void {
  const fields = { maxSize: budget.maxSize ?? null, maxEntries: budget.maxEntries ?? null, evictionPolicy: budget.evictionPolicy ?? null }
  const file = budgetFile(layout)
  try {
    const recorded = JSON.parse(readSmallFileSync(file) ?? 'null') as Record<string, unknown>
    if (
      recorded.maxSize === fields.maxSize &&
      recorded.maxEntries === fields.maxEntries &&
      recorded.evictionPolicy === fields.evictionPolicy
    )
      return
  } catch {
    // not recorded yet, or damaged: write it
  }
  const body = JSON.stringify({ ...fields, recordedAt: Date.now() })
  try {
    writeFileAtomicSync(layout.tree, file, Buffer.from(body))
  } catch {
    // a failing disk: the budget still applies to this process, just not recorded
  }
}

/** The recorded budget (fields absent where it records none), or undefined if nothing was
 *  ever recorded. */
export function readBudget(layout: Layout): RecordedBudget | undefined {
  try {
    const value = JSON.parse(readSmallFileSync(budgetFile(layout)) ?? 'null') as RecordedBudget
    const out: RecordedBudget = {}
    if (Number.isSafeInteger(value.maxSize)) out.maxSize = value.maxSize!
    if (Number.isSafeInteger(value.maxEntries)) out.maxEntries = value.maxEntries!
    if (typeof value.evictionPolicy === 'string') out.evictionPolicy = value.evictionPolicy
    if (Number.isFinite(value.recordedAt)) out.recordedAt = value.recordedAt!
    return out
  } catch {
    return undefined
  }
}
