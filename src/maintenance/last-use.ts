import path from 'node:path'
import { disk } from '../store/disk.js'
import { rootAbove } from '../store/layout.js'
import { chainIsReal } from '../store/owned-tree.js'
import { FlushTimer, type DiskGuard } from './flush-timer.js'

/** Most hits remembered between flushes; past it they are flushed early (bounded memory). */
const MAX_PENDING = 10_000
/** A flush of at least this many hits goes to a maintenance worker (with one to hand): an
 *  lstat and an lutimes per file, ~14 µs a file here, would hold the event loop for 140 ms at
 *  MAX_PENDING. A smaller one is written at once, cheaper than a task. */
const BEHIND_FROM = 512

/** Writes a batch of remembered hits (`touchIfOlder` in a maintenance worker). */
export type TouchWriter = (files: string[], times: number[]) => Promise<unknown>

/**
 * When entries were last used, for the LRU policy and `maxAge`: the entry file's mtime (atime
 * is often off), refreshed by this process's disk hits.
 *
 * A `utimes` per hit would cost more than many reads, so refreshes are throttled by
 * `touchAfter` (default a minute): a hit on a file whose mtime is at least that old touches it
 * at once, unless a hit on it is remembered already (then its reader need not read the mtime:
 * `remembers`); a hit on a fresher file is remembered, with its time, and the remembered hits are
 * written together (each file set to its latest hit, never moved back) once per `touchAfter`,
 * before this process prunes, and at close and exit. So a hot entry costs one `utimes` per
 * `touchAfter`, and the fact that an entry was used after another is merged, never lost: a
 * prune in this process sees every hit this process made; one in another process sees them
 * within `touchAfter`. A large batch is written by a maintenance worker (`writer`), not on the
 * event loop; until the worker is done, the batch is kept, so close and exit write it if the
 * worker could not.
 *
 * While this process prunes, the first hit on each file touches it at once: eviction removes a
 * victim only if its mtime did not move since it was chosen, so a victim read meanwhile stays.
 */
export class LastUse {
  readonly #touchAfter: number
  readonly #guard: DiskGuard | undefined
  readonly #writer: TouchWriter | undefined
  /** File → time of its latest hit not yet written. */
  #pending = new Map<string, number>()
  /** The batch a worker is writing, and its end. */
  #sending: { batch: Map<string, number>; done: Promise<void> } | undefined
  readonly #timer: FlushTimer
  /** Files touched since the prune in progress in this process began, if one is. */
  #touchedInPrune: Set<string> | undefined

  constructor(touchAfter: number, guard?: DiskGuard, writer?: TouchWriter) {
    this.#touchAfter = touchAfter
    this.#guard = guard
    this.#writer = writer
    this.#timer = new FlushTimer(touchAfter, () => this.#flushSome(), guard)
    this.#timer.flushing() // the first merged touches are due a period after opening, not at once
  }

  /** Whether a hit on `file` since the last write of the remembered hits is remembered: its
   *  next hit is then remembered too, whatever its mtime, which the reader need not read. */
  remembers(file: string): boolean {
    return this.#pending.has(file)
  }

  /** Entries created before this time may have files unused for `touchAfter` at `now`: a
   *  hit on one needs its mtime to know whether to touch it at once (see `used`). A file's
   *  mtime is never earlier than its entry's creation (written after it, and moved forward
   *  only), so a younger entry's hit is remembered whatever its mtime, which need not be read.
   *  An entry stamped after a remote clock that runs ahead (CreationClock.observe) may be
   *  taken for younger than its file: its hit is then merged into the later touch, within
   *  `touchAfter`, as a recent file's is. */
  unusedBefore(now: number): number {
    return now - this.#touchAfter
  }

  /** A disk hit on `file`, whose mtime the read saw as `mtimeMs` (undefined: not read, the
   *  file being `remembers`'), at `now` (the reader's own clock read, when it made one: a
   *  clock read costs ~115 ns here). */
  used(file: string, mtimeMs: number | undefined, now = Date.now()): void {
    const pruning = this.#touchedInPrune
    if ((mtimeMs !== undefined && now - mtimeMs >= this.#touchAfter) || (pruning !== undefined && !pruning.has(file))) {
      this.#pending.delete(file)
      pruning?.add(file)
      touch(file, now, false)
      return
    }
    this.#pending.set(file, now)
    if (this.#pending.size >= (this.#sending === undefined ? MAX_PENDING : 2 * MAX_PENDING)) this.#run(() => this.#flushSome())
    else this.#timer.changed()
  }

  /** Writes every remembered hit, here and now, and the batch a worker may still be writing.
   *  Sync: also runs at exit. */
  flush(): void {
    this.#timer.flushing()
    if (this.#sending !== undefined) writeBatch(this.#sending.batch)
    writeBatch(this.#pending)
    this.#pending.clear()
  }

  /** This process starts a prune: what it remembers is written first (the worker's batch
   *  awaited), and hits touch at once until `pruneEnded`. */
  async pruneStarted(): Promise<void> {
    await this.settled()
    this.#run(() => this.flush())
    this.#touchedInPrune = new Set()
  }

  pruneEnded(): void {
    this.#touchedInPrune = undefined
  }

  /** Resolves once no batch is being written by a worker. */
  async settled(): Promise<void> {
    while (this.#sending !== undefined) await this.#sending.done
  }

  stop(): void {
    this.#timer.cancel()
  }

  /** A flush on the timer or at MAX_PENDING: a large one goes to the worker; while the worker
   *  writes a batch, hits wait for the next flush (written here only past 2 × MAX_PENDING, a
   *  worker that does not answer); a small one is written at once. */
  #flushSome(): void {
    this.#timer.flushing()
    if (this.#writer === undefined || this.#pending.size < BEHIND_FROM) {
      writeBatch(this.#pending)
      this.#pending.clear()
      return
    }
    if (this.#sending !== undefined) {
      if (this.#pending.size >= 2 * MAX_PENDING) {
        writeBatch(this.#pending)
        this.#pending.clear()
      }
      return
    }
    const batch = this.#pending
    this.#pending = new Map()
    const sending = { batch, done: Promise.resolve() }
    sending.done = this.#writer([...batch.keys()], [...batch.values()]).then(
      () => this.#sent(sending),
      // The worker could not write it (a thread that cannot start): written here instead.
      () => {
        this.#sent(sending)
        this.#run(() => writeBatch(batch))
      },
    )
    this.#sending = sending
  }

  #sent(sending: { batch: Map<string, number> }): void {
    if (this.#sending === sending) this.#sending = undefined
  }

  #run(step: () => void): void {
    if (this.#guard === undefined) step()
    else this.#guard(step)
  }
}

/**
 * Sets each file's mtime to its hit time unless it is already later (a newer write or touch
 * keeps its own), never through a link: `lutimes` does not follow the file's own name, and a
 * file below a directory that is not a real one (a link planted in place of a partition) is
 * left alone. Files that are gone or read-only are skipped: LRU order is a hint, not worth a
 * failure. Returns how many were touched. Runs on the event loop for small batches and in a
 * maintenance worker for large ones.
 */
export function touchIfOlder(files: readonly string[], times: readonly number[]): number {
  const real = new Map<string, boolean>()
  let touched = 0
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!
    const dir = path.dirname(file)
    let isReal = real.get(dir)
    if (isReal === undefined) real.set(dir, (isReal = chainIsReal(rootAbove(file, 4), dir)))
    if (!isReal) continue
    try {
      const stat = disk.lstatSync(file, { throwIfNoEntry: false })
      // One name only: a hard link at an entry's name is a file that is also elsewhere, and
      // its mtime is not ours to set.
      if (stat?.isFile() === true && stat.nlink === 1 && stat.mtimeMs < times[i]!) touched += touch(file, times[i]!, true) ? 1 : 0
    } catch {
      // gone or unreadable: skipped
    }
  }
  return touched
}

function writeBatch(batch: Map<string, number>): void {
  if (batch.size > 0) touchIfOlder([...batch.keys()], [...batch.values()])
}

/** Sets `file`'s mtime to `at`; `checked`: the caller has seen it is a file of one name in
 *  a real partition. */
function touch(file: string, at: number, checked: boolean): boolean {
  try {
    if (!checked) {
      // One name only: a hard link (a `cp -al` snapshot of the cache, or one planted) shares
      // its inode, and so its mtime, with a file outside the cache.
      const stat = disk.lstatSync(file, { throwIfNoEntry: false })
      if (stat?.isFile() !== true || stat.nlink !== 1) return false
      // A read goes by path, so a hit may have come through a link planted in place of the
      // partition or the namespace: lutimes spares only the file's own name, and the file the
      // link leads to, outside the cache, is not ours to touch.
      if (!chainIsReal(rootAbove(file, 4), path.dirname(file))) return false
    }
    disk.lutimesSync(file, at / 1000, at / 1000) // never through a link swapped in since the read
    return true
  } catch {
    // gone or read-only: LRU order is a hint, not worth a failure
    return false
  }
}
