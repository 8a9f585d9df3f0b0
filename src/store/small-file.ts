import { disk, NOT_A_FILE, openForReading } from './disk.js'

/**
 * Reading the small files of ours that are not entries: tag stamps, `budget.json`, the
 * running totals, activity records. Anything can be planted at their names by whoever writes
 * the directory, and a plain `readFileSync` would follow a link out of the cache, block the
 * thread for ever on a FIFO nobody writes, or allocate whatever a huge file holds. So the file
 * is opened without following a link and without blocking, read only if it is a regular file
 * of at most `limit` bytes, and otherwise reported as foreign (`ForeignFileError`), which each
 * caller treats as a damaged file.
 */
/** Every such file is a line or a small JSON object; this is generous. */
const SMALL_FILE_LIMIT = 64 * 1024

/** Not a regular file of ours: a link, a FIFO, a directory, a device, or far too large. */
export class ForeignFileError extends Error {
  readonly code = 'ERR_FOREIGN_FILE' // not an errno: damage, never a failing disk for the breaker
}

/** The file's text, or undefined when there is none. Throws ForeignFileError for anything but
 *  a small regular file, and what the disk throws. */
export function readSmallFileSync(file: string, limit = SMALL_FILE_LIMIT): string | undefined {
  const fd = openForReading(file)
  if (fd === undefined) return undefined
  if (fd === NOT_A_FILE) throw new ForeignFileError(`${file} is not a regular file`)
  try {
    const stat = disk.fstatSync(fd)
    if (!stat.isFile()) throw new ForeignFileError(`${file} is not a regular file`)
    if (stat.size > limit) throw new ForeignFileError(`${file} holds ${stat.size} bytes, more than a file of ours ever does`)
    const bytes = Buffer.allocUnsafe(stat.size)
    let done = 0
    while (done < bytes.length) {
      const n = disk.readSync(fd, bytes, done, bytes.length - done, done)
      if (n === 0) break
      done += n
    }
    return bytes.toString('utf8', 0, done)
  } finally {
    disk.closeSync(fd)
  }
}
