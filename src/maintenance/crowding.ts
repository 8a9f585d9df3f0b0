import { disk } from '../store/disk.js'

/**
 * Per-process bookkeeping files (running-total deltas, activity records, LFU hit logs) are folded by every
 * prune. A cache that nobody prunes (no budget, short-lived processes) would still gain a few
 * files per process run forever, and reading the totals would slow with them; so opening a
 * cache sometimes looks, and folds them when they pile up. One open in 16 looks, so an open
 * rarely pays the readdir.
 */
export const MAX_BOOKKEEPING_FILES = 256
const LOOK_ONE_IN = 16

export function worthALook(): boolean {
  return Math.random() < 1 / LOOK_ONE_IN
}

export function crowded(dir: string): boolean {
  try {
    return disk.readdirSync(dir).length > MAX_BOOKKEEPING_FILES
  } catch {
    return false
  }
}
