import os from 'node:os'
import path from 'node:path'
import { threadId } from 'node:worker_threads'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { disk, errorCode } from '../store/disk.js'
import { ForeignFileError, readSmallFileSync } from '../store/small-file.js'
import type { Layout } from '../store/layout.js'
import type { OwnedTree } from '../store/owned-tree.js'
import { crowded } from './crowding.js'
import { lockIsFresh, processExists } from './lock.js'
import { FlushTimer, type DiskGuard } from './flush-timer.js'

/**
 * How many entries and bytes a namespace holds, known without walking the tree, and kept
 * right while several processes write at once.
 *
 *   meta/totals/base                    {"epoch":E,"entries":N,"bytes":B,"at":T}  from the last full scan
 *   meta/totals/<epoch>.<pid>.<nonce>   {"entries":n,"bytes":b}  one writer's changes since that scan
 *
 * Each process adds what it writes and removes to its own counters and, at most every 250 ms
 * while it writes (and 250 ms after its last write, at close and at exit; see
 * flush-timer.ts), rewrites its own delta file: no file is ever written by two
 * processes, so no lock is needed. The totals are the base plus every delta of the base's
 * epoch or later: a handful of small files, read in well under a millisecond.
 *
 * A full scan (prune, verify) first bumps the epoch (the `epoch` file), so writers start new
 * delta files; it then writes a new base with what it counted, and deletes older deltas.
 * Writes made while the scan runs may be counted twice (by the scan and by a delta) or, for
 * the instant before a writer notices the new epoch, not at all; a writer's changes made in
 * the second before a scan but flushed after it began are counted twice. The totals can
 * drift by the writes of one scan's duration (plus a second), and the next scan corrects them. Racing writers that
 * both create the same key count it twice, until the next scan.
 *
 * "bytes" is the sum of entry file lengths (what the budget `maxSize` limits), not blocks.
 */
export interface Totals {
  entries: number
  bytes: number
}

interface Base extends Totals {
  epoch: number
  at: number
  /** A `clear()` wrote this base before moving its entries away, and has not finished (see
   *  cleared()): who runs it, and since when (`at`). */
  clearing?: ClearOwner
}

interface ClearOwner {
  pid: number
  host: string
}

/** A clear marked in progress this long (its moves take seconds at most) is taken as abandoned
 *  even when its owner cannot be judged (another host, or its pid taken by a new process). */
const CLEAR_ABANDONED_MS = 60_000

/** How often a writer's delta reaches its file: soon enough that processes see each other's
 *  writes (and a shared budget) within a quarter second; a flush costs ~50 µs. */
const FLUSH_MS = 250
/** Each instance's delta file has its own name. */
let instances = 0

/** A delta file's name after its epoch, unique among the process's threads too (compress-later's
 *  workers keep totals of their own, and may make theirs in the same millisecond as the main
 *  thread). */
function uniqueName(): string {
  return `${process.pid}.${Date.now().toString(36)}${(++instances).toString(36)}t${threadId.toString(36)}`
}

export class RunningTotals {
  readonly #layout: Layout
  readonly #dir: string
  readonly #tree: OwnedTree
  readonly #epochFile: string
  readonly #id = uniqueName()
  /** The name of the delta file of a scan's removals (removedByScan). */
  readonly #scanId = uniqueName()
  /** Changes since this instance's delta file was last rewritten. */
  #pending: Totals = { entries: 0, bytes: 0 }
  /** What this instance's delta file holds. */
  #flushed: Totals = { entries: 0, bytes: 0 }
  #flushedEpoch = -1
  readonly #timer: FlushTimer
  /** Sum of every process's files, as last read (see `estimate`). */
  #lastRead: Totals | undefined
  #lastReadAt = 0
  /** The epoch of this instance's clear in progress (see cleared()). */
  #clearing = -1
  /** The last read found a clear abandoned part way (see abandonedClear()). */
  #abandonedClear = false

  constructor(layout: Layout, guard?: DiskGuard) {
    this.#layout = layout
    this.#dir = layout.totalsDir
    this.#tree = layout.tree
    this.#epochFile = path.join(layout.totalsDir, 'epoch')
    this.#timer = new FlushTimer(FLUSH_MS, () => this.flush(), guard)
  }

  /** Records one entry written (`previousBytes` undefined when it is new) or removed. */
  written(bytes: number, previousBytes: number | undefined): void {
    if (previousBytes === undefined) this.#pending.entries++
    this.#pending.bytes += bytes - (previousBytes ?? 0)
    this.#timer.changed()
  }

  /** Records `entries` entry files (one by default) of `bytes` in all removed. */
  removed(bytes: number, entries = 1): void {
    this.#pending.entries -= entries
    this.#pending.bytes -= bytes
    this.#timer.changed()
  }

  /** The epoch now, and whether a full scan is counting the files: its epoch begun, its base
   *  not written yet, and the maintenance lock there and fresh (its holder refreshes it every
   *  few seconds: a scan killed part way leaves its epoch begun until another scan ends, and a
   *  lock that goes stale, see lock.ts). */
  scanState(): { epoch: number; scanning: boolean } {
    const epoch = this.#currentEpoch()
    const begun = epoch > (this.#readBase()?.epoch ?? 0)
    return { epoch, scanning: begun && lockIsFresh(this.#layout.lockDir) }
  }

  /**
   * `bytes` saved by an entry file rewritten smaller in `epoch` (compress-later's worker, with
   * an instance of its own), written at once: into this instance's file of that epoch while it
   * is still the current one. Once a scan has begun another, they are dropped: the scan counts
   * the file as it found it, compressed if it came after the rewrite (a file it counted plain
   * leaves the totals high, the safe way, until the next scan). Told any later, by the writer's
   * own flush, they landed in the new epoch's delta and were taken off twice: totals below the
   * disk, and a budget no longer kept.
   */
  savedIn(epoch: number, bytes: number): void {
    if (this.#currentEpoch() !== epoch || this.#layout.namespaceGone()) return
    // Written into that epoch's file by name, not flush()'s, which reads the epoch again: a
    // scan or clear begun between the two would have had the savings in its new epoch. Begun
    // after the look, it leaves this file an older epoch's, which no count reads (high, never low).
    const file = path.join(this.#dir, `${epoch}.${this.#id}`)
    if (epoch !== this.#flushedEpoch || !disk.lstatSync(file, { throwIfNoEntry: false })) this.#flushed = { entries: 0, bytes: 0 }
    const next = { entries: this.#flushed.entries, bytes: this.#flushed.bytes - bytes }
    writeFileAtomicSync(this.#tree, file, Buffer.from(JSON.stringify(next)))
    this.#flushed = next
    this.#flushedEpoch = epoch
  }

  /** Records entry files rewritten in place (rekey), `bytes` longer in all (negative: shorter). */
  resized(bytes: number): void {
    this.#pending.bytes += bytes
    this.#timer.changed()
  }

  /** The totals as every process's files say, plus this instance's unflushed changes. */
  read(): Totals & { scannedAt: number | undefined } {
    const base = this.#readBase()
    this.#abandonedClear = base !== undefined && isAbandoned(base)
    const sum = { entries: base?.entries ?? 0, bytes: base?.bytes ?? 0 }
    const epoch = base?.epoch ?? 0
    // Our current delta file is counted from memory (the file may lag by up to FLUSH_MS); our
    // files of earlier epochs (a scan began since we wrote them, and has not yet written its
    // base) are read like anyone else's.
    const ownName = `${this.#flushedEpoch}.${this.#id}`
    let ownFile = false
    for (const name of this.#names()) {
      const fileEpoch = Number(name.slice(0, name.indexOf('.')))
      if (!(fileEpoch >= epoch)) continue
      if (name === ownName) {
        ownFile = true
        continue
      }
      const delta = this.#readJson<Totals>(name)
      if (delta !== undefined) {
        sum.entries += delta.entries
        sum.bytes += delta.bytes
      }
    }
    // If our file is gone, another process folded it into the base (or the cache was
    // cleared): it no longer adds.
    if (ownFile) {
      sum.entries += this.#flushed.entries
      sum.bytes += this.#flushed.bytes
    }
    sum.entries += this.#pending.entries
    sum.bytes += this.#pending.bytes
    this.#lastRead = { entries: sum.entries - this.#pending.entries, bytes: sum.bytes - this.#pending.bytes }
    this.#lastReadAt = Date.now()
    return { entries: Math.max(0, sum.entries), bytes: Math.max(0, sum.bytes), scannedAt: base?.at }
  }

  /** What this instance last knew, without touching the disk: the last read (or, if it never
   *  read, its own flushed changes) plus its changes since. For a failing disk. */
  lastKnown(): Totals {
    const known = this.#lastRead ?? (this.#flushedEpoch >= 0 ? this.#flushed : { entries: 0, bytes: 0 })
    return { entries: Math.max(0, known.entries + this.#pending.entries), bytes: Math.max(0, known.bytes + this.#pending.bytes) }
  }

  /** A cheap estimate for the write path: the last read (at most a second old) plus our own changes since. */
  estimate(): Totals {
    if (this.#lastRead === undefined || Date.now() - this.#lastReadAt > FLUSH_MS) {
      try {
        return this.read()
      } catch {
        return { ...this.#pending }
      }
    }
    return { entries: this.#lastRead.entries + this.#pending.entries, bytes: this.#lastRead.bytes + this.#pending.bytes }
  }

  /** Writes this instance's delta file if it changed. Sync: also called from the exit hook.
   *  Not into a cache removed meanwhile (Layout.namespaceGone): the changes counted were of
   *  entries that went with it, and the write would make the removed directory again. */
  flush(): void {
    this.#timer.flushing()
    if (this.#pending.entries === 0 && this.#pending.bytes === 0) return
    if (this.#layout.namespaceGone()) {
      this.#pending = { entries: 0, bytes: 0 }
      this.#flushedEpoch = -1
      return
    }
    const epoch = this.#currentEpoch()
    const file = path.join(this.#dir, `${epoch}.${this.#id}`)
    if (epoch !== this.#flushedEpoch || (this.#flushedEpoch >= 0 && !disk.lstatSync(file, { throwIfNoEntry: false }))) {
      // A new epoch (a scan counted everything so far) or our file is gone (cache cleared):
      // what the old file held no longer applies; start again from the pending changes.
      this.#flushed = { entries: 0, bytes: 0 }
    }
    const next = { entries: this.#flushed.entries + this.#pending.entries, bytes: this.#flushed.bytes + this.#pending.bytes }
    writeFileAtomicSync(this.#tree, file, Buffer.from(JSON.stringify(next)))
    // The last read counted everything but the pending changes, which are in our file now: it
    // counts them from here, or `estimate` would lose them until the next read. (A write after
    // a quiet spell flushes at once: a write that took the cache over budget then estimated
    // it within, and started no prune; a 2 MB set just after stats() left it over for good.)
    if (this.#lastRead !== undefined) {
      this.#lastRead = { entries: this.#lastRead.entries + this.#pending.entries, bytes: this.#lastRead.bytes + this.#pending.bytes }
    }
    this.#flushed = next
    this.#flushedEpoch = epoch
    this.#pending = { entries: 0, bytes: 0 }
  }

  /** Stops the flush timer (after a final flush by the caller). */
  stop(): void {
    this.#timer.cancel()
  }

  // ── used by the process that holds the maintenance lock ─────────────────────

  /** Starts a full scan: writers move to a new epoch, so the scan's count can replace the old deltas. */
  beginScan(): number {
    // Our changes so far happened before the scan, which will count them: they go to the old epoch.
    this.flush()
    const epoch = this.#currentEpoch() + 1
    this.#write('epoch', String(epoch))
    return epoch
  }

  /**
   * What a full scan begun at `epoch` has removed so far (`removed`, all of it each time),
   * written at once into a delta file of the epoch before, which the totals count until the
   * scan writes its base (endScan deletes it with the other older deltas). A prune or verify
   * killed outright (SIGKILL, a crash) before its base then leaves the totals right but for the
   * batch in flight: it left them as they were before it, 3,000 entries counted over 100 on disk.
   * Its own name, never this instance's delta file, which read() counts from memory.
   */
  removedByScan(epoch: number, removed: Totals): void {
    const file = path.join(this.#dir, `${epoch - 1}.${this.#scanId}`)
    writeFileAtomicSync(this.#tree, file, Buffer.from(JSON.stringify({ entries: -removed.entries, bytes: -removed.bytes })))
  }

  /** Ends a full scan: its count becomes the base, and deltas of older epochs are deleted.
   *  A base of a newer epoch (a `clear()` during the scan) is never overwritten. */
  endScan(epoch: number, counted: Totals): void {
    this.flush()
    const current = this.#readBase()
    if (current !== undefined && current.epoch > epoch) return
    this.#write('base', JSON.stringify({ epoch, entries: counted.entries, bytes: counted.bytes, at: Date.now() } satisfies Base))
    for (const name of this.#names()) {
      const fileEpoch = Number(name.slice(0, name.indexOf('.')))
      if (fileEpoch < epoch) {
        try {
          disk.unlinkSync(path.join(this.#dir, name))
        } catch {
          // another scanner, or already gone
        }
      }
    }
    this.#lastRead = undefined
  }

  /**
   * As a `clear()` removes every entry: a new epoch whose base is zero, so every delta
   * written before (by any process) stops counting, and this instance's own pending and
   * flushed changes are dropped. Another process's changes not yet flushed when the clear
   * came still count once they are (a drift of at most its last FLUSH_MS of writes, which
   * the next scan corrects).
   *
   * Written before the clear moves the entries away (file-tier.ts says why), so the base says
   * the clear is in progress, and by whom, until clearEnded(): a clear killed part way leaves
   * the entries it did not move live and uncounted, and a budget judged against a zero would
   * go unenforced until the next scan (the hourly prune). The next instance that finds it so
   * (abandonedClear()) scans at once.
   */
  cleared(): void {
    this.#timer.cancel()
    const epoch = this.#currentEpoch() + 1
    this.#write('epoch', String(epoch))
    const clearing: ClearOwner = { pid: process.pid, host: os.hostname() }
    this.#write('base', JSON.stringify({ epoch, entries: 0, bytes: 0, at: Date.now(), clearing } satisfies Base))
    this.#clearing = epoch
    this.#pending = { entries: 0, bytes: 0 }
    this.#flushed = { entries: 0, bytes: 0 }
    this.#flushedEpoch = -1
    this.#lastRead = undefined
    for (const name of this.#names()) {
      if (Number(name.slice(0, name.indexOf('.'))) >= epoch) continue
      try {
        disk.unlinkSync(path.join(this.#dir, name))
      } catch {
        // another process's clear or scan took it
      }
    }
  }

  /** This instance's clear has moved every entry away: its base no longer says it is in
   *  progress (unless a scan or another clear has written a newer one since). */
  clearEnded(): void {
    const epoch = this.#clearing
    this.#clearing = -1
    const base = this.#readBase()
    if (base === undefined || base.epoch !== epoch || base.clearing?.pid !== process.pid) return
    const { clearing: _, ...settled } = base
    this.#write('base', JSON.stringify(settled))
  }

  /** Whether the totals were zeroed by a clear that was abandoned part way (its process died,
   *  or it failed): the entries it did not move are not counted, and only a scan counts them.
   *  Reads the base when `fresh`; otherwise what the last read found. */
  abandonedClear(fresh = false): boolean {
    if (fresh) {
      const base = this.#readBase()
      this.#abandonedClear = base !== undefined && isAbandoned(base)
    }
    return this.#abandonedClear
  }

  /** Whether delta files have piled up (see crowding.ts). */
  crowded(): boolean {
    return crowded(this.#dir)
  }

  /**
   * Folds every delta file into the base without a scan: the base becomes the totals as they
   * stand, and the folded files are deleted. Only under the maintenance lock. A live writer
   * whose file was folded finds it gone at its next flush and starts a new one from its
   * pending changes (as after a clear), so nothing is counted twice; a flush racing the fold
   * can be lost, a drift the next scan corrects.
   */
  fold(): void {
    this.flush()
    const base = this.#readBase()
    const epoch = base?.epoch ?? 0
    const next: Base = { epoch, entries: base?.entries ?? 0, bytes: base?.bytes ?? 0, at: base?.at ?? 0 }
    if (base?.clearing !== undefined) next.clearing = base.clearing // still in progress, or abandoned: a scan's to settle
    const folded: string[] = []
    for (const name of this.#names()) {
      const fileEpoch = Number(name.slice(0, name.indexOf('.')))
      if (fileEpoch >= epoch) {
        const delta = this.#readJson<Totals>(name)
        if (delta === undefined) continue
        next.entries += delta.entries
        next.bytes += delta.bytes
      }
      folded.push(name)
    }
    if (folded.length === 0) return
    this.#write('base', JSON.stringify(next))
    for (const name of folded) {
      try {
        disk.unlinkSync(path.join(this.#dir, name))
      } catch {
        // already gone
      }
    }
    // Our own file went too: what it held is in the base now.
    this.#flushed = { entries: 0, bytes: 0 }
    this.#lastRead = undefined
  }

  #currentEpoch(): number {
    try {
      const epoch = Number(readSmallFileSync(this.#epochFile) ?? 0)
      return Number.isSafeInteger(epoch) && epoch >= 0 ? epoch : 0
    } catch (error) {
      // Missing, or something foreign at its name or at the totals directory's (ENOTDIR: a
      // file where it belongs): the next write, through the owned tree, puts it right.
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR' || error instanceof ForeignFileError) return 0
      throw error
    }
  }

  #readBase(): Base | undefined {
    const base = this.#readJson<Base>('base')
    return base !== undefined && Number.isSafeInteger(base.epoch) ? base : undefined
  }

  /** Delta file names (`<epoch>.<pid>.<nonce>`). */
  #names(): string[] {
    try {
      return disk.readdirSync(this.#dir).filter((name) => /^\d+\.\d+\.[0-9a-z]+$/.test(name))
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return []
      throw error
    }
  }

  #readJson<T extends Totals>(name: string): T | undefined {
    try {
      const value = JSON.parse(readSmallFileSync(path.join(this.#dir, name)) ?? 'null') as T
      return Number.isFinite(value.entries) && Number.isFinite(value.bytes) ? value : undefined
    } catch {
      return undefined // gone since listed, or damaged: the next scan rewrites the totals
    }
  }

  #write(name: string, text: string): void {
    writeFileAtomicSync(this.#tree, path.join(this.#dir, name), Buffer.from(text))
  }
}

/** Whether `base` marks a clear in progress that nobody runs any more: its process is gone
 *  (this host's), or it has been in progress for longer than any clear takes. */
function isAbandoned(base: Base): boolean {
  const owner = base.clearing
  if (typeof owner !== 'object' || owner === null) return false
  if (Math.abs(Date.now() - base.at) > CLEAR_ABANDONED_MS) return true
  if (owner.host !== os.hostname() || !Number.isSafeInteger(owner.pid)) return false
  return owner.pid !== process.pid && !processExists(owner.pid)
}
