import path from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { disk } from '../store/disk.js'
import type { Layout } from '../store/layout.js'

/**
 * The budget an application opens the cache with, left in `meta/budget.json` so an operator's
 * `larder stats` can say how full the cache is, and `larder prune` can honour the same budget,
 * without being told it again. Written at open only when it changed: one small read per open.
 */
export interface RecordedBudget {
  maxSize?: number
  maxEntries?: number
  evictionPolicy?: string
}

export function budgetFile(layout: Layout): string {
  return path.join(layout.metaDir, 'budget.json')
}

export function recordBudget(layout: Layout, budget: RecordedBudget): void {
  const body = JSON.stringify(budget)
  const file = budgetFile(layout)
  try {
    if (disk.readFileSync(file, 'utf8') === body) return
  } catch {
    // not recorded yet
  }
  try {
    writeFileAtomicSync(layout.tree, file, Buffer.from(body))
  } catch {
    // a failing disk: the budget still applies to this process, just not recorded
  }
}

export function readBudget(layout: Layout): RecordedBudget | undefined {
  try {
    const value = JSON.parse(disk.readFileSync(budgetFile(layout), 'utf8')) as RecordedBudget
    const out: RecordedBudget = {}
    if (Number.isSafeInteger(value.maxSize)) out.maxSize = value.maxSize!
    if (Number.isSafeInteger(value.maxEntries)) out.maxEntries = value.maxEntries!
    if (typeof value.evictionPolicy === 'string') out.evictionPolicy = value.evictionPolicy
    return out
  } catch {
    return undefined
  }
}
