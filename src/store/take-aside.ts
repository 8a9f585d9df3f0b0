import type fs from 'node:fs'
import { disk, errorCode } from './disk.js'

/**
 * How an entry file is removed when only one particular inode may go (one a reader or a scan
 * judged expired or damaged, or a victim of eviction): it is renamed aside, atomically, and
 * checked there. Removing by path after an lstat could take a fresh entry another process
 * renamed into place between the two; the rename takes exactly one inode, whatever it is.
 *
 * What was taken that is not the one judged (a fresh entry, or the victim used since) is put
 * back with `link`, which never replaces a newer entry renamed into place meanwhile. A
 * `delete()` of the key in that moment finds no entry at the name: so the aside name is the
 * same in every process (`<hash>.0-0.tmp`: a temp name no writer makes, pid 0), and a delete
 * that finds nothing removes what is there, then looks at the name again (file-tier.ts), so
 * an entry put back after its delete was acknowledged does not come back to life.
 *
 * Two removals of one file at once (a reader's and a maintenance pass's) share the aside name;
 * the worst that can come of it is a fresh entry lost (a miss) or a judged one put back (read
 * again, and judged again: never served, its checksum and expiry say what it is).
 */
export function asideOf(file: string): string {
  return `${file}.0-0.tmp`
}

export interface Taken {
  aside: string
  stat: fs.Stats
}

/** Errors of a rename that leave nothing taken: gone already, or a directory in an entry's
 *  place that cannot replace a file left at the aside name (by a removal that died): left for
 *  maintenance's next pass. */
const NOTHING_TAKEN = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EEXIST'])

/**
 * Takes `file` aside if it is the inode judged (`ino`; undefined: whatever is there) and,
 * given `mtimeMs`, not used or rewritten since. Returns what was taken, for the caller to
 * remove (`removeTaken`), or undefined: nothing there, something else there (put back), or a
 * delete removed it from the aside name first.
 */
export function takeIfSame(file: string, ino: number | undefined, mtimeMs?: number): Taken | undefined {
  let aside = asideOf(file)
  try {
    disk.renameSync(file, aside)
  } catch (error) {
    const code = errorCode(error) ?? ''
    if (code === 'ENOENT' || !NOTHING_TAKEN.has(code)) {
      if (code === 'ENOENT') return undefined
      throw error
    }
    // Something that is not a file at the aside name (a directory planted there, or one in the
    // entry's place that cannot replace a file left there): this removal takes a name of its
    // own instead (a delete meanwhile is not coordinated with it, as before the shared name).
    aside = `${file}.${process.pid}-0.tmp`
    try {
      disk.renameSync(file, aside)
    } catch (again) {
      if (NOTHING_TAKEN.has(errorCode(again) ?? '')) return undefined
      throw again
    }
  }
  const stat = disk.lstatSync(aside, { throwIfNoEntry: false })
  if (stat === undefined) return undefined
  if ((ino !== undefined && stat.ino !== ino) || (mtimeMs !== undefined && stat.mtimeMs > mtimeMs)) {
    putBack(aside, file, stat.isDirectory())
    return undefined
  }
  return { aside, stat }
}

/** Removes a taken file: the bytes freed, or undefined when a delete removed it first. A
 *  directory (never ours) is left to the caller, which removes it its own way. */
export function removeTaken(taken: Taken): number | undefined {
  try {
    disk.unlinkSync(taken.aside)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
  return taken.stat.size
}

/** What was taken goes back to its place, unless something newer took the place meanwhile or
 *  a delete removed it from the aside name. */
function putBack(aside: string, file: string, directory: boolean): void {
  if (directory) {
    // Larder never writes directories, so only a damaged tree comes back this way.
    if (disk.lstatSync(file, { throwIfNoEntry: false }) === undefined) disk.renameSync(aside, file)
    else disk.rmSync(aside, { recursive: true, force: true })
    return
  }
  let linked: number | undefined
  try {
    disk.linkSync(aside, file)
    linked = disk.lstatSync(file, { throwIfNoEntry: false })?.ino
  } catch (error) {
    const code = errorCode(error)
    if (code !== 'EEXIST' && code !== 'ENOENT') throw error
  }
  try {
    disk.unlinkSync(aside)
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
    // A delete removed it from the aside name meanwhile (FileTier.delete): what was linked
    // back must not outlive that delete.
    if (linked !== undefined && disk.lstatSync(file, { throwIfNoEntry: false })?.ino === linked) unlinkQuietly(file)
  }
}

function unlinkQuietly(file: string): void {
  try {
    disk.unlinkSync(file)
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
  }
}
