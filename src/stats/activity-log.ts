import path from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { disk, errorCode, isForbidden } from '../store/disk.js'
import { readSmallFileSync } from '../store/small-file.js'
import type { Layout } from '../store/layout.js'
import type { OwnedTree } from '../store/owned-tree.js'
import type { BreakerState } from '../resilience/disk-breaker.js'
import { crowded } from '../maintenance/crowding.js'

/**
 * What processes did with a cache, kept after they are gone, for `larder stats` and
 * `cache.activity()`: hit and miss counts summed over every instance that ever closed, and
 * how the last one left its circuit breaker.
 *
 *   meta/activity/<pid>.<nonce>.json   one closed instance's counters, written once at close or exit
 *   meta/activity/total.json           the sum of records folded in by a prune (under its lock)
 *
 * An instance writes only its own file, once, so there is no lock and no read-modify-write;
 * only the process holding the maintenance lock rewrites `total.json`. The approximation: an
 * instance killed without an exit hook (SIGKILL) leaves no record, and a prune killed between
 * writing the total and deleting the records it folded counts those records twice. Records
 * are folded by every prune, and by an opening instance that finds more than 256 of them.
 */
/** What an instance counts: live in `stats()`, summed over closed instances in `activity()`. */
export interface ActivityCounters {
  hits: number
  misses: number
  /** Hits served by the memory tier (included in `hits`). */
  memoryHits: number
  sets: number
  deletes: number
  /** Reads that found an expired or tag-invalidated entry. */
  expired: number
  /** Entries found damaged, foreign or truncated: each read as a miss and was removed. */
  corrupt: number
  /** Operations that failed: the disk's, and Redis's. */
  errors: number
  /** Changes not made: a write, delete, tag stamp or clear the disk (or its open breaker)
   *  refused, a value a memory tier alone cannot hold, a change for Redis let go unsent
   *  (write-back's bound, held stamps' bound, still queued at close), a `setStream` close()
   *  gave up on or another instance's clear() overtook (no failure: not in `errors`), an
   *  `increment` whose read failed. */
  dropped: number
  bytesRead: number
  bytesWritten: number
}

export interface ActivityRecord extends ActivityCounters {
  pid: number
  openedAt: number
  closedAt: number
  breaker: BreakerState
}

export interface ActivityReport extends ActivityCounters {
  /** Instances recorded (each open → close of a cache in some process). */
  runs: number
  /** hits / (hits + misses); 0 before any read. */
  hitRate: number
  /** When the oldest recorded instance opened (ms since the epoch), if any. */
  since: number | undefined
  /** The most recently closed instance: when, which process, and its breaker's state then. */
  lastRun: { pid: number; openedAt: number; closedAt: number; breaker: BreakerState } | undefined
}

interface Total extends ActivityCounters {
  runs: number
  since: number | undefined
  lastRun: ActivityReport['lastRun']
}

const COUNTERS: readonly (keyof ActivityCounters)[] = [
  'hits',
  'misses',
  'memoryHits',
  'sets',
  'deletes',
  'expired',
  'corrupt',
  'errors',
  'dropped',
  'bytesRead',
  'bytesWritten',
]
const RECORD_NAME = /^\d+\.[0-9a-z]+\.json$/
let instances = 0

function zero(): Total {
  const t = { runs: 0, since: undefined, lastRun: undefined } as Total
  for (const c of COUNTERS) t[c] = 0
  return t
}

export class ActivityLog {
  readonly #layout: Layout
  readonly #dir: string
  readonly #tree: OwnedTree
  readonly #file: string
  readonly #openedAt = Date.now()
  #written = false

  constructor(layout: Layout) {
    this.#layout = layout
    this.#dir = layout.activityDir
    this.#tree = layout.tree
    this.#file = path.join(layout.activityDir, `${process.pid}.${Date.now().toString(36)}${(++instances).toString(36)}.json`)
  }

  /** Writes this instance's record, once; an instance that did nothing leaves none, nor one
   *  whose namespace directory is gone (the cache removed while it ran: a record is a hint for
   *  `larder stats`, not worth bringing a removed cache back at close or exit). Sync: runs at
   *  exit. */
  record(counters: ActivityCounters, breaker: BreakerState): void {
    if (this.#written) return
    this.#written = true
    if (counters.hits + counters.misses + counters.sets + counters.deletes + counters.errors + counters.dropped === 0) return
    if (this.#layout.namespaceGone()) return
    const record: ActivityRecord = { pid: process.pid, openedAt: this.#openedAt, closedAt: Date.now(), breaker, ...pick(counters) }
    writeFileAtomicSync(this.#tree, this.#file, Buffer.from(JSON.stringify(record)))
  }

  /** Whether the records have piled up (see maintenance/crowding.ts). */
  crowded(): boolean {
    return crowded(this.#dir)
  }

  /** The sum of the folded total and every record not yet folded. */
  read(): ActivityReport {
    const { total } = this.#gather()
    const reads = total.hits + total.misses
    return { ...total, hitRate: reads === 0 ? 0 : total.hits / reads }
  }

  /** Folds every record into `total.json` and deletes them. Only under the maintenance lock. */
  compact(): void {
    const { total, names } = this.#gather()
    if (names.length === 0) return
    writeFileAtomicSync(this.#tree, path.join(this.#dir, 'total.json'), Buffer.from(JSON.stringify(total)))
    for (const name of names) {
      try {
        disk.unlinkSync(path.join(this.#dir, name))
      } catch {
        // already gone
      }
    }
  }

  #gather(): { total: Total; names: string[] } {
    const total = { ...zero(), ...(this.#readJson<Total>('total.json') ?? {}) }
    let names: string[]
    try {
      names = disk.readdirSync(this.#dir).filter((n) => RECORD_NAME.test(n))
    } catch (error) {
      // Gone, or another user's (mode 000): what the records there held cannot be counted,
      // and that is no reason to fail `activity()` or a prune's compaction.
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR' || isForbidden(error)) return { total, names: [] }
      throw error
    }
    const folded: string[] = []
    for (const name of names) {
      const r = this.#readJson<ActivityRecord>(name)
      if (r === undefined) continue
      folded.push(name)
      total.runs++
      for (const c of COUNTERS) total[c] += Number.isFinite(r[c]) ? r[c] : 0
      if (total.since === undefined || r.openedAt < total.since) total.since = r.openedAt
      if (total.lastRun === undefined || r.closedAt > total.lastRun.closedAt) {
        total.lastRun = { pid: r.pid, openedAt: r.openedAt, closedAt: r.closedAt, breaker: r.breaker }
      }
    }
    return { total, names: folded }
  }

  #readJson<T>(name: string): T | undefined {
    try {
      const value = JSON.parse(readSmallFileSync(path.join(this.#dir, name)) ?? 'null') as unknown
      return typeof value === 'object' && value !== null ? (value as T) : undefined
    } catch {
      return undefined // missing, half-written by a crashed writer, or not ours
    }
  }
}

function pick(counters: ActivityCounters): ActivityCounters {
  const out = {} as ActivityCounters
  for (const c of COUNTERS) out[c] = counters[c]
  return out
}
