import type fs from 'node:fs'
import path from 'node:path'
import { CorruptEntryError, createdAtOf } from '../format/entry-format.js'
import { removeTaken, takeIfSame } from './take-aside.js'
import { discardTemp, writeFileAtomic, writeFileAtomicSync, writeSmallFileAtomic, type OpenedTemp } from './atomic-write.js'
import type { CreateCost } from './create-cost.js'
import { disk, errorCode, NOT_A_FILE, openForReading as openAnyForReading } from './disk.js'
import { rootAbove } from './layout.js'
import { chainIsReal, type OwnedTree } from './owned-tree.js'

/**
 * Reading, writing and removing whole entry files.
 *
 * Small files use synchronous syscalls. Measured here: `fs.promises.readFile` of a 1 KiB file
 * costs ~150 µs (four thread-pool round trips) while open+fstat+read+close done synchronously
 * costs ~8 µs, and a synchronous temp-file write and rename tens of µs of CPU against hundreds
 * through the pool. The main thread is held for one small syscall sequence, as better-sqlite3
 * does. Larger files go through the thread pool so a big read or write never stalls the host.
 */
export const SYNC_IO_LIMIT = 64 * 1024

export interface FileRead {
  bytes: Buffer
  /** Inode of what was read, so a later removal can check the file was not replaced. */
  ino: number
  /** Last use (maintenance refreshes it on hits, for LRU). */
  mtimeMs: number
}

/** What readSmallEntryFile answers for a file over SYNC_IO_LIMIT: open it as a stream instead. */
export const LARGE = Symbol('larger than SYNC_IO_LIMIT')

/**
 * Reads a whole entry file of up to SYNC_IO_LIMIT bytes, synchronously. `undefined` when it
 * does not exist (a miss, not a failure); LARGE when it is bigger (read it through
 * stream-reader.ts, with bounds). A symlink, directory or other non-file in an entry's place
 * throws a CorruptEntryError carrying its inode, so only that one is ever removed.
 */
export function readSmallEntryFile(file: string): FileRead | typeof LARGE | undefined {
  const opened = openUpTo(file, SYNC_IO_LIMIT)
  if (opened === undefined || opened === LARGE) return opened
  try {
    return filled(opened, readSyncAt)
  } finally {
    disk.closeSync(opened.fd)
  }
}

/** What readPlainEntryFile answers when it cannot vouch for what it read: read it with
 *  readSmallEntryFile, which judges every kind of file. */
export const UNSURE = Symbol('not a plain regular file, or changed while read')

/**
 * The bytes of a regular file of up to SYNC_IO_LIMIT bytes, and its mtime: `readSmallEntryFile`
 * for a read that removes and reports nothing (FileTier's plain get: a hit, or a miss for no
 * file). One read asks for a byte more than the size seen, so a file that grew or shrank since
 * gives another count (UNSURE). A file renamed over it since with the same size is read whole
 * all the same (renames are atomic, and the caller verifies every byte); only the mtime may
 * then be the old file's, which as an LRU hint costs nothing. A symlink, a directory or
 * anything but a regular file is UNSURE: judging it (and removing only the inode judged) is
 * readSmallEntryFile's.
 *
 * `likelyThere`: the caller expects a file (its last read found one). Then the file is opened
 * first, one walk of the path instead of two (an lstat's and the open's): measured under
 * undici's fetch, the lstat's walk cost more than the open. A missing file costs that way a
 * thrown ENOENT (~6 µs against ~1 µs for an lstat), so a caller that has been missing asks
 * with an lstat first. A file opened first is read by one read of up to PLAIN_READ_BYTES into
 * a buffer kept for it, whose count is the size, and the bytes copied out; a larger file is
 * fstat'd and the rest read.
 *
 * `mtimeBefore`: the mtime is wanted of an entry created before this time (LastUse: the
 * mtime decides whether a hit touches the file at once, and a file's mtime is never earlier
 * than its entry's creation, so a younger entry's file was used since). Undefined: not
 * wanted. A file opened first is fstat'd for it only then: open, read, close (three calls
 * instead of four) on a young entry's hit, and on every hit whose last use is remembered
 * already. `mtimeMs` is undefined when not read.
 */
export function readPlainEntryFile(
  file: string,
  likelyThere = false,
  mtimeBefore?: number,
): { bytes: Buffer; mtimeMs: number | undefined } | typeof LARGE | typeof UNSURE | undefined {
  if (likelyThere) return readPlainOpenedFirst(file, mtimeBefore)
  const link = lstatEntry(file)
  if (link === undefined) return undefined
  if (!link.isFile()) return UNSURE
  if (link.size > SYNC_IO_LIMIT) return LARGE
  const fd = openAfterLstat(file)
  if (fd === undefined) return undefined
  try {
    return readPlainOpened(fd, link.size, link.mtimeMs)
  } finally {
    disk.closeSync(fd)
  }
}

/** The most bytes a read without an fstat asks for, and the buffer it reads into (one per
 *  thread; its bytes are copied out before anything else runs). One byte more than
 *  PLAIN_READ_BYTES says the file is larger. */
const PLAIN_READ_BYTES = 16 * 1024
let plainRoom: Buffer | undefined
/** The last file opened first was larger than PLAIN_READ_BYTES: the next is fstat'd first and
 *  read whole (a cache of 64 KiB values would otherwise read each one's first 16 KiB on its
 *  own, one read more per hit). */
let lastLarge = false

function readPlainOpenedFirst(
  file: string,
  mtimeBefore: number | undefined,
): { bytes: Buffer; mtimeMs: number | undefined } | typeof LARGE | typeof UNSURE | undefined {
  const fd = openForReading(file)
  if (fd === undefined) return undefined
  if (fd === NOT_A_FILE) return UNSURE
  try {
    if (lastLarge) {
      const stat = disk.fstatSync(fd)
      if (!stat.isFile()) return UNSURE
      lastLarge = stat.size > PLAIN_READ_BYTES
      return stat.size > SYNC_IO_LIMIT ? LARGE : readPlainOpened(fd, stat.size, stat.mtimeMs)
    }
    plainRoom ??= Buffer.allocUnsafe(PLAIN_READ_BYTES + 1)
    const n = readPlainRoom(fd, plainRoom)
    if (n === UNSURE) return UNSURE
    // Anything but a regular file is judged elsewhere: a directory or a FIFO fails the read
    // (EISDIR; ESPIPE, a read at a position); a device that fills the room goes on to the
    // fstat below.
    if (n <= PLAIN_READ_BYTES) {
      const bytes = Buffer.from(plainRoom.subarray(0, n))
      const created = mtimeBefore === undefined ? undefined : createdAtOf(bytes)
      if (mtimeBefore === undefined || (created !== undefined && created >= mtimeBefore)) return { bytes, mtimeMs: undefined }
      const stat = disk.fstatSync(fd)
      return stat.isFile() && stat.size === n ? { bytes, mtimeMs: stat.mtimeMs } : UNSURE
    }
    const stat = disk.fstatSync(fd)
    if (!stat.isFile()) return UNSURE
    lastLarge = true
    if (stat.size > SYNC_IO_LIMIT) return LARGE
    if (stat.size < n) return UNSURE // shrank since: judged elsewhere
    // What the room holds is the file's first bytes: only the rest is read.
    const room = Buffer.allocUnsafe(stat.size + 1)
    plainRoom.copy(room, 0, 0, n)
    const rest = disk.readSync(fd, room, n, room.length - n, n)
    return n + rest === stat.size ? { bytes: room.subarray(0, stat.size), mtimeMs: stat.mtimeMs } : UNSURE
  } finally {
    disk.closeSync(fd)
  }
}

/** What one read from the start of `fd` into `room` counted, or UNSURE when the thing opened
 *  cannot be read as a file is (a directory; a FIFO, which has no position): not a failing disk. */
function readPlainRoom(fd: number, room: Buffer): number | typeof UNSURE {
  try {
    return disk.readSync(fd, room, 0, room.length, 0)
  } catch (error) {
    const code = errorCode(error)
    if (code === 'EISDIR' || code === 'ESPIPE') return UNSURE
    throw error
  }
}

/** The `size` bytes of an opened file, or UNSURE when it holds another count (see readPlainEntryFile). */
function readPlainOpened(fd: number, size: number, mtimeMs: number): { bytes: Buffer; mtimeMs: number } | typeof UNSURE {
  const room = Buffer.allocUnsafe(size + 1)
  // A directory moved into the file's place between the lstat and the open (O_RDONLY opens
  // one; only its read fails): not a failing disk, a file to judge.
  const n = readPlainRoom(fd, room)
  return n === size ? { bytes: room.subarray(0, n), mtimeMs } : UNSURE
}

/**
 * `readSmallEntryFile` for files of up to `limit` bytes (getStream's WHOLE_STREAM_LIMIT): one
 * read through the thread pool for a file over SYNC_IO_LIMIT, its open, fstat and close on
 * this thread (a few µs each, where each thread-pool round trip costs a wake-up of another
 * thread: a 1 MiB artifact was five of them, counted with strace). The caller verifies the
 * whole file before handing out a byte.
 */
export async function readEntryFileUpTo(file: string, limit: number): Promise<FileRead | typeof LARGE | undefined> {
  const opened = openUpTo(file, limit)
  if (opened === undefined || opened === LARGE) return opened
  try {
    return opened.size <= SYNC_IO_LIMIT ? filled(opened, readSyncAt) : await filledAsync(opened)
  } finally {
    disk.closeSync(opened.fd)
  }
}

/** An entry file opened for a whole read: its descriptor (the caller closes it) and what fstat said. */
interface OpenedFile {
  fd: number
  size: number
  ino: number
  mtimeMs: number
}

/** Opens `file` if it is a regular file of at most `limit` bytes (see readSmallEntryFile). */
function openUpTo(file: string, limit: number): OpenedFile | typeof LARGE | undefined {
  // Misses are common and a throwing openSync builds an exception (~8 µs); a non-throwing
  // lstat answers a miss in ~1 µs and costs a hit about as much.
  const link = lstatEntry(file)
  if (link === undefined) return undefined
  if (link.isSymbolicLink()) throw new CorruptEntryError("a symlink in an entry's place", link.ino)
  // A socket cannot be opened (ENXIO, which is no failing disk): judged by its lstat.
  if (link.isSocket()) throw new CorruptEntryError('not a regular file', link.ino)
  if (link.isFile() && link.size > limit) return LARGE
  const fd = openAfterLstat(file)
  if (fd === undefined) return undefined
  try {
    const stat = disk.fstatSync(fd)
    if (!stat.isFile()) throw new CorruptEntryError(stat.isDirectory() ? "a directory in an entry's place" : 'not a regular file', stat.ino)
    if (stat.size > limit) {
      disk.closeSync(fd)
      return LARGE // replaced by a larger file since the lstat
    }
    return { fd, size: stat.size, ino: stat.ino, mtimeMs: stat.mtimeMs }
  } catch (error) {
    disk.closeSync(fd)
    throw error
  }
}

/** Opens an entry file an lstat found; undefined when it was removed since (a miss), or
 *  replaced by a symlink or a socket since (a miss now, judged on the next read). */
function openAfterLstat(file: string): number | undefined {
  const fd = openForReading(file)
  return fd === NOT_A_FILE ? undefined : fd
}

const readSyncAt = (fd: number, into: Buffer, at: number): number => disk.readSync(fd, into, at, into.length - at, at)

/** The opened file's bytes, read to its size (a file that shrank under us gives fewer: the
 *  checksum rejects the short buffer). */
function filled(opened: OpenedFile, read: typeof readSyncAt): FileRead {
  const bytes = Buffer.allocUnsafe(opened.size)
  let done = 0
  while (done < bytes.length) {
    const n = read(opened.fd, bytes, done)
    if (n === 0) break
    done += n
  }
  return { bytes: done === bytes.length ? bytes : bytes.subarray(0, done), ino: opened.ino, mtimeMs: opened.mtimeMs }
}

async function filledAsync(opened: OpenedFile): Promise<FileRead> {
  const bytes = Buffer.allocUnsafe(opened.size)
  let done = 0
  while (done < bytes.length) {
    const n = await disk.readFd(opened.fd, bytes, done, bytes.length - done, done)
    if (n === 0) break
    done += n
  }
  return { bytes: done === bytes.length ? bytes : bytes.subarray(0, done), ino: opened.ino, mtimeMs: opened.mtimeMs }
}

/** How writeEntryFile writes an entry (see there). */
export interface EntryWrite {
  /** fsync before the rename (every step through the thread pool). */
  durable: boolean
  /** Other writes are in flight and creates are dear: a small entry's temp file is created
   *  through the thread pool, where those creates overlap (the rest of it stays synchronous). */
  overlap?: boolean
  /** A temp file created ahead while the value was compressed (FileTier.encode). */
  early?: Promise<OpenedTemp> | undefined
  /** Hears how long a synchronous create took (create-cost.ts). */
  cost?: CreateCost
}

/**
 * Writes a whole entry atomically (atomic-write.ts: an exclusive temp file in the checked
 * partition directory, every byte counted, then rename), or not at all; how, `how` says.
 */
export async function writeEntryFile(tree: OwnedTree, file: string, bytes: Buffer, how: EntryWrite): Promise<void> {
  const { durable, overlap = false, early, cost } = how
  if (early !== undefined) {
    // a temp file created while the value was compressed (FileTier.set): used when this write
    // would have been synchronous anyway; otherwise (an entry that came out larger) let go
    if (bytes.length <= SYNC_IO_LIMIT && !durable) return writeSmallFileAtomic(tree, file, bytes, early)
    await discardTemp(tree, early)
  }
  if (bytes.length > SYNC_IO_LIMIT || (overlap && durable)) await writeFileAtomic(tree, file, bytes, durable)
  else if (overlap) await writeSmallFileAtomic(tree, file, bytes)
  else writeFileAtomicSync(tree, file, bytes, durable, cost)
}

/** Whether the directories above an entry file (`v1/<ns>/<pp>`) are real directories: a
 *  removal never reaches through a link planted in their place. */
function inRealPartition(file: string): boolean {
  return chainIsReal(rootAbove(file, 4), path.dirname(file))
}

/**
 * The lstat of the entry file `file`, or undefined when nothing is there: ENOENT, or ENOTDIR
 * while the cache directory is one (a file, FIFO or device planted where a partition belongs).
 * No failing disk answers ENOTDIR: taken for one, such a thing at a partition's name made
 * every read and write of its keys a disk failure and opened the breaker for the whole cache;
 * now they miss, and the next write puts a directory there (OwnedTree.dirSync removes what is
 * not one). A cache directory that is no directory stays a failure.
 */
export function lstatEntry(file: string): fs.Stats | undefined {
  try {
    return disk.lstatSync(file, { throwIfNoEntry: false })
  } catch (error) {
    if (partitionDamaged(error, file)) return undefined
    throw error
  }
}

/** openForReading of an entry file, ENOTDIR below a real cache directory read as nothing there
 *  (see lstatEntry). */
function openForReading(file: string): ReturnType<typeof openAnyForReading> {
  try {
    return openAnyForReading(file)
  } catch (error) {
    if (partitionDamaged(error, file)) return undefined
    throw error
  }
}

/** Whether `error`, met at the entry file `file`, is a partition's damage (see lstatEntry). */
export function partitionDamaged(error: unknown, file: string): boolean {
  return errorCode(error) === 'ENOTDIR' && disk.statSync(rootAbove(file, 4), { throwIfNoEntry: false })?.isDirectory() === true
}

/** Removes a file; resolves to its size, or undefined if it was not there. */
export function removeFile(file: string): number | undefined {
  if (!inRealPartition(file)) return undefined
  try {
    const size = disk.lstatSync(file).size
    disk.unlinkSync(file)
    return size
  } catch (error) {
    if (errorCode(error) === 'ENOENT' || partitionDamaged(error, file)) return undefined
    throw error
  }
}

/**
 * Removes `file` only if it is still the inode we judged (corrupt, expired): another
 * process may have renamed a fresh entry over it since, and that one must survive.
 * A directory or symlink planted in an entry's place is removed too. Resolves to the bytes
 * of the entry file removed (for the running totals), or undefined.
 */
export async function removeIfUnchanged(file: string, ino: number | undefined): Promise<number | undefined> {
  if (!inRealPartition(file)) return undefined
  // Taken aside, not unlinked by path after an lstat: between the two, a fresh entry renamed
  // into place would have been what went.
  const taken = takeIfSame(file, ino)
  if (taken === undefined) return undefined
  if (taken.stat.isDirectory()) {
    await disk.rm(taken.aside, { recursive: true, force: true })
    return undefined // never counted as an entry
  }
  return removeTaken(taken)
}
