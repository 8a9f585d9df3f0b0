import path from 'node:path'
import { closeQuietly } from './atomic-write.js'
import { ROTATE_BYTES, walkRecords } from './change-clock.js'
import { disk, READ_FLAGS } from './disk.js'
import type { Layout } from './layout.js'

/** More new log than this at once is not read: every key counts as changed. */
const READ_AT_MOST = 8 * 1024 * 1024
/** Keys remembered at most; past it, every key counts as changed for the marks outstanding. */
const KEYS_AT_MOST = 100_000

/** Where the log stood when a getOrSet load began: a place on the watch's scale when the log
 *  was the one it follows; otherwise which log (its inode; 0: none), its size, and the end of
 *  the scale then (a log first followed after that; an inode number seen before was reused). */
export type ChangeMark = { readonly at: number } | { readonly ino: number; readonly size: number; readonly after: number }

/** Logs (by inode) whose place on the scale is remembered, at most. */
const LOGS_AT_MOST = 16

export class ChangeWatch {
  readonly #file: string
  /** The log followed: its inode (0: none), an open descriptor on it, how far it was read,
   *  and where its byte 0 is on the scale. Not started: ino -1. */
  #ino = -1
  #fd: number | undefined
  #read = 0
  #base = 0
  /** The furthest position given or read. */
  #end = 0
  /** Where each recent log's byte 0 is on the scale (a mark names its log by inode). */
  readonly #bases = new Map<number, number>()
  /** The latest "everything" (a clear, or what could not be read), and each key's latest record. */
  #allAt = -1
  readonly #last = new Map<string, number>()
  /** Marks of loads not yet over (release()). */
  #open = 0
  /** A catch-up is reading: the state it reads into is not to be moved under it. */
  #busy = false
  #closed = false
  #chain: Promise<void> = Promise.resolve()

  constructor(layout: Layout) {
    this.#file = path.join(layout.metaDir, 'changes')
  }

  /** Where the log stands now; undefined when it cannot be looked at (asked later: changed). */
  mark(): ChangeMark | undefined {
    const now = this.#look()
    if (now === undefined) return undefined
    if (!this.#busy && this.#open === 0) {
      // Nobody asks about the past: follow from here, without reading what came before.
      if (now.ino !== this.#ino) this.#follow(now.ino, now.size)
      else this.#read = Math.max(this.#read, now.size)
    }
    this.#open++
    return now.ino === this.#ino ? { at: this.#base + now.size } : { ino: now.ino, size: now.size, after: this.#end }
  }

  /** A mark's load is over (asked or not): once none is left, nothing past is remembered. */
  release(mark: ChangeMark | undefined): void {
    if (mark === undefined) return
    this.#open = Math.max(0, this.#open - 1)
    if (this.#open === 0) this.#last.clear()
  }

  /** Whether `key` (or every key) was changed since `mark`. Never throws. */
  async changedSince(mark: ChangeMark | undefined, key: string): Promise<boolean> {
    if (mark === undefined || this.#closed) return true
    await (this.#chain = this.#chain.then(() => this.#catchUp()))
    if (this.#closed) {
      this.#release() // a catch-up that ran across close() may have opened it
      return true
    }
    let at: number | undefined
    if ('at' in mark) at = mark.at
    else {
      const base = this.#bases.get(mark.ino)
      if (base !== undefined && base > mark.after) at = base + mark.size
    }
    return at === undefined || this.#allAt > at || (this.#last.get(key) ?? -1) > at
  }

  /** Closes the log held open, for good: a question asked later (a load that outlived the
   *  cache's close) answers "changed" and opens nothing. */
  close(): void {
    this.#closed = true
    this.#release()
  }

  #release(): void {
    if (this.#fd !== undefined) closeQuietly(this.#fd)
    this.#fd = undefined
  }

  #look(): { ino: number; size: number } | undefined {
    try {
      const stat = disk.statSync(this.#file, { throwIfNoEntry: false })
      return stat === undefined ? { ino: 0, size: 0 } : { ino: stat.ino, size: stat.size }
    } catch {
      return undefined
    }
  }

  /** Every key counts as changed for the marks taken so far. */
  #everything(): void {
    this.#allAt = ++this.#end
    this.#last.clear()
  }

  /** Follows the log `ino` (0: none) from byte `from`, further on the scale than anything so far. */
  #follow(ino: number, from: number): void {
    this.#release()
    this.#ino = ino
    this.#read = from
    this.#base = ++this.#end
    this.#bases.delete(ino)
    this.#bases.set(ino, this.#base)
    if (this.#bases.size > LOGS_AT_MOST) this.#bases.delete(this.#bases.keys().next().value!)
    if (ino !== 0) this.#fd = this.#openLog(ino)
  }

  /** The log, opened as ChangeClock reads it (never through a link, never blocking), if it is
   *  still `ino`. */
  #openLog(ino: number): number | undefined {
    if (this.#closed) return undefined
    let fd: number
    try {
      fd = disk.openSync(this.#file, READ_FLAGS)
    } catch {
      return undefined // gone again: the next catch-up reads that as a change of everything
    }
    try {
      if (disk.fstatSync(fd).ino === ino) return fd
    } catch {
      // a failing disk: not followed through this descriptor
    }
    closeQuietly(fd)
    return undefined
  }

  /** Whether the log followed was removed (another file may have its inode number now). */
  #unlinked(): boolean {
    if (this.#fd === undefined) return false
    try {
      return disk.fstatSync(this.#fd).nlink === 0
    } catch {
      return true
    }
  }

  /** Reads what was appended since the last read, through a rotation if there was one. */
  async #catchUp(): Promise<void> {
    this.#busy = true
    try {
      const now = this.#look()
      if (now === undefined) return this.#everything()
      if (this.#ino === -1) return this.#follow(now.ino, now.size)
      if (now.ino === this.#ino && !this.#unlinked()) {
        if (now.size > this.#read) await this.#readHeld(now.size)
        else if (now.size < this.#read) {
          this.#everything() // shorter than what was read: not the log it was
          this.#follow(now.ino, now.size)
        }
        return
      }
      // Another log (or none) in the path's place. The one followed is read to its end through
      // the descriptor held; if it had reached the rotation size, the new one continues it and
      // is read from its start. A log where there was none is all news, from its start.
      let continues = this.#ino === 0
      if (this.#ino > 0 && this.#fd !== undefined) {
        try {
          const final = disk.fstatSync(this.#fd).size
          if (final > this.#read) await this.#readHeld(final)
          continues = final >= ROTATE_BYTES
        } catch {
          continues = false
        }
      }
      if (!continues) this.#everything()
      this.#follow(now.ino, continues ? 0 : now.size)
      if (continues && now.size > 0) await this.#readHeld(now.size)
    } finally {
      this.#busy = false
    }
  }

  /** The log's bytes [read, size) through the descriptor held: each key's latest position. */
  async #readHeld(size: number): Promise<void> {
    const fd = (this.#fd ??= this.#ino > 0 ? this.#openLog(this.#ino) : undefined)
    if (fd === undefined || size - this.#read > READ_AT_MOST) {
      this.#read = size
      return this.#everything()
    }
    const bytes = Buffer.allocUnsafe(size - this.#read)
    let done = 0
    try {
      while (done < bytes.length) {
        const n = await disk.readFd(fd, bytes, done, bytes.length - done, this.#read + done)
        if (n === 0) break
        done += n
      }
    } catch {
      this.#read = size
      return this.#everything()
    }
    const base = this.#base + this.#read
    const walked = walkRecords(bytes.subarray(0, done), (key, _at, end) => {
      if (key === undefined) this.#allAt = base + end
      else this.#last.set(key, base + end)
    })
    if (walked.bad) {
      this.#read = size
      return this.#everything()
    }
    // A record still being appended (its end not there yet) is read whole next time.
    this.#read += walked.end
    this.#end = Math.max(this.#end, base + walked.end)
    if (this.#last.size > KEYS_AT_MOST) this.#everything()
  }
}
