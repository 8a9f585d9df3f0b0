import fs from 'node:fs'
import path from 'node:path'
import { hasher } from '../format/checksum.js'
import {
  CorruptEntryError,
  decodeHead,
  decodeTrailer,
  HEADER_BYTES,
  headLength,
  TRAILER_BYTES,
  type EntryHead,
} from '../format/entry-format.js'
// READ_FLAGS: never through a link, and never waiting (a FIFO planted where an entry belongs
// would hold the worker, so a scan, `larder stats` or Ctrl-C never ends): the fstat judges it.
import { entryReadFlags, errorCode, isForbidden, refusedNoAtime } from '../store/disk.js'
import { removeTaken, takeIfSame } from '../store/take-aside.js'
import { rootAbove } from '../store/layout.js'
import { chainIsReal } from '../store/owned-tree.js'
import { readFloor, readStamp, type HeldStamps } from '../store/tag-clock.js'

/**
 * File-level steps of maintenance, run inside worker threads with synchronous calls (a
 * worker has no event loop to keep responsive, and a sync syscall costs a few µs where a
 * pooled async one costs tens). Nothing here runs on the main thread.
 */

/** First read of an entry: header, key and tags of almost every entry fit. */
const HEAD_READ = 4096
const VERIFY_CHUNK = 1024 * 1024

export interface EntryFacts {
  head: EntryHead
  size: number
  mtimeMs: number
  ino: number
  /** The serialized value's length before compression; read only when asked for. */
  logicalLength?: number
  /** The grace (ms) the trailer records; read only when asked for. */
  grace?: number
}

/** The names in one partition directory; none if it is missing, not a directory, reached
 *  through a link (`v1/`, the namespace or the partition replaced by one: what a scan lists,
 *  it may remove, so it never lists outside the cache) or not ours to read (another user's,
 *  mode 000: one foreign partition must not stop the maintenance of all the others). */
export function listPartition(dir: string): string[] {
  if (!chainIsReal(rootAbove(dir, 3), dir)) return []
  try {
    return fs.readdirSync(dir)
  } catch (error) {
    const code = errorCode(error)
    if (code === 'ENOENT' || code === 'ENOTDIR' || isForbidden(error)) return []
    throw error
  }
}

/**
 * An entry file opened to be judged. While its handle is open the file's inode cannot be
 * freed and handed to a new file, so `remove()` removes exactly the file that was read (or
 * nothing): a writer that renamed a fresh entry into its place meanwhile keeps that entry.
 * An `lstat` after the judgement would name whatever is at the path by then.
 */
export class JudgedFile {
  /** undefined: a symlink or a socket in an entry's place, or a file we may not read, judged
   *  by `lstat` and never opened. */
  readonly fd: number | undefined
  readonly stat: fs.Stats
  readonly file: string

  constructor(file: string, fd: number | undefined, stat: fs.Stats) {
    this.file = file
    this.fd = fd
    this.stat = stat
  }

  /** Removes the file if it is still the judged inode (and, given `mtimeMs`, unused since).
   *  Returns the bytes freed, or undefined if nothing was removed. */
  remove(mtimeMs?: number): number | undefined {
    return removeIfSame(this.file, this.stat.ino, mtimeMs)
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd)
  }
}

/** Opens an entry file to judge it, never following a symlink; undefined if it vanished. */
export function openJudged(file: string): JudgedFile | undefined {
  let fd: number
  const flags = entryReadFlags()
  try {
    fd = fs.openSync(file, flags)
  } catch (error) {
    if (refusedNoAtime(error, flags)) return openJudged(file)
    const code = errorCode(error)
    if (code === 'ENOENT') return undefined
    if (code !== 'ELOOP' && code !== 'ENXIO' && !isForbidden(error)) throw error
    // A symlink (or a socket, which no open reaches, or a file another user's mode keeps
    // from us): its own inode is what was judged (lstat names the link, not its target).
    const link = fs.lstatSync(file, { throwIfNoEntry: false })
    return link === undefined ? undefined : new JudgedFile(file, undefined, link)
  }
  try {
    return new JudgedFile(file, fd, fs.fstatSync(fd))
  } catch (error) {
    fs.closeSync(fd)
    throw error
  }
}

/** Why an entry that was not opened is no entry we can read. */
function unopenedReason(stat: fs.Stats): string {
  if (stat.isSymbolicLink()) return 'a symlink in place of an entry'
  return stat.isFile() ? 'unreadable (permission denied)' : 'not a regular file'
}

/** Throws CorruptEntryError unless the judged file is a regular file that could be read. */
function readableFd(entry: JudgedFile): number {
  if (entry.fd === undefined) throw new CorruptEntryError(unopenedReason(entry.stat))
  if (!entry.stat.isFile()) throw new CorruptEntryError('not a regular file')
  return entry.fd
}

/** Whether to read the trailer too: always, never, or as the head says (the scan reads an
 *  expired entry's grace only). */
export type WithTrailer = boolean | ((head: EntryHead) => boolean)

/**
 * Parses an opened entry's head (not its payload: the checksum is `verify`'s job), and with
 * `withTrailer` (or when it says so of the head) its trailer's lengths and grace too. Throws
 * CorruptEntryError for anything that is not an entry.
 */
export function readHead(entry: JudgedFile, buffer: Buffer, withTrailer: WithTrailer = false): EntryFacts {
  const fd = readableFd(entry)
  const { size, mtimeMs, ino } = entry.stat
  let bytes = buffer.subarray(0, fs.readSync(fd, buffer, 0, Math.min(buffer.length, size), 0))
  let head = decodeHead(bytes, size)
  if (head === undefined) {
    // Key and tags longer than the first read; decodeHead bounded them by the file size.
    const need = headLength(bytes)
    bytes = Buffer.allocUnsafe(need)
    head = decodeHead(bytes.subarray(0, fs.readSync(fd, bytes, 0, need, 0)), size)
    if (head === undefined) throw new CorruptEntryError('file shorter than its metadata')
  }
  const facts: EntryFacts = { head, size, mtimeMs, ino }
  if (withTrailer === true || (withTrailer !== false && withTrailer(head))) {
    // Most entries fit in the first read, trailer included.
    let trailer = bytes.length === size ? bytes.subarray(size - TRAILER_BYTES) : undefined
    if (trailer === undefined) {
      trailer = Buffer.allocUnsafe(TRAILER_BYTES)
      fs.readSync(fd, trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES)
    }
    const fields = decodeTrailer(trailer, size, head.payloadOffset)
    facts.logicalLength = fields.logicalLength
    facts.grace = fields.grace
  }
  return facts
}

/**
 * Opens an entry and parses its head (see `readHead`): for walks that remove nothing.
 * undefined if it vanished; throws CorruptEntryError for anything that is not an entry.
 */
export function readEntryHead(file: string, buffer: Buffer, withTrailer: WithTrailer = false): EntryFacts | undefined {
  const entry = openJudged(file)
  if (entry === undefined) return undefined
  try {
    return readHead(entry, buffer, withTrailer)
  } finally {
    entry.close()
  }
}

export function headBuffer(): Buffer {
  return Buffer.allocUnsafe(HEAD_READ)
}

/**
 * Checks every byte of an opened entry against its checksum, reading in 1 MiB chunks (bounded
 * memory whatever the entry's size; no decompression). Returns its size and key; throws
 * CorruptEntryError if it is not a whole, valid entry; undefined if `stop()` said to stop
 * before the end (checked between chunks, so a huge entry does not hold up a cancellation).
 */
export function verifyEntry(entry: JudgedFile, buffer: Buffer, stop: () => boolean): { size: number; key: string } | undefined {
  const fd = readableFd(entry)
  const size = entry.stat.size
  if (size < HEADER_BYTES + TRAILER_BYTES) throw new CorruptEntryError(`file of ${size} bytes is shorter than an empty entry`)
  // The head and trailer are judged before a byte is hashed, as a read judges them: a file
  // extended or planted (a sparse file of terabytes takes a few KiB of disk) is found corrupt
  // at once, instead of after hashing every byte it claims.
  const head = readWholeHead(fd, size)
  const trailer = Buffer.allocUnsafe(TRAILER_BYTES)
  if (fs.readSync(fd, trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES) !== TRAILER_BYTES) throw new CorruptEntryError('short trailer')
  const fields = decodeTrailer(trailer, size, head.payloadOffset)
  const hash = hasher().create64(0n)
  const hashed = size - 8
  for (let at = 0; at < hashed;) {
    if (stop()) return undefined
    const n = fs.readSync(fd, buffer, 0, Math.min(buffer.length, hashed - at), at)
    if (n === 0) throw new CorruptEntryError('file shrank while being verified')
    hash.update(buffer.subarray(0, n))
    at += n
  }
  if (hash.digest() !== fields.checksum) throw new CorruptEntryError('checksum mismatch')
  return { size, key: head.key }
}

/** An entry's head, however long its key and tags (decodeHead bounds them by the file size). */
export function readWholeHead(fd: number, size: number): EntryHead {
  let bytes = Buffer.allocUnsafe(Math.min(HEAD_READ, size))
  let head = decodeHead(bytes.subarray(0, fs.readSync(fd, bytes, 0, bytes.length, 0)), size)
  if (head === undefined) {
    // Metadata longer than the first read (only with huge tags): read it on its own.
    bytes = Buffer.allocUnsafe(headLength(bytes))
    head = decodeHead(bytes.subarray(0, fs.readSync(fd, bytes, 0, bytes.length, 0)), size)
    if (head === undefined) throw new CorruptEntryError('file shorter than its metadata')
  }
  return head
}

export function verifyBuffer(): Buffer {
  return Buffer.allocUnsafe(VERIFY_CHUNK)
}

/**
 * Removes an entry file only if it is still the one that was judged (same inode, not used or
 * rewritten since), by taking it aside (store/take-aside.ts): a fresh entry a writer renamed
 * into place meanwhile is put back, and a concurrent reader sees the entry or a miss, never a
 * wrong value. Returns the bytes freed (0 for a directory in an entry's place), or undefined
 * if nothing was removed.
 */
export function removeIfSame(file: string, ino: number, mtimeMs: number | undefined): number | undefined {
  // Never rename through a link planted where `v1/`, the namespace or the partition was.
  if (!chainIsReal(rootAbove(file, 4), path.dirname(file))) return undefined
  // No lstat of the victim first: almost every victim is unchanged, and three syscalls
  // (rename, lstat, unlink) instead of four make eviction a quarter faster.
  const taken = takeIfSame(file, ino, mtimeMs)
  if (taken === undefined) return undefined
  if (taken.stat.isDirectory()) {
    fs.rmSync(taken.aside, { recursive: true, force: true })
    return 0
  }
  return removeTaken(taken)
}

/** Removes a temp file if it is older than `maxAge` (a live writer keeps its mtime fresh).
 *  `root`: the cache directory (by default, that of an entry file's temp). Its directory is
 *  looked at first, not only when it was listed: by path through a link put in its place
 *  meanwhile, the removal would take a file outside the cache named like a temp file. */
export function removeStaleTemp(file: string, now: number, maxAge: number, dryRun: boolean, root = rootAbove(file, 4)): number | undefined {
  if (!chainIsReal(root, path.dirname(file))) return undefined
  let stat: fs.Stats
  try {
    stat = fs.lstatSync(file)
  } catch {
    return undefined
  }
  if (now - stat.mtimeMs < maxAge) return undefined
  if (!dryRun) {
    try {
      fs.rmSync(file, { recursive: true, force: true })
    } catch {
      return undefined
    }
  }
  return stat.isFile() ? stat.size : 0
}

/** Tag invalidation stamps, read from `tags/` once per task; with `held`, the stamps the
 *  instance asking holds in memory only count too, as its reads count them (a read-only
 *  instance's, which it may not write: TagClock.heldStamps). */
export class TagStamps {
  readonly #dir: string
  readonly #stamps = new Map<string, number>()
  readonly #held: Map<string, number> | undefined
  /** The higher of the held floor and the directory's (tags/floor.d, read at the first tagged
   *  entry): every tagged entry created at or before it is stale. */
  #floor: number | undefined
  readonly #heldFloor: number

  constructor(tagsDir: string, held?: HeldStamps) {
    this.#dir = tagsDir
    this.#held = held === undefined ? undefined : new Map(held.stamps)
    this.#heldFloor = held?.floor ?? 0
  }

  /** True when any of `tags` was invalidated at or after `createdAt` (as the reader judges). */
  isStale(tags: readonly string[], createdAt: number): boolean {
    if (tags.length !== 0 && this.#floorOf() >= createdAt) return true
    for (const tag of tags) if (this.#stamp(tag) >= createdAt || (this.#held?.get(tag) ?? 0) >= createdAt) return true
    return false
  }

  #floorOf(): number {
    if (this.#floor === undefined) {
      let floor = 0
      try {
        floor = readFloor(this.#dir)
      } catch {
        // unreadable: judged not raised, so nothing is removed for it (as a stamp, below)
      }
      this.#floor = Math.max(floor, this.#heldFloor)
    }
    return this.#floor
  }

  #stamp(tag: string): number {
    let stamp = this.#stamps.get(tag)
    if (stamp === undefined) {
      const file = path.join(this.#dir, hasher().h64ToString(tag))
      try {
        stamp = readStamp(file)
      } catch {
        stamp = 0 // unreadable: judged not invalidated, so nothing is removed for it
      }
      this.#stamps.set(tag, stamp)
    }
    return stamp
  }
}
