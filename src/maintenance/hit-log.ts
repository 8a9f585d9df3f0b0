import path from 'node:path'
import { appendFileSafeSync } from '../store/atomic-write.js'
import type { Layout } from '../store/layout.js'
import type { OwnedTree } from '../store/owned-tree.js'
import { FlushTimer, type DiskGuard } from './flush-timer.js'

/**
 * Hit counts for the LFU policy, shared by every process and kept across restarts.
 *
 * Each instance counts hits per entry (by key hash) in memory and, at most once a second and
 * at close and exit, appends them to its own log, `meta/hits/<pid>.<nonce>.log`, as a line
 * `@<ms>` (when they were counted) and lines `<hash16> <count>\n`: one append per flush,
 * never a read-modify-write, so no lock. The pruning process sums every log with each count
 * weighed by its age (halved every `maintenance.lfuHalfLife`, an hour by default), evicts the
 * entries with the least, and compacts the logs into one (dropping entries that are gone), so
 * popularity fades with time unless it is renewed, at the same pace however often prunes run:
 * LFU with aging (see hit-counts.ts).
 *
 * The approximation: hits are counted per process and reach the logs within a second; hits
 * of a process killed before its flush are lost; a log appended to while a prune compacts it
 * may lose those few lines. Eviction order is by approximate frequency, which is all LFU
 * needs.
 */
const FLUSH_MS = 1000
/** A log this large is left for a new one of the process's, so that every log stays well
 *  under what the pruning process reads of one (hit-counts.ts LOG_LIMIT): a busy server
 *  logging 2,000 keys a second writes this much in about 6 minutes. */
export const LOG_ROTATE_BYTES = 16 * 1024 * 1024
let instances = 0

export class HitLog {
  readonly #tree: OwnedTree
  readonly #dir: string
  #file: string
  /** Bytes appended to #file (more than it holds once a prune has folded it: a new name early
   *  then, which costs nothing). */
  #appended = 0
  readonly #counts = new Map<string, number>()
  readonly #timer: FlushTimer
  readonly #rotateBytes: number

  /** `rotateBytes`: the size past which a new log is started (LOG_ROTATE_BYTES). */
  constructor(layout: Layout, guard?: DiskGuard, rotateBytes = LOG_ROTATE_BYTES) {
    this.#rotateBytes = rotateBytes
    this.#timer = new FlushTimer(FLUSH_MS, () => this.flush(), guard)
    this.#tree = layout.tree
    this.#dir = layout.hitsDir
    this.#file = this.#newName()
  }

  #newName(): string {
    return path.join(this.#dir, `${process.pid}.${Date.now().toString(36)}${(++instances).toString(36)}.log`)
  }

  hit(hash: string): void {
    this.#counts.set(hash, (this.#counts.get(hash) ?? 0) + 1)
    this.#timer.changed()
  }

  /** Appends the counts gathered since the last flush. Sync: also called from the exit hook. */
  flush(): void {
    this.#timer.flushing()
    if (this.#counts.size === 0) return
    let text = `@${Date.now()}\n`
    for (const [hash, count] of this.#counts) text += `${hash} ${count}\n`
    const bytes = Buffer.from(text)
    if (this.#appended > 0 && this.#appended + bytes.length > this.#rotateBytes) {
      this.#file = this.#newName()
      this.#appended = 0
    }
    appendFileSafeSync(this.#tree, this.#file, bytes)
    this.#appended += bytes.length
    this.#counts.clear()
  }

  stop(): void {
    this.#timer.cancel()
  }
}
