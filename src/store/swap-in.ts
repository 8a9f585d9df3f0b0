/**
 * An entry file replaced by a rewrite of itself (the same key, value, times and tags, written
 * beside it as an exclusive temp file): `rekey` seals it under another key, compress-later
 * compresses a value written raw. The rewrite may replace only the inode that was read: the
 * old file is renamed aside (so no writer can slip in between the check and the swap),
 * checked (same inode, mtime and size), and the new one linked into the empty place; a link
 * that finds a file there means a writer put a newer entry there meanwhile, and that one
 * stays. Readers see the old entry, the new one or (for the two system calls between) a miss:
 * never a wrong value.
 */
import type fs from 'node:fs'
import path from 'node:path'
import { disk, errorCode, unlinkIfThere } from './disk.js'
import { rootAbove } from './layout.js'
import { chainIsReal } from './owned-tree.js'
import { asideOf } from './take-aside.js'

/**
 * The rewritten entry (`temp`, beside it) swapped in if the entry is still the one read. The entry
 * goes aside under the name every removal shares (store/take-aside.ts), so a `delete()` of the
 * key in that moment, which finds no entry at the name, removes it from there: the rewriter then
 * finds its aside gone, and takes away the rewritten copy it linked, which would otherwise
 * bring the deleted entry back.
 */
export function swapIfSame(file: string, temp: string, judged: fs.Stats): 'swapped' | 'changed' {
  // The rewrite may have taken long (a large entry reframed): a link put in place of the
  // partition (or a directory above) meanwhile is never renamed through, nor linked into.
  if (!chainIsReal(rootAbove(file, 4), path.dirname(file))) return 'changed'
  const aside = asideOf(file)
  try {
    disk.renameSync(file, aside)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 'changed'
    throw error
  }
  const moved = disk.lstatSync(aside, { throwIfNoEntry: false })
  if (moved === undefined) return 'changed' // deleted from the aside name already
  if (moved.ino !== judged.ino || moved.mtimeMs !== judged.mtimeMs || moved.size !== judged.size) {
    // Another entry than the one judged: it goes back, unless a delete took it from the
    // aside name meanwhile (then what was linked back goes too).
    const back = linkUnlessTaken(aside, file)
    if (!unlinkIfThere(aside) && back && disk.lstatSync(file, { throwIfNoEntry: false })?.ino === moved.ino) unlinkIfThere(file)
    return 'changed'
  }
  // The rewrite gone (a clear() moved the partition away, the temp with it): nothing to place.
  const rewritten = disk.lstatSync(temp, { throwIfNoEntry: false })?.ino
  if (rewritten === undefined) {
    putBackAside(aside, file)
    return 'changed'
  }
  let placed: boolean
  try {
    placed = linkUnlessTaken(temp, file)
  } catch (error) {
    // No hard links here (EPERM on vfat or exFAT, some network and FUSE mounts): the entry goes
    // back to its name rather than stay aside, a miss until maintenance swept it.
    putBackAside(aside, file)
    throw error
  }
  unlinkIfThere(temp)
  if (!unlinkIfThere(aside)) {
    // A delete came while the entry was aside: the copy linked in its place goes too.
    if (placed && disk.lstatSync(file, { throwIfNoEntry: false })?.ino === rewritten) unlinkIfThere(file)
    return 'changed'
  }
  return placed ? 'swapped' : 'changed'
}

/** Links `from` at `to` unless a file is there (a newer entry) or `from` is gone (deleted). */
export function linkUnlessTaken(from: string, to: string): boolean {
  try {
    disk.linkSync(from, to)
    return true
  } catch (error) {
    const code = errorCode(error)
    if (code === 'EEXIST' || code === 'ENOENT') return false
    throw error
  }
}

/** The entry taken aside goes back to its name when nothing is there (a rename: this is for
 *  a file system without links; a newer entry placed meanwhile stays, and the aside goes). */
function putBackAside(aside: string, file: string): void {
  try {
    if (disk.lstatSync(file, { throwIfNoEntry: false }) === undefined) disk.renameSync(aside, file)
    else unlinkIfThere(aside)
  } catch {
    // gone from the aside name (a delete, a clear), or the disk failing: the caller's error says
  }
}
