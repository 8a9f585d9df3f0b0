import { randomBytes } from 'node:crypto'
import type fs from 'node:fs'
import path from 'node:path'
import { closeQuietly, openAppendSync, writeAllSync } from './atomic-write.js'
import { disk, errorCode, READ_FLAGS } from './disk.js'
import { check32 } from '../format/checksum.js'
import type { Layout } from './layout.js'
import { MAX_KEY_BYTES } from '../options.js'
import type { OwnedTree } from './owned-tree.js'

/** The log is removed (and recreated by the next write) once it has grown past this. */
export const ROTATE_BYTES = 4 * 1024 * 1024
/** Its size is looked at once in this many appends. */
const ROTATE_CHECK_EVERY = 1024
/** More new bytes than this at a look are not read: everything counts as changed. */
const READ_AT_MOST = 64 * 1024
/** The longest key a record can name, in UTF-16 code units: a valid key (at most MAX_KEY_BYTES
 *  of UTF-8) never has more units than bytes. */
const KEY_UNITS_AT_MOST = MAX_KEY_BYTES

/** Record kinds (the first byte of a record). The one-byte records of earlier larders are
 *  0x2e: like any byte not listed here, it reads as "everything changed". */
const KEY_RECORD = 0x6b // 'k' + writer id (8) + length in UTF-16 units (u16 LE) + the key, UTF-16LE + check (u32 LE)
const ALL_RECORD = 0x2a // '*' + writer id (8)
const HEAD_BYTES = 1 + 8
/** A key record ends with the xxhash32 of its bytes after the kind, so a parse that begins
 *  inside a record does not read made-up records (see #read). */
const CHECK_BYTES = 4

/** The top bit of a record's first writer-id byte: set in the record written after a change,
 *  clear in the one written before it (an instance's own id has it clear). Earlier larders,
 *  which read the id whole, see two writers naming the key, as they always did; their own
 *  records, whose ids have the bit at random, read here as both before (the key kept out of
 *  memory for a second: tiers/unsettled-changes.ts) or both after (as before). */
const AFTER_BIT = 0x80

/** What a look found written by others: nothing, these keys, or anything at all. */
export const EVERYTHING = Symbol('everything')
export type ChangesSeen = undefined | typeof EVERYTHING | ReadonlySet<string>

/** Told, record by record in log order, which changes of other writers a look found begun (the
 *  record before a change) and ended (the one after it): see tiers/unsettled-changes.ts.
 *  `writer` is the writer's id; `key` undefined is a change of everything (a clear, a prune by
 *  filter). */
export interface ChangeProgress {
  begun(writer: string, key: string | undefined): void
  ended(writer: string, key: string | undefined): void
}

/**
 * What other processes (or other instances in this one) have written to the namespace, by
 * key: what a memory tier needs to drop the values that may be stale, and only those, at the
 * cost of one `stat` when nothing happened.
 *
 * `<dir>/v1/<ns>/meta/changes` is a log every set, setStream, delete and clear, by any
 * process, appends a record to before its rename or unlink and again after it (see announce):
 * the key it changed (a clear: "everything"), the writer's random 64-bit id, so a reader skips
 * its own (its top bit set in the record after), and a check (see #read). Each record is one `write` with O_APPEND, which a local file system applies whole
 * at the end of the file (appenders never interleave), and the log's size is exact: an
 * instance that counts its own appended bytes knows the size it should find, so a look that
 * finds it costs one `stat` and reads nothing. Any other size means another writer, and the
 * new bytes (at most 64 KiB) are read and parsed; another file (inode and birth time), no file where there was one,
 * more than 64 KiB, or anything that does not parse or check out (a torn append on a full
 * disk, the one-byte records of an older larder) means everything may have changed. Sizes, not mtimes, so no timestamp granularity is
 * involved (see tag-clock.ts for what that costs). A reader never writes.
 *
 * The log is removed by the appender that finds it over 4 MiB, and recreated by the next
 * write; its disappearance reads as "everything" (one extra re-read for every memory tier).
 * A writer that finds no room to append (a full disk) removes it instead, for the same effect.
 * One host only: O_APPEND is not atomic across NFS clients, and their attribute caches may
 * answer the `stat` with an old size.
 */
export class ChangeClock {
  readonly #file: string
  readonly #tree: OwnedTree
  /** What the last look found: the log's inode and size (-1: no log). */
  #ino = 0
  /** And its birth time: a log removed and made again may get the same inode number (ext4
   *  hands a freed one out again at once), so the number alone cannot tell the new log from
   *  the old. Had it been taken for the old one grown, a look would have read it from the old
   *  one's size on, missing the changes before that: a memory tier serving values another
   *  process overwrote, for as long as it held them. */
  #born = 0
  #size = -1
  /** Bytes this instance appended since the last look. */
  #own = 0
  /** Appends since the size was last looked at; the first append of an instance looks too:
   *  short-lived writers (CLI runs, jobs) that never reach ROTATE_CHECK_EVERY appends each
   *  grew the log without a look, to 124 MiB over 40 runs. */
  #appends = ROTATE_CHECK_EVERY - 1
  /** The log held open between appends, and which file it is (see #append). */
  #held: { fd: number; ino: number; dev: number } | undefined
  #closed = false
  /** Records after changes, held for the end of this turn, and the promise their write
   *  resolves (see bumpSoon). */
  readonly #ends: Buffer[] = []
  #endsWritten: Promise<void> | undefined
  /** This instance's id in the records it appends (AFTER_BIT clear: see #record). */
  readonly #id = withoutAfterBit(randomBytes(8))

  constructor(layout: Layout) {
    this.#tree = layout.tree
    this.#file = path.join(layout.metaDir, 'changes')
    // The baseline: what was written before this instance opened is not news (and not read).
    const found = this.#look()
    if (found !== undefined) ({ ino: this.#ino, born: this.#born, size: this.#size } = found)
  }

  /** The log's inode, birth time and size (0, 0 and -1: no log); undefined when it cannot be
   *  looked at. (Where a file system keeps no birth time, Node gives 0 or the ctime: with the
   *  ctime, every append reads as a new log, which is everything: more re-reads, never less.) */
  #look(): { ino: number; born: number; size: number } | undefined {
    try {
      const stat = disk.statSync(this.#file, { throwIfNoEntry: false })
      return stat === undefined ? { ino: 0, born: 0, size: -1 } : { ino: stat.ino, born: stat.birthtimeMs, size: stat.size }
    } catch {
      return undefined
    }
  }

  /**
   * Records a change of `key` (none: of every key, a clear) about to be made: called before
   * the rename or unlink that makes it, and `bump` after. A writer killed between its change
   * and the bump after it (the rename is the dearest step of a set, so most kills land there)
   * has still told the readers, whose memory tiers would otherwise serve the old value until
   * the key changed again. The record after is still needed: a reader told by this one may
   * read the entry again before the change lands and hold that. So the two records differ
   * (AFTER_BIT), and a memory tier holds no value of a key read between the two: a writer
   * killed after its change and before the record after it never sends that record, and a
   * value read before the change would have been held for good (tiers/unsettled-changes.ts).
   *
   * Throws when neither the record nor the log's removal (which readers count as a change of
   * everything) could be made: the change must then not be made either, or no reader would
   * ever hear of it. The caller runs it inside its disk call, so that is a failed write.
   */
  announce(key?: string): void {
    this.#appendOrRemove(this.#afterEnds(this.#record(key, false)))
  }

  /** Appends `records`, or removes the log if they cannot be (see announce). */
  #appendOrRemove(records: Buffer): void {
    try {
      this.#append(records)
    } catch (error) {
      this.#release()
      if (!this.#tree.isRealSync(path.dirname(this.#file))) throw error
      try {
        disk.unlinkSync(this.#file)
      } catch (removal) {
        if ((removal as NodeJS.ErrnoException).code !== 'ENOENT') throw error // no log: readers see that as everything
      }
    }
  }

  /** Records that this instance wrote `key` (none: a change of every key, a clear), after
   *  `announce` before it. Never throws: a write that happened must not fail for want of its
   *  signal, and the fallbacks make one anyway. */
  bump(key?: string): void {
    this.#tryAppend(this.#afterEnds(this.#record(key, true)))
  }

  /**
   * As bump, for a change among others in flight: its record is held for the end of this turn
   * of the event loop, or for the next record written at once (which carries the held ones
   * first: a reader must not hear a change begun before an earlier one ended), so the records
   * after the changes that ended in the same turn go in one write: one lstat and one write for
   * all instead of one of each per change. Resolves once the record is in the log (or could not
   * be, as bump: never rejects), so a write that waits for it is done when its record after is.
   */
  bumpSoon(key?: string): Promise<void> {
    if (this.#closed) {
      this.bump(key)
      return Promise.resolve()
    }
    this.#ends.push(this.#record(key, true))
    this.#endsWritten ??= new Promise<void>((resolve) => setImmediate(this.#writeEnds, resolve))
    return this.#endsWritten
  }

  readonly #writeEnds = (written?: () => void): void => {
    this.#endsWritten = undefined
    if (this.#ends.length !== 0) this.#tryAppend(Buffer.concat(this.#ends.splice(0)))
    written?.()
  }

  /** `record`, after the records held by bumpSoon (which it takes) if any. */
  #afterEnds(record: Buffer): Buffer {
    return this.#ends.length === 0 ? record : Buffer.concat([...this.#ends.splice(0), record])
  }

  #tryAppend(records: Buffer): void {
    try {
      this.#appendOrRemove(records)
    } catch {
      // the disk is failing: readers will count it as a change when they cannot stat
    }
  }

  /** The record of a change of `key` (or of everything) by this instance, written before the
   *  change or `after` it. */
  #record(key: string | undefined, after: boolean): Buffer {
    if (key === undefined || key.length > KEY_UNITS_AT_MOST) {
      const record = Buffer.allocUnsafe(HEAD_BYTES)
      record[0] = ALL_RECORD
      this.#id.copy(record, 1)
      if (after) record[1]! |= AFTER_BIT
      return record
    }
    const checkAt = HEAD_BYTES + 2 + key.length * 2
    const record = Buffer.allocUnsafe(checkAt + CHECK_BYTES)
    record[0] = KEY_RECORD
    this.#id.copy(record, 1)
    if (after) record[1]! |= AFTER_BIT
    record.writeUInt16LE(key.length, HEAD_BYTES)
    record.write(key, HEAD_BYTES + 2, 'utf16le') // lossless for any string (UTF-8 is not for lone surrogates)
    record.writeUInt32LE(check32(record.subarray(1, checkAt)), checkAt)
    return record
  }

  /**
   * What anyone but this instance wrote since the last call (or since it opened): nothing
   * (`undefined`), the keys named, or EVERYTHING. Sync and never throws: a log that cannot be
   * looked at or read counts as a change of everything. `progress` is told of each record
   * read (a look that reads none, as after a rotation or past 64 KiB, tells it nothing: its
   * changes begun stay open until they time out).
   */
  changesElsewhere(progress?: ChangeProgress): ChangesSeen {
    const found = this.#look()
    if (found === undefined) {
      this.#ino = 0
      this.#born = 0
      this.#size = -1
      this.#own = 0
      return EVERYTHING
    }
    const { ino, born, size } = found
    const expected = this.#own === 0 ? this.#size : this.#size < 0 ? -2 : this.#size + this.#own
    const sameLog = ino === this.#ino && born === this.#born
    const from = this.#size
    this.#ino = ino
    this.#born = born
    this.#size = size
    this.#own = 0
    if (sameLog && size === expected) return undefined
    if (size < 0) return EVERYTHING // removed: rotated or cleared
    // The same log grown: what was appended since the last look. A log where there was none
    // then: all of it. Another file in the log's place: what it replaced is unknown.
    let start: number
    if (sameLog) start = from
    else if (from < 0) start = 0
    else return EVERYTHING
    if (size < start || size - start > READ_AT_MOST) return EVERYTHING
    return this.#read(ino, start, size, progress)
  }

  /**
   * The keys others changed in the log's bytes [start, end), or EVERYTHING. `start` is where
   * the last look's read ended, which is a record's end, except when that look found the log's
   * size in the middle of another writer's append: the kernel grows a file's size page by page
   * as a write copies, and a `stat` does not wait for the write, so a record that crosses a
   * page boundary can be seen half written. That look read a torn record (everything), and
   * this read begins inside it. Its check is what keeps such a parse from naming keys nobody
   * wrote (and missing the ones written): a record that does not check out is everything.
   */
  #read(ino: number, start: number, end: number, progress: ChangeProgress | undefined): ChangesSeen {
    let fd: number
    try {
      fd = disk.openSync(this.#file, READ_FLAGS)
    } catch {
      return EVERYTHING
    }
    try {
      const stat = disk.fstatSync(fd)
      if (!stat.isFile() || stat.ino !== ino) return EVERYTHING
      const bytes = Buffer.allocUnsafe(end - start)
      // One read of a local regular file returns all it was asked for; anything less is news
      // this look cannot judge.
      if (disk.readSync(fd, bytes, 0, bytes.length, start) !== bytes.length) return EVERYTHING
      return parseRecords(bytes, this.#id, progress)
    } catch {
      return EVERYTHING
    } finally {
      closeQuietly(fd)
    }
  }

  /**
   * A record onto the log. The log is kept open between appends: an append is one `lstat` of
   * its path and one write, instead of a check of meta/, an open, an fstat, a write and a
   * close (2-3 % of a set). The lstat is what keeps the signal reaching readers, who look at
   * the path: when it no longer leads to the file held (removed by a rotation or a `clear()`,
   * replaced, or a link planted at it or above it), the held one is closed and the log opened
   * again as atomic-write.ts opens an append (in a checked meta/, never through a link). The
   * record always goes into the file this instance opened that way, so nothing outside the
   * cache is ever written. A rotation or removal between the lstat and the write loses that
   * record's signal, as it did between the open and the write; the removal itself reads as a
   * change of everything.
   */
  #append(record: Buffer): void {
    const held = this.#held
    const found = held === undefined ? undefined : lstatIfThere(this.#file)
    let fd: number
    if (held !== undefined && found !== undefined && found.isFile() && found.ino === held.ino && found.dev === held.dev) fd = held.fd
    else {
      this.#release()
      fd = openAppendSync(this.#tree, this.#file)
      if (this.#closed) {
        try {
          this.#appendTo(fd, record)
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
    this.#appendTo(fd, record)
  }

  /** `record` onto the open log `fd`; the log removed once past ROTATE_BYTES. */
  #appendTo(fd: number, record: Buffer): void {
    writeAllSync(fd, record, this.#file)
    this.#own += record.length
    if (this.#size < 0) {
      // There was no log at the last look: if it holds only our bytes, we created it and
      // nobody else wrote since, which is no news to this instance.
      const stat = disk.fstatSync(fd)
      if (stat.size === this.#own) {
        this.#ino = stat.ino
        this.#born = stat.birthtimeMs
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
    this.#writeEnds()
    this.#release()
  }
}

/** `id` with AFTER_BIT cleared (in place). */
function withoutAfterBit(id: Buffer): Buffer {
  id[0]! &= ~AFTER_BIT
  return id
}

/** The keys named by records not written by `own` in `bytes` (whole records from the log),
 *  or EVERYTHING: an "everything" record of another writer, or anything that does not parse
 *  or check out. `progress` is told of each record of another writer that does. */
function parseRecords(bytes: Buffer, own: Buffer, progress: ChangeProgress | undefined): ChangesSeen {
  const keys = new Set<string>()
  let everything = false
  const walked = walkRecords(bytes, (key, at) => {
    const first = bytes[at + 1]!
    if ((first & ~AFTER_BIT) === own[0] && own.compare(bytes, at + 2, at + HEAD_BYTES, 1) === 0) return // this instance's own
    if (key === undefined) everything = true
    else keys.add(key)
    if (progress !== undefined) {
      const writer = String.fromCharCode(first & ~AFTER_BIT) + bytes.toString('latin1', at + 2, at + HEAD_BYTES)
      if ((first & AFTER_BIT) === 0) progress.begun(writer, key)
      else progress.ended(writer, key)
    }
  })
  if (everything || walked.end !== bytes.length) return EVERYTHING
  return keys.size === 0 ? undefined : keys
}

/**
 * Calls `visit` for each whole record at the start of `bytes`, in order: the key it names
 * (undefined: everything), where it starts and where it ends. Stops at the first record that
 * is not whole (`end` is where it begins; `bad` false: more bytes may complete it) or that does
 * not parse or check out (`bad` true).
 */
export function walkRecords(
  bytes: Buffer,
  visit: (key: string | undefined, at: number, end: number) => void,
): { end: number; bad: boolean } {
  let at = 0
  while (at < bytes.length) {
    const kind = bytes[at]
    if (kind !== ALL_RECORD && kind !== KEY_RECORD) return { end: at, bad: true }
    if (at + HEAD_BYTES > bytes.length) return { end: at, bad: false }
    if (kind === ALL_RECORD) {
      visit(undefined, at, at + HEAD_BYTES)
      at += HEAD_BYTES
      continue
    }
    if (at + HEAD_BYTES + 2 > bytes.length) return { end: at, bad: false }
    const length = bytes.readUInt16LE(at + HEAD_BYTES) * 2
    const keyAt = at + HEAD_BYTES + 2
    const checkAt = keyAt + length
    if (length > KEY_UNITS_AT_MOST * 2) return { end: at, bad: true }
    if (checkAt + CHECK_BYTES > bytes.length) return { end: at, bad: false }
    if (check32(bytes.subarray(at + 1, checkAt)) !== bytes.readUInt32LE(checkAt)) return { end: at, bad: true }
    visit(bytes.toString('utf16le', keyAt, checkAt), at, checkAt + CHECK_BYTES)
    at = checkAt + CHECK_BYTES
  }
  return { end: at, bad: false }
}

/** lstat of `file`, undefined when nothing is there: also when something planted above it is
 *  not a directory (ENOTDIR), which the open that follows repairs (openAppendSync checks the
 *  directories from the root down) rather than failing the change that appends. */
function lstatIfThere(file: string): fs.Stats | undefined {
  try {
    return disk.lstatSync(file, { throwIfNoEntry: false })
  } catch (error) {
    if (errorCode(error) === 'ENOTDIR') return undefined
    throw error
  }
}
