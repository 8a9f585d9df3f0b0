import fs, { type Stats } from 'node:fs'
import path from 'node:path'
import { TREE_VERSION } from '../format/entry-format.js'
import { LarderError } from '../errors.js'
import { closeQuietly, writeAllSync } from './atomic-write.js'
import { disk } from './disk.js'
import { NAMESPACE_DIRECTORY } from './namespace-name.js'
import { CACHEDIR_TAG, TRASH_NAME } from './layout.js'
import { ForeignFileError, readSmallFileSync } from './small-file.js'

/**
 * **The one rule for which directories larder may make a cache of**, shared by `Larder.open`
 * (tiers/file-tier.ts) and the CLI (cli/context.ts). A cache's root is marked with
 * `CACHEDIR.TAG`, and backup tools (`tar --exclude-caches`, borg, restic) skip whatever a tagged
 * folder holds: tagging a folder of the user's own files (a project, a home directory, /tmp)
 * silently drops those files from every backup. So larder writes only into a directory it
 * creates, an empty one, or one that is already a larder cache.
 */

/** Whether `dir` holds the CACHEDIR.TAG that larder writes into every cache it creates (a
 *  small regular file: a link, a FIFO or a huge file planted under that name is not one, and
 *  is neither followed, waited on nor read whole). */
export function isLarderCache(dir: string): boolean {
  try {
    const tag = readSmallFileSync(path.join(dir, 'CACHEDIR.TAG')) ?? ''
    return tag.startsWith('Signature: 8a477f597d28d172789f06886806bc55') && tag.includes('larder')
  } catch {
    return false
  }
}

/** A tag written again in place: never through a link, never waiting on a FIFO, never made. */
const REWRITE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK

/**
 * Writes whole again a CACHEDIR.TAG (`file`) that holds only the start of larder's, as an
 * opener killed between the tag's exclusive create and its write leaves it (empty, or cut
 * short); the caller found something at the name when it went to create it. Such a tag marked
 * nothing, and was never written again: the CLI took the directory for one that is not a
 * cache (every command but `set` refused it) and backup tools did not skip it, for good.
 * Written in place, not through a temp file and a rename: the root holds only the tag and
 * `v1/` (a temp file a kill left beside the tag would make the next open refuse the root as
 * someone's folder), and the tag's bytes never change, so a write cut short again leaves only
 * a shorter start, written whole by the next open. Anything else under the name (another
 * tool's tag, a link) is left as it is.
 */
export function completeCacheTag(file: string): void {
  const bytes = Buffer.from(CACHEDIR_TAG)
  let found: string | undefined
  try {
    found = readSmallFileSync(file)
  } catch (error) {
    if (error instanceof ForeignFileError) return
    throw error
  }
  if (found === undefined || found.length >= CACHEDIR_TAG.length || !CACHEDIR_TAG.startsWith(found)) return
  const fd = disk.openSync(file, REWRITE_FLAGS)
  try {
    const stat = disk.fstatSync(fd)
    if (stat.isFile() && stat.nlink === 1) writeAllSync(fd, bytes, file) // one name: never a file also elsewhere
  } finally {
    closeQuietly(fd)
  }
}

/** The disk's error when `dir`'s CACHEDIR.TAG cannot be read (EACCES: the cache of a user
 *  this process may not read as; EIO), which isLarderCache answers as no cache: the CLI
 *  reports that failure, not "not a larder cache". Undefined when it was read, is missing, or
 *  something foreign is at its name. */
export function tagReadFailure(dir: string): Error | undefined {
  try {
    readSmallFileSync(path.join(dir, 'CACHEDIR.TAG'))
    return undefined
  } catch (error) {
    return error instanceof ForeignFileError ? undefined : (error as Error)
  }
}

/**
 * What in the existing directory `dir` is not larder's, as a few names for a message, or
 * undefined when larder may write into it: a larder cache, an empty directory (an empty
 * `lost+found` aside: a file system's root), or one holding only what larder makes there (`CACHEDIR.TAG`, and `v1/` holding only namespace directories
 * and a clear's trash). The last is a cache another process is creating right now (it makes
 * `v1/<ns>` before it writes the tag), or one whose tag was lost. Throws what the disk throws
 * (the caller's failing disk).
 */
export function foreignContents(dir: string): string | undefined {
  if (isLarderCache(dir)) return undefined
  const versionDir = `v${TREE_VERSION}`
  const foreign = disk.readdirSync(dir).filter((name) => {
    if (name === 'CACHEDIR.TAG') return false
    // The root of a file system of its own (a volume or disk given to the cache) holds an
    // empty lost+found that mkfs made: nothing of the user's.
    if (name === 'lost+found') return !isEmptyDirectory(path.join(dir, name))
    if (name !== versionDir) return true
    return !holdsOnlyNamespaces(path.join(dir, name))
  })
  if (foreign.length === 0) return undefined
  const shown = foreign.sort().slice(0, 3).join(', ')
  return foreign.length > 3 ? `${shown} and ${foreign.length - 3} more` : shown
}

/** Whether `dir` is a real directory holding nothing (one that cannot be read is not). */
function isEmptyDirectory(dir: string): boolean {
  try {
    return disk.lstatSync(dir).isDirectory() && disk.readdirSync(dir).length === 0
  } catch {
    return false
  }
}

/** Whether `versionDir` is a real directory holding nothing but namespace directories and a
 *  clear's trash (a folder of the user's that happens to be called `v1` holds other names). */
function holdsOnlyNamespaces(versionDir: string): boolean {
  if (disk.lstatSync(versionDir, { throwIfNoEntry: false })?.isDirectory() !== true) return false
  return disk.readdirSync(versionDir).every((name) => NAMESPACE_DIRECTORY.test(name) || TRASH_NAME.test(name))
}

/**
 * `Larder.open`'s check of its directory (a writable instance's, before it creates anything):
 * refuses something that is not a directory (refuseNonDirectory) and an existing directory of
 * someone's own files (ERR_INVALID_OPTION, field `dir`). A missing directory is created by
 * larder, and is its own. `found`: what refuseNonDirectory found there, when the caller has
 * just asked it (one stat of the root at open, not two).
 */
export function refuseForeignRoot(root: string, found: Stats | undefined = refuseNonDirectory(root)): void {
  if (found === undefined) return
  const foreign = foreignContents(root)
  if (foreign === undefined) return
  throw new LarderError(
    'ERR_INVALID_OPTION',
    `Invalid option "dir": ${root} is not a larder cache and holds files that are not larder's (${foreign}): larder writes only into a directory it creates, an empty one or a larder cache, so that a folder of your own files is never marked as a cache (its CACHEDIR.TAG would make backup tools such as tar --exclude-caches skip the folder). Give the cache a directory of its own, such as a new one inside this folder`,
    { field: 'dir' },
  )
}

/**
 * Refuses, at open, a `dir` that exists and is not a directory (a file, a FIFO, a device:
 * ERR_INVALID_OPTION, field `dir`): a cache there could never store anything, every write a
 * silent drop. What stat finds otherwise: a directory, or undefined when nothing is there.
 * A directory replaced later, while the cache runs, is a failing disk instead (misses and
 * drops, the breaker). A path through a file is refused the same way, naming the file. Throws
 * what the disk throws otherwise.
 */
export function refuseNonDirectory(root: string): Stats | undefined {
  let found: Stats | undefined
  try {
    found = disk.statSync(root, { throwIfNoEntry: false })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') refuseThroughNonDirectory(root)
    throw error
  }
  // Nothing there: made by larder, unless its path goes through a file (Node 22 and later
  // answer such a path as missing here, not with ENOTDIR).
  if (found === undefined) refuseThroughNonDirectory(root)
  if (found === undefined || found.isDirectory()) return found
  throw new LarderError(
    'ERR_INVALID_OPTION',
    `Invalid option "dir": ${root} is ${kindOf(found)}, not a directory: a cache there could store nothing`,
    {
      field: 'dir',
    },
  )
}

/** A `dir` whose path goes through something that is not a directory (`/etc/hosts/cache`):
 *  refused, naming the first such ancestor (ERR_INVALID_OPTION, field `dir`); returns when none
 *  is found (the path changed meanwhile: the caller throws the disk's error). */
function refuseThroughNonDirectory(root: string): void {
  const above = nonDirectoryAbove(root)
  if (above === undefined) return
  throw new LarderError(
    'ERR_INVALID_OPTION',
    `Invalid option "dir": ${root} lies under ${above}, not a directory: a cache there could store nothing`,
    {
      field: 'dir',
    },
  )
}

/** The first ancestor of `root` that exists and is not a directory, as `<path>, which is a
 *  file` (a FIFO…), or undefined when there is none (the CLI's check of `--dir` too). */
export function nonDirectoryAbove(root: string): string | undefined {
  const absolute = path.resolve(root)
  let at = path.parse(absolute).root
  for (const part of absolute
    .split(path.sep)
    .filter((name) => name !== '')
    .slice(0, -1)) {
    at = path.join(at, part)
    const found = disk.statSync(at, { throwIfNoEntry: false })
    if (found === undefined) return undefined
    if (!found.isDirectory()) return `${at}, which is ${kindOf(found)}`
  }
  return undefined
}

function kindOf(found: Stats): string {
  return found.isFile() ? 'a file' : found.isFIFO() ? 'a FIFO' : found.isSocket() ? 'a socket' : 'a device or other non-directory'
}
