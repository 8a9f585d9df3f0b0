import { disk } from '../store/disk.js'
import { FlushTimer, type DiskGuard } from './flush-timer.js'

/** Most hits remembered between flushes; past it they are flushed early (bounded memory). */
const MAX_PENDING = 10_000

/**
 * When entries were last used, for the LRU policy and `maxAge`: the entry file's mtime (atime
 * is often off), refreshed by this process's disk hits.
 *
 * A `utimes` per hit would cost more than many reads, so refreshes are throttled by
 * `touchAfter` (default a minute): a hit on a file whose mtime is at least that old touches it
 * at once; a hit on a fresher file is remembered, with its time, and the remembered hits are
 * written together (each file set to its latest hit, never moved back) once per `touchAfter`,
 * before this process prunes, and at close and exit. So a hot entry costs one `utimes` per
 * `touchAfter`, and the fact that an entry was used after another is merged, never lost: a
 * prune in this process sees every hit this process made; one in another process sees them
 * within `touchAfter`.
 *
 * While this process prunes, the first hit on each file touches it at once: eviction removes a
 * victim only if its mtime did not move since it was chosen, so a victim read meanwhile stays.
 */
export class LastUse {
  readonly #touchAfter: number
  /** File → time of its latest hit not yet written. */
  readonly #pending = new Map<string, number>()
  readonly #timer: FlushTimer
  /** Files touched since the prune in progress in this process began, if one is. */
  #touchedInPrune: Set<string> | undefined

  constructor(touchAfter: number, guard?: DiskGuard) {
    this.#touchAfter = touchAfter
    this.#timer = new FlushTimer(touchAfter, () => this.flush(), guard)
    this.#timer.flushing() // the first merged touches are due a period after opening, not at once
  }

  /** A disk hit on `file`, whose mtime the read saw as `mtimeMs`. */
  used(file: string, mtimeMs: number): void {
    const now = Date.now()
    const pruning = this.#touchedInPrune
    if (now - mtimeMs >= this.#touchAfter || (pruning !== undefined && !pruning.has(file))) {
      this.#pending.delete(file)
      pruning?.add(file)
      touch(file, now)
      return
    }
    this.#pending.set(file, now)
    if (this.#pending.size >= MAX_PENDING) this.flush()
    else this.#timer.changed()
  }

  /** Writes every remembered hit. Sync: also runs at exit. */
  flush(): void {
    this.#timer.flushing()
    for (const [file, at] of this.#pending) {
      try {
        const stat = disk.lstatSync(file, { throwIfNoEntry: false })
        // A newer write (or touch) since the hit keeps its own, later time.
        if (stat?.isFile() === true && stat.mtimeMs < at) touch(file, at)
      } catch {
        // gone or read-only: LRU order is a hint, not worth a failure
      }
    }
    this.#pending.clear()
  }

  /** This process starts a prune: what it remembers is written first, and hits touch at once
   *  until `pruneEnded`. */
  pruneStarted(): void {
    this.flush()
    this.#touchedInPrune = new Set()
  }

  pruneEnded(): void {
    this.#touchedInPrune = undefined
  }

  stop(): void {
    this.#timer.cancel()
  }
}

function touch(file: string, at: number): void {
  try {
    disk.lutimesSync(file, at / 1000, at / 1000) // never through a link swapped in since the read
  } catch {
    // gone or read-only: LRU order is a hint, not worth a failure
  }
}
