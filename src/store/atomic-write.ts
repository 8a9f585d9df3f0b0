import fs from 'node:fs'
import path from 'node:path'
import type { FileHandle } from 'node:fs/promises'
import type { CreateCost } from './create-cost.js'
import { disk, errorCode } from './disk.js'
import type { OwnedTree } from './owned-tree.js'

/**
 * The one way larder writes a file: an exclusive temp file beside it, every byte written and
 * counted, then a rename within the same directory. Entries, tag stamps, meta files and
 * streams all go through it, so a file under one of our names is always whole.
 *
 *   1. the directory is checked from the cache root down (owned-tree.ts: never through a link);
 *   2. the temp `<name>.<pid>-<n>.tmp` is opened O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW with the
 *      cache's file mode: it is always a new file of ours, never something planted at a
 *      predictable name (such a name is skipped for the next one);
 *   3. the bytes are written in a loop that checks every count: a short write continues where
 *      it stopped, a write that makes no progress (or fails) fails the whole write;
 *   4. with `durable`, fsync; then fstat must show exactly the length written;
 *   5. rename over the name. A symlink there is replaced, not followed (rename never follows
 *      its target); a directory there is foreign, removed, and the rename retried.
 * On any failure the temp file is unlinked and nothing is renamed: the old file stays.
 *
 * Why not write-file-atomic (which this replaced): it resolves the target with `realpath`
 * (so a symlink planted at an entry's name redirects the write outside the cache), opens its
 * temp without O_EXCL at a name derived from the target, and its synchronous path makes one
 * `writeSync` and ignores a short count (a full disk renamed a torn file into place).
 */
const TEMP_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW
/** Appends never follow a link and never block on a FIFO planted at the name. */
const APPEND_FLAGS =
  fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK
/** Temp names taken by something else (planted, or a writer with our pid in another pid
 *  namespace) are skipped; past this many in a row, give up. */
const TEMP_ATTEMPTS = 1000
/** Rounds of a write whose directory went away under it (another process's `clear()` moves
 *  the partitions into its trash between our check of the directory and the open or rename
 *  that follows): each round makes the directory again. A clear in a tight loop elsewhere can
 *  take it more than once; past this many, the ENOENT is the caller's. */
const GONE_ROUNDS = 4

let sequence = 0

/** The number the next temp name of this process will carry. */
export function tempSequence(): number {
  return sequence + 1
}

function nextTemp(file: string): string {
  return `${file}.${process.pid}-${++sequence}.tmp`
}

function shortWrite(file: string, done: number, total: number): Error {
  return Object.assign(new Error(`ENOSPC: ${file}: the disk took ${done} of ${total} bytes and then no more`), { code: 'ENOSPC' })
}

function checkLength(file: string, size: number, expected: number): void {
  if (size !== expected) throw Object.assign(new Error(`EIO: ${file} holds ${size} bytes after writing ${expected}`), { code: 'EIO' })
}

function unlinkQuietly(file: string): void {
  try {
    disk.unlinkSync(file)
  } catch {
    // already gone
  }
}

/** Writes every byte of `bytes` at the descriptor's position, or throws. */
export function writeAllSync(fd: number, bytes: Uint8Array, file: string): void {
  let done = 0
  while (done < bytes.length) {
    const n = disk.writeSync(fd, bytes, done, bytes.length - done)
    if (!(n > 0)) throw shortWrite(file, done, bytes.length)
    done += n
  }
}

/** Writes every byte of `bytes` at the handle's position, or throws. */
export async function writeAll(handle: FileHandle, bytes: Uint8Array, file: string): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    const { bytesWritten } = await disk.write(handle, bytes, done, bytes.length - done)
    if (!(bytesWritten > 0)) throw shortWrite(file, done, bytes.length)
    done += bytesWritten
  }
}

/** Opens a new temp file beside `file` (its directory checked first), exclusively; `cost`
 *  hears how long the create took. */
export function openTempSync(tree: OwnedTree, file: string, cost?: CreateCost): { temp: string; fd: number } {
  const dir = path.dirname(file)
  tree.dirSync(dir)
  for (let attempt = 1, gone = 1; ; attempt++) {
    const temp = nextTemp(file)
    let fd: number
    try {
      const started = cost === undefined ? 0 : performance.now()
      fd = disk.openSync(temp, TEMP_FLAGS, tree.fileMode)
      cost?.took(performance.now() - started)
    } catch (error) {
      const code = errorCode(error)
      if (code === 'EEXIST' && attempt < TEMP_ATTEMPTS) continue
      if (code === 'ENOENT' && gone++ < GONE_ROUNDS) {
        tree.dirSync(dir) // moved away since it was checked (a clear elsewhere): made again
        continue
      }
      throw error
    }
    modeTempSync(tree, temp, fd)
    return { temp, fd }
  }
}

/** The async form of `openTempSync`, for writes that run through the thread pool. */
export async function openTemp(tree: OwnedTree, file: string): Promise<{ temp: string; handle: FileHandle }> {
  tree.dirSync(path.dirname(file))
  const { temp, opened: handle } = await createTemp(tree, file, (name) => disk.open(name, TEMP_FLAGS, tree.fileMode))
  if (tree.shared !== false) {
    try {
      await handle.chmod(tree.fileMode)
    } catch (error) {
      await handle.close().catch(() => {})
      unlinkQuietly(temp)
      throw error
    }
  }
  return { temp, handle }
}

/** A temp file created beside the file it will replace, open for writing. */
export interface OpenedTemp {
  temp: string
  fd: number
}

/** `openTempSync` with only the open itself through the thread pool (see writeSmallFileAtomic):
 *  a plain descriptor, so the steps after it can be synchronous. */
export async function openTempFd(tree: OwnedTree, file: string): Promise<OpenedTemp> {
  tree.dirSync(path.dirname(file))
  const { temp, opened: fd } = await createTemp(tree, file, (name) => disk.openFd(name, TEMP_FLAGS, tree.fileMode))
  modeTempSync(tree, temp, fd)
  return { temp, fd }
}

/** Opens the next free temp name beside `file` with `open` (exclusive): a name something else
 *  holds is skipped for the next one; a directory moved away meanwhile is made again. */
async function createTemp<T>(tree: OwnedTree, file: string, open: (temp: string) => Promise<T>): Promise<{ temp: string; opened: T }> {
  for (let attempt = 1, gone = 1; ; attempt++) {
    const temp = nextTemp(file)
    try {
      return { temp, opened: await open(temp) }
    } catch (error) {
      const code = errorCode(error)
      if (code === 'EEXIST' && attempt < TEMP_ATTEMPTS) continue
      if (code === 'ENOENT' && gone++ < GONE_ROUNDS) {
        tree.dirSync(path.dirname(file))
        continue
      }
      throw error
    }
  }
}

/** Gives a new temp file the cache's exact mode when sharing (the umask filtered the mode
 *  open() was given); on failure the temp is closed and removed. */
function modeTempSync(tree: OwnedTree, temp: string, fd: number): void {
  if (tree.shared === false) return
  try {
    disk.fchmodSync(fd, tree.fileMode)
  } catch (error) {
    disk.closeSync(fd)
    unlinkQuietly(temp)
    throw error
  }
}

/** Renames a finished temp file over `file`. A directory planted there is removed first. */
export function commitSync(tree: OwnedTree, temp: string, file: string): void {
  try {
    disk.renameSync(temp, file)
  } catch (error) {
    if (!replaceable(error, file, tree)) throw error
    disk.renameSync(temp, file)
  }
}

export async function commit(tree: OwnedTree, temp: string, file: string): Promise<void> {
  try {
    await disk.rename(temp, file)
  } catch (error) {
    if (!replaceable(error, file, tree)) throw error
    await disk.rename(temp, file)
  }
}

/** A rename refused because a directory sits at the name: remove it (foreign) and say so. */
function replaceable(error: unknown, file: string, tree: OwnedTree): boolean {
  const code = errorCode(error)
  if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST') return false
  const found = disk.lstatSync(file, { throwIfNoEntry: false })
  if (found === undefined || !found.isDirectory()) return false
  tree.removeForeignSync(file, found, 'where a file of the cache belongs')
  return true
}

/**
 * Replaces `file` with `bytes`, whole or not at all (see above). Synchronous: for small files
 * (entries up to 64 KiB, stamps, meta files), where a few syscalls cost less than a trip
 * through the thread pool. A rename that finds the directory gone (a `clear()` moved it) is
 * tried again from the start (GONE_ROUNDS). `cost` hears how long the temp's create took.
 */
export function writeFileAtomicSync(tree: OwnedTree, file: string, bytes: Uint8Array, durable = false, cost?: CreateCost): void {
  for (let round = 0; ; round++) {
    if (finishTempSync(tree, openTempSync(tree, file, cost), file, bytes, durable, round)) return
  }
}

/**
 * `writeFileAtomicSync` for a small file written while other writes are in flight, where
 * creating a file is dear (create-cost.ts): the exclusive create of the temp file goes through
 * the thread pool, the rest is synchronous. The create is the step whose cost is the kernel's
 * (allocating an inode: up to 0.6–0.9 ms of system CPU per file on the ext4 the benchmarks run
 * on, against a few µs for each other step), so the creates of writes in flight overlap on the
 * pool's threads; a pool round trip for each of write, fstat, close and rename cost more than
 * the syscall it carried. Not for `durable`: an fsync would hold the main thread
 * (writeFileAtomic does every step in the pool).
 */
export async function writeSmallFileAtomic(tree: OwnedTree, file: string, bytes: Uint8Array, first?: Promise<OpenedTemp>): Promise<void> {
  for (let round = 0; ; round++) {
    // Either way the create went through the thread pool, a while before the rename.
    const opened = round === 0 && first !== undefined ? await first : await openTempFd(tree, file)
    if (finishTempSync(tree, opened, file, bytes, false, round, true)) return
  }
}

/**
 * The directory of `file` checked again before a rename that comes a while after its temp
 * file's create (a write through the thread pool, a temp made while the value compressed):
 * the rename goes by path, and through a link planted since in place of the directory (or one
 * above it), to a directory outside the cache, it would be made there, over whatever is named
 * like the file, with whatever is named like the temp. The link is removed and a real
 * directory made (one lstat when it is still the one checked); the temp file is then not at
 * its path, and the rename's ENOENT starts the write over there.
 */
function recheckSync(tree: OwnedTree, file: string): void {
  tree.dirSync(path.dirname(file))
}

/** Closes and removes a temp file that will not be written (its open may have failed: then
 *  there is nothing to remove), made a while ago: see removeTempLater. Never rejects. */
export async function discardTemp(tree: OwnedTree, opened: Promise<OpenedTemp>): Promise<void> {
  let made: OpenedTemp
  try {
    made = await opened
  } catch {
    return // the create failed: no file, and the error was someone else's to report
  }
  let ino: number | undefined
  try {
    ino = disk.fstatSync(made.fd).ino
  } catch {
    // a failing disk: judged by its directory alone
  }
  closeQuietly(made.fd)
  removeTempLater(tree, made.temp, ino)
}

/**
 * Removes a temp file of ours a while after its create (a value compressed meanwhile, steps
 * through the thread pool): by path, so only while its directory is still a real one of ours
 * (through a link put in its place meanwhile, the unlink would remove a file outside the cache
 * that is named like it) and, given `ino`, while the name still holds the file created. One
 * left (its directory swapped away) is a stray temp, swept by prune once tempMaxAge old.
 */
function removeTempLater(tree: OwnedTree, temp: string, ino?: number): void {
  try {
    if (!tree.isRealSync(path.dirname(temp))) return
    const found = disk.lstatSync(temp, { throwIfNoEntry: false })
    if (found === undefined || (ino !== undefined && found.ino !== ino)) return
    disk.unlinkSync(temp)
  } catch {
    // already gone, or the disk is failing: a stray temp for prune's sweep
  }
}

/**
 * Steps 3–5 on a new temp file, synchronously: write, (fsync,) check the length, close, rename.
 * true once renamed; false when the rename found the directory gone (a `clear()` moved it)
 * in one of the first GONE_ROUNDS rounds: start over. On any failure the temp is removed and the error thrown.
 */
function finishTempSync(
  tree: OwnedTree,
  { temp, fd }: { temp: string; fd: number },
  file: string,
  bytes: Uint8Array,
  durable: boolean,
  round: number,
  recheck = false,
): boolean {
  try {
    writeAllSync(fd, bytes, temp)
    if (durable) disk.fsyncSync(fd)
    checkLength(temp, disk.fstatSync(fd).size, bytes.length)
  } catch (error) {
    closeQuietly(fd)
    // A temp created through the pool, a while ago: its directory may have been swapped since.
    if (recheck) removeTempLater(tree, temp)
    else unlinkQuietly(temp)
    throw error
  }
  try {
    disk.closeSync(fd)
    if (recheck) recheckSync(tree, file)
    commitSync(tree, temp, file)
    return true
  } catch (error) {
    if (recheck) removeTempLater(tree, temp)
    else unlinkQuietly(temp)
    if (errorCode(error) === 'ENOENT' && round < GONE_ROUNDS - 1) return false
    throw error
  }
}

/** The async form of `writeFileAtomicSync`, for large files: every step through the pool. */
export async function writeFileAtomic(tree: OwnedTree, file: string, bytes: Uint8Array, durable = false): Promise<void> {
  for (let round = 0; ; round++) {
    const { temp, handle } = await openTemp(tree, file)
    try {
      await writeAll(handle, bytes, temp)
      if (durable) await handle.sync()
      checkLength(temp, (await handle.stat()).size, bytes.length)
    } catch (error) {
      await handle.close().catch(() => {})
      removeTempLater(tree, temp)
      throw error
    }
    try {
      await handle.close()
      recheckSync(tree, file)
      await commit(tree, temp, file)
      return
    } catch (error) {
      removeTempLater(tree, temp)
      if (errorCode(error) === 'ENOENT' && round < GONE_ROUNDS - 1) continue
      throw error
    }
  }
}

/**
 * Appends `bytes` to `file` (created with the cache's file mode if missing), in a checked
 * directory, never through a link (see openAppendSync).
 */
export function appendFileSafeSync(tree: OwnedTree, file: string, bytes: Uint8Array): void {
  const fd = openAppendSync(tree, file)
  try {
    writeAllSync(fd, bytes, file)
  } catch (error) {
    closeQuietly(fd)
    throw error
  }
  disk.closeSync(fd)
}

/**
 * Opens `file` for appending (created with the cache's file mode if missing), in a checked
 * directory, never through a link: a symlink, directory, FIFO or anything but a regular file
 * at the name is removed as foreign and a new file started. The caller closes the descriptor.
 */
export function openAppendSync(tree: OwnedTree, file: string): number {
  tree.dirSync(path.dirname(file))
  for (let attempt = 0; ; attempt++) {
    let fd: number
    try {
      fd = disk.openSync(file, APPEND_FLAGS, tree.fileMode)
    } catch (error) {
      // ELOOP: a symlink; EISDIR: a directory; ENXIO: a FIFO nobody reads.
      const found = attempt < 2 ? disk.lstatSync(file, { throwIfNoEntry: false }) : undefined
      if (found === undefined || found.isFile()) throw error
      tree.removeForeignSync(file, found, 'where a file of the cache belongs')
      continue
    }
    // A regular file with one name only: a hard link planted here (or a snapshot made with
    // `cp -al`) is a file that is also somewhere else, and appending to it, or changing its
    // mode, would write outside the cache. Its name is removed and a file of our own started.
    let s: fs.Stats
    try {
      s = disk.fstatSync(fd)
      const ours = s.isFile() && s.nlink === 1
      if (ours && tree.shared !== false && (s.mode & 0o7777) !== tree.fileMode && s.size === 0) disk.fchmodSync(fd, tree.fileMode)
    } catch (error) {
      closeQuietly(fd)
      throw error
    }
    if (s.isFile() && s.nlink === 1) return fd
    // Closed once, before anything below can throw: a second close of the same number could
    // close a file another thread opened meanwhile (the pool's threads open files too).
    closeQuietly(fd)
    if (s.isFile() && s.nlink === 0 && attempt < 2) continue // removed since it was opened: start a new one
    const found = disk.lstatSync(file, { throwIfNoEntry: false })
    if (attempt >= 2 || found === undefined || found.ino !== s.ino)
      throw Object.assign(new Error(`${file} is not a regular file of its own`), { code: 'EIO' })
    tree.removeForeignSync(file, found, s.isFile() ? 'a hard link where a file of the cache belongs' : 'where a file of the cache belongs')
  }
}

/**
 * Creates `file` with `bytes` only if nothing is at the name (O_EXCL: never follows, never
 * replaces). Resolves to false when something already was there.
 */
export function createFileSync(tree: OwnedTree, file: string, bytes: Uint8Array): boolean {
  tree.dirSync(path.dirname(file))
  let fd: number
  try {
    fd = disk.openSync(file, TEMP_FLAGS, tree.fileMode)
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false
    throw error
  }
  try {
    if (tree.shared !== false) disk.fchmodSync(fd, tree.fileMode)
    writeAllSync(fd, bytes, file)
  } catch (error) {
    closeQuietly(fd)
    unlinkQuietly(file)
    throw error
  }
  disk.closeSync(fd)
  return true
}

export function closeQuietly(fd: number): void {
  try {
    disk.closeSync(fd)
  } catch {
    // closing is all that is left to do
  }
}
