import fs from 'node:fs'
import fsp from 'node:fs/promises'
import writeFileAtomic from 'write-file-atomic'

/**
 * Every file-system call larder makes goes through this one object. It is the seam the
 * fault-injection tests use to make chosen calls fail (EIO, ENOSPC, …) or run slowly,
 * without mocking the file system as a whole: everything else stays real.
 * Internal: not exported from the package.
 */
export const disk = {
  openSync: fs.openSync,
  fstatSync: fs.fstatSync,
  readSync: fs.readSync,
  writeSync: fs.writeSync,
  closeSync: fs.closeSync,
  statSync: fs.statSync,
  readFileSync: fs.readFileSync,
  unlinkSync: fs.unlinkSync,
  lstatSync: fs.lstatSync,
  mkdirSync: fs.mkdirSync,
  writeFileSync: fs.writeFileSync,
  appendFileSync: fs.appendFileSync,
  utimesSync: fs.utimesSync,
  readdirSync: fs.readdirSync,
  open: fsp.open,
  readFile: fsp.readFile,
  unlink: fsp.unlink,
  rename: fsp.rename,
  rm: fsp.rm,
  mkdir: fsp.mkdir,
  stat: fsp.stat,
  lstat: fsp.lstat,
  readdir: fsp.readdir,
  /** write-file-atomic: temp file in the same directory, write, (fsync), rename. */
  writeAtomic: writeFileAtomic as (path: string, data: Buffer, options: writeFileAtomic.Options) => Promise<void>,
  writeAtomicSync: writeFileAtomic.sync as (path: string, data: Buffer, options: writeFileAtomic.Options) => void,
}

export type Disk = typeof disk

/** The errno code of a Node system error, if it is one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
