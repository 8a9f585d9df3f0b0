import path from 'node:path'
import { closeQuietly, openAppendSync, writeAllSync } from './atomic-write.js'
import { disk } from './disk.js'
import type { Layout } from './layout.js'
import type { OwnedTree } from './owned-tree.js'

const ONE_BYTE = Buffer.from([0x2e])
/** The log is removed (and recreated by the next write) once it has grown past this. */
const ROTATE_BYTES = 1024 * 1024
/** Its size is looked at once in this many appends. */
const ROTATE_CHECK_EVERY = 1024

/**
 * Whether any other process (or another instance in this one) has written to the namespace:
 * the signal a memory tier needs to know its values may be stale, at the cost of one `stat`.
 *
 * `<dir>/v1/<ns>/meta/changes` is a log every set, setStream, delete and clear, by any
 * process, appends one byte to once its disk write is done. O_APPEND makes each append
 * atomic and its size exact, so an instance that counts its own appends knows the size it
 * should find: any other size, another inode, or no file where there was one, means another
 * writer. Sizes, not mtimes, so no timestamp granularity is involved (see tag-clock.ts for
 * what that costs), and a reader never writes.
 *
 * The log is removed by the appender that finds it over 1 MiB, and recreated by the next
 * write; its disappearance reads as a change (one extra re-read for every memory tier).
 * A writer that finds no room to append (a full disk) removes it instead, for the same effect.
 * One host only: O_APPEND is not atomic across NFS clients, and their attribute caches may
 * answer the `stat` with an old size.
 */
export class ChangeClock {
  readonly #file: string
  readonly #tree: OwnedTree
  /** What the last look found: the log's inode and size (-1: no log). */
  #ino = 0
  #size = -1
  /** Bytes this instance appended since the last look. */
  #own = 0
  #appends = 0
  /** The log held open between appends, and which file it is (see #append). */
  #held: { fd: number; ino: number; dev: number } | undefined
  #closed = false

  constructor(layout: Layout) {
    this.#tree = layout.tree
    this.#file = path.join(layout.metaDir, 'changes')
    this.changedElsewhere() // the baseline: what was written before this instance opened is not news
  }

  /** Records that this instance wrote. Never throws: a write that happened must not fail for
   *  want of its signal, and the fallbacks make one anyway. */
  bump(): void {
    try {
      this.#append()
    } catch {
      this.#release()
      try {
        if (this.#tree.isRealSync(path.dirname(this.#file))) disk.unlinkSync(this.#file)
      } catch {
        // the disk is failing: readers will count it as a change when they cannot stat
      }
    }
  }

  /**
   * Whether anyone but this instance wrote since the last call (or since it opened). Sync and
   * never throws: a log that cannot be looked at counts as a change.
   */
  changedElsewhere(): boolean {
    let ino = 0
    let size = -1
    try {
      const stat = disk.statSync(this.#file, { throwIfNoEntry: false })
      if (stat !== undefined) {
        ino = stat.ino
        size = stat.size
      }
    } catch {
      this.#ino = 0
      this.#size = -1
      this.#own = 0
      return true
    }
    const expected = this.#own === 0 ? this.#size : this.#size < 0 ? -2 : this.#size + this.#own
    const changed = ino !== this.#ino || size !== expected
    this.#ino = ino
    this.#size = size
    this.#own = 0
    return changed
  }

  /**
   * One byte onto the log. The log is kept open between appends: an append is one `lstat` of
   * its path and one write, instead of a check of meta/, an open, an fstat, a write and a
   * close (2-3 % of a set). The lstat is what keeps the signal reaching readers, who look at
   * the path: when it no longer leads to the file held (removed by a rotation or a `clear()`,
   * replaced, or a link planted at it or above it), the held one is closed and the log opened
   * again as atomic-write.ts opens an append (in a checked meta/, never through a link). The
   * byte always goes into the file this instance opened that way, so nothing outside the
   * cache is ever written. A rotation or removal between the lstat and the write loses that
   * byte's signal, as it did between the open and the write; the removal itself reads as a
   * change.
   */
  #append(): void {
    const held = this.#held
    const found = held === undefined ? undefined : disk.lstatSync(this.#file, { throwIfNoEntry: false })
    let fd: number
    if (held !== undefined && found !== undefined && found.isFile() && found.ino === held.ino && found.dev === held.dev) fd = held.fd
    else {
      this.#release()
      fd = openAppendSync(this.#tree, this.#file)
      if (this.#closed) {
        try {
          this.#appendTo(fd)
        } finally {
          disk.closeSync(fd)
        }
        return
      }
      try {
        const stat = disk.fstatSync(fd)
        this.#held = { fd, ino: stat.ino, dev: stat.dev }
      } catch (error) {
        closeQuietly(fd)
        throw error
      }
    }
    this.#appendTo(fd)
  }

  /** The byte into the open log `fd`; the log removed once past ROTATE_BYTES. */
  #appendTo(fd: number): void {
    writeAllSync(fd, ONE_BYTE, this.#file)
    this.#own++
    if (this.#size < 0) {
      // There was no log at the last look: if it holds only our bytes, we created it and
      // nobody else wrote since, which is no news to this instance.
      const stat = disk.fstatSync(fd)
      if (stat.size === this.#own) {
        this.#ino = stat.ino
        this.#size = stat.size
        this.#own = 0
      }
    }
    if (++this.#appends % ROTATE_CHECK_EVERY === 0 && disk.fstatSync(fd).size > ROTATE_BYTES) {
      this.#release()
      disk.unlinkSync(this.#file)
    }
  }

  /** Closes the log held open, if any. */
  #release(): void {
    if (this.#held === undefined) return
    closeQuietly(this.#held.fd)
    this.#held = undefined
  }

  /** Closes the log held open; later appends (a write that outlived close()) open and close it. */
  close(): void {
    this.#closed = true
    this.#release()
  }
}
