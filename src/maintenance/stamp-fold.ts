/**
 * Keeps `tags/` bounded: past `max` stamps, the oldest are folded into the floor, so `keep`
 * remain (store/tag-clock.ts says what the floor means to readers). Runs in a maintenance
 * worker during a prune, with the maintenance lock held, so one fold at a time per namespace.
 *
 * Why: each tag ever invalidated leaves a stamp, its file, its directory of raises and a name
 * in it; an application that tags entries per row and invalidates rows left three inodes and
 * a 4 KiB directory block per row it ever changed, for ever.
 *
 * The order that keeps every reader right, while other processes read and invalidate:
 *  1. the floor is raised to the newest stamp folded (a raise, as any stamp's: it never falls);
 *  2. only then is each stamp at or below it removed: the names of its raises at or below the
 *     floor, then their directory if that leaves it empty (an invalidation that raised the tag
 *     above the floor meanwhile left a name in it: then the stamp is left whole), then its file,
 *     taken aside first and put back if it holds a time above the floor (an invalidation wrote
 *     it meanwhile; its raise is in place already, so readers never missed it).
 * A reader that reads the stamps after step 1 reads the floor with them (a raise moves the
 * directory's mtime, which makes readers read again), and a stamp at or below the floor only
 * ever made stale the entries the floor makes stale.
 */
import fs from 'node:fs'
import path from 'node:path'
import { disk, errorCode, unlinkIfThere } from '../store/disk.js'
import { OwnedTree, type Sharing } from '../store/owned-tree.js'
import { raiseFloorSync, raisesDir, readFloor, readStamp } from '../store/tag-clock.js'

/** Past `max` stamps in tags/, the oldest are folded so that `keep` remain. A stamp costs
 *  three inodes and a directory block (~4 KiB); a read after an invalidation reads the stamps
 *  of the tags it asks about, never the whole directory. Mutable for tests only. */
export const stampLimits = { max: 20_000, keep: 18_000 }

export interface FoldInput {
  task: 'fold-stamps'
  /** The cache root: nothing is listed or removed unless every directory down to tags/ is real. */
  root: string
  tagsDir: string
  shared: Sharing
  max: number
  keep: number
  /** Count what would be folded; change nothing. */
  dryRun: boolean
}

export interface FoldOutput {
  /** Stamps folded into the floor (removed, or on a dry run, that would be). */
  folded: number
  /** The floor raised to (0: no fold). */
  floor: number
}

/** A stamp file's name: the tag's xxhash64, 16 hex digits. */
const STAMP_NAME = /^[0-9a-f]{16}$/

let asides = 0

export function foldStamps(input: FoldInput): FoldOutput {
  const none: FoldOutput = { folded: 0, floor: 0 }
  const tree = new OwnedTree(input.root, input.shared, true)
  if (!tree.isRealSync(input.tagsDir)) return none
  let names: string[]
  try {
    names = fs.readdirSync(input.tagsDir).filter((name) => STAMP_NAME.test(name))
  } catch {
    return none
  }
  if (names.length <= input.max) return none
  const stamps: { file: string; at: number }[] = []
  for (const name of names) {
    const file = input.tagsDir + path.sep + name
    try {
      stamps.push({ file, at: readStamp(file) })
    } catch {
      // unreadable now: left as it is (a reader takes it for an invalidation when it was put there)
    }
  }
  const fold = stamps.length - Math.max(0, input.keep)
  if (fold <= 0) return none
  stamps.sort((a, b) => a.at - b.at)
  const floor = stamps[fold - 1]!.at
  const below = stamps.filter(({ at }) => at <= floor)
  if (input.dryRun) return { folded: below.length, floor }
  if (readFloor(input.tagsDir) < floor) raiseFloorSync(tree, input.tagsDir, floor)
  let folded = 0
  for (const stamp of below) if (removeStamp(tree, stamp.file, floor)) folded++
  return { folded, floor }
}

/** Removes the stamp `file` (step 2 above); false when it was left (raised above `floor` since,
 *  or the disk refused). */
function removeStamp(tree: OwnedTree, file: string, floor: number): boolean {
  const dir = raisesDir(file)
  try {
    const found = disk.lstatSync(dir, { throwIfNoEntry: false })
    if (found !== undefined) {
      // something foreign there, or a link above: the readers' and writers' to judge, never followed
      if (!found.isDirectory() || !tree.isRealSync(dir)) return false
      for (const name of disk.readdirSync(dir)) {
        if (Number(name) <= floor) unlinkIfThere(dir + path.sep + name)
      }
      try {
        disk.rmdirSync(dir)
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') return false // ENOTEMPTY: raised above the floor since
      }
    }
    // A name no writer's temp file takes (theirs count from 1; this one's digits start with the
    // time), and one the sweep of bookkeeping temp files removes if this worker dies here.
    const aside = `${file}.${process.pid}-${Date.now()}${String(++asides).padStart(6, '0')}.tmp`
    try {
      disk.renameSync(file, aside)
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true
      throw error
    }
    let at: number
    try {
      at = readStamp(aside)
    } catch {
      at = Infinity // unreadable: put back, as it was
    }
    if (at > floor) {
      try {
        disk.linkSync(aside, file)
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error // a newer one is there: it stays
      }
      unlinkIfThere(aside)
      return false
    }
    unlinkIfThere(aside)
    return true
  } catch {
    return false // the disk refused: the stamp stays, for the next fold
  }
}
