import fs from 'node:fs'
import fsp from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'

/**
 * Every file-system call larder makes goes through this one object. It is the seam the
 * fault-injection tests use to make chosen calls fail (EIO, ENOSPC, …), run slowly, or (for
 * `writeSync` and `write`) take fewer bytes than asked, without mocking the file system as a
 * whole: everything else stays real. Internal: not exported from the package.
 */
export const disk = {
  openSync: fs.openSync,
  fstatSync: fs.fstatSync,
  readSync: fs.readSync,
  /** May write fewer bytes than asked (a full disk does): callers loop on the count. */
  writeSync: fs.writeSync as (fd: number, buffer: Uint8Array, offset: number, length: number, position?: number | null) => number,
  fsyncSync: fs.fsyncSync,
  fchmodSync: fs.fchmodSync,
  closeSync: fs.closeSync,
  statSync: fs.statSync,
  readFileSync: fs.readFileSync,
  unlinkSync: fs.unlinkSync,
  renameSync: fs.renameSync,
  linkSync: fs.linkSync,
  rmSync: fs.rmSync,
  lstatSync: fs.lstatSync,
  mkdirSync: fs.mkdirSync,
  rmdirSync: fs.rmdirSync,
  chmodSync: fs.chmodSync,
  utimesSync: fs.utimesSync,
  /** Sets a path's own times: on a symlink planted at an entry's name, the link's, never its target's. */
  lutimesSync: fs.lutimesSync,
  readdirSync: fs.readdirSync,
  open: fsp.open,
  /** An open through the thread pool that gives a plain descriptor (fsp.open gives a FileHandle,
   *  whose descriptor must not be closed synchronously). */
  openFd: (file: string, flags: number, mode: number): Promise<number> =>
    new Promise((resolve, reject) => fs.open(file, flags, mode, (error, fd) => (error === null ? resolve(fd) : reject(error)))),
  /** A positional read of a plain descriptor through the thread pool (entry-files.ts's whole reads). */
  readFd: (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> =>
    new Promise((resolve, reject) =>
      fs.read(fd, buffer, offset, length, position, (error, n) => (error === null ? resolve(n) : reject(error))),
    ),
  /** A FileHandle's write, here so a test can shorten it; callers loop on the count. */
  write: (handle: FileHandle, buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }> =>
    handle.write(buffer, offset, length),
  readFile: fsp.readFile,
  unlink: fsp.unlink,
  rename: fsp.rename,
  rm: fsp.rm,
  stat: fsp.stat,
  lstat: fsp.lstat,
  readdir: fsp.readdir,
}

export type Disk = typeof disk

/** Opening a file of ours to read it: never through a symlink planted in its place (ELOOP),
 *  never waiting on a FIFO planted there (without O_NONBLOCK, an open of a FIFO nobody writes
 *  blocks the thread for ever, SIGTERM too). Nothing changes for a regular file. */
export const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK

/** A handle on a directory: read-only, a directory, never through a link; O_CLOEXEC is
 *  libuv's. Undefined where the platform has no O_DIRECTORY (its callers go by the path). */
export const DIR_FLAGS: number | undefined =
  fs.constants.O_DIRECTORY === undefined ? undefined : fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW

/** What openForReading answers when something that is not a regular file is in the way. */
export const NOT_A_FILE = Symbol('not a regular file')

/**
 * O_NOATIME where the platform has it, until a file turns out not to be this process's
 * (EPERM: only a file's owner, or root, may ask it). larder keeps each entry's last use in its
 * mtime, so the kernel's atime is of no use to it, and an atime update is an inode write: under
 * `relatime` every read after a write or a touch (LastUse sets atime with the mtime) made one.
 * Measured here, an open, read and close of a 1 KiB entry file: ~3.9 µs after a touch, ~3.1
 * with O_NOATIME (`strace` shows the same calls; the difference is the kernel's own work).
 */
const O_NOATIME: number = fs.constants.O_NOATIME ?? 0
let noAtime = O_NOATIME

/** The flags an entry file is opened with for reading: READ_FLAGS, and O_NOATIME while this
 *  process (or worker) may ask it (see noAtime). An open with them that fails goes through
 *  `refusedNoAtime` before its error is judged. */
export function entryReadFlags(): number {
  return READ_FLAGS | noAtime
}

/** Whether `error`, from an open with `flags`, is the kernel refusing O_NOATIME (EPERM: the
 *  file is another user's, as in a shared cache): then this process asks it no more, and the
 *  caller opens again without it, judging that open's error instead (a file another user's
 *  mode keeps from us still answers EACCES or EPERM then). */
export function refusedNoAtime(error: unknown, flags: number): boolean {
  if ((flags & O_NOATIME) === 0 || errorCode(error) !== 'EPERM') return false
  noAtime = 0
  return true
}

/**
 * Opens `file` with entryReadFlags(): its descriptor, undefined when there is nothing (a miss,
 * not a failure), NOT_A_FILE for a symlink, socket or the like in its place (damage for the
 * caller to judge, never a failing disk for the breaker); what else the disk throws, thrown.
 * A FIFO or a directory opens: the caller's fstat (or read) finds it.
 */
export function openForReading(file: string): number | undefined | typeof NOT_A_FILE {
  const flags = entryReadFlags()
  try {
    return disk.openSync(file, flags)
  } catch (error) {
    if (refusedNoAtime(error, flags)) return openForReading(file)
    const code = errorCode(error)
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP' || code === 'ENXIO' || code === 'EISDIR' || code === 'EOPNOTSUPP') return NOT_A_FILE
    throw error
  }
}

/** The errno code of a Node system error, if it is one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/** Unlinks `file`; false when nothing was there. Throws what else the disk throws. */
export function unlinkIfThere(file: string): boolean {
  try {
    disk.unlinkSync(file)
    return true
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false
    throw error
  }
}

/** Whether a write failed for want of space: a full disk, or the user's quota. */
export function isNoSpace(error: unknown): boolean {
  const code = errorCode(error)
  return code === 'ENOSPC' || code === 'EDQUOT'
}

/** Whether a call was refused for want of permission: an item of another user (or left mode
 *  000) where one of ours belongs. Damage to that item, not a failing disk. */
export function isForbidden(error: unknown): boolean {
  const code = errorCode(error)
  return code === 'EACCES' || code === 'EPERM'
}

/** `write`'s result, or undefined when it found no room (bookkeeping that a full disk's
 *  clear or prune writes once it has made some). */
export function ifRoom<T>(write: () => T): T | undefined {
  try {
    return write()
  } catch (error) {
    if (isNoSpace(error)) return undefined
    throw error
  }
}
