import path from 'node:path'
import { hasher } from '../format/checksum.js'
import { TREE_VERSION } from '../format/entry-format.js'
import { disk } from './disk.js'
import { chainIsReal, OwnedTree, type Sharing } from './owned-tree.js'

/**
 * Where things live on disk:
 *
 *   <dir>/CACHEDIR.TAG                      marks the tree as a cache for backup tools
 *   <dir>/v1/                               the format version: a new format gets a new tree
 *   <dir>/v1/<ns>/                          one namespace ("default", or "ns-<xxhash64>")
 *   <dir>/v1/<ns>/<pp>/<hash>               an entry: hash = xxhash64(key) as 16 hex digits,
 *                                           pp = its first two digits (256 partitions)
 *   <dir>/v1/<ns>/<pp>/<hash>.<pid>-<n>.tmp a temp file being written (stray if its writer died)
 *   <dir>/v1/<ns>/tags/<xxhash64(tag)>      when a tag was last invalidated
 *   <dir>/v1/<ns>/meta/totals/              running totals: a base from the last scan plus one
 *                                           delta file per writing process (maintenance/totals.ts)
 *   <dir>/v1/<ns>/meta/hits/                hit-count logs for LFU (maintenance/hit-log.ts)
 *   <dir>/v1/<ns>/meta/maintenance.lock/    held by the one process pruning (or verifying, rekeying), with its owner and purpose (maintenance/lock.ts)
 *   <dir>/v1/<ns>/meta/changes              a byte appended by every write (store/change-clock.ts)
 *   <dir>/v1/<ns>/meta/name                 the namespace's name, for operators (store/namespace-name.ts)
 *   <dir>/v1/<ns>/meta/since                no entry here was made before this (store/entries-since.ts)
 *   <dir>/v1/.trash-<pid>-<ms>-<random>/    partitions a `clear()` moved aside, being deleted
 *
 * Everything below <dir> is ours and is never followed through a link (owned-tree.ts); every
 * file is written by atomic-write.ts. Directories are 0700 and files 0600 unless the cache is
 * shared deliberately (the `shared` option).
 *
 * Keys never appear in paths (only their hashes), so no key can escape the directory or
 * collide with a name the file system treats specially. The key is stored inside the entry
 * and compared on read, so a hash collision reads as a miss, never as another key's value.
 *
 * Why one level of 256 partitions: creating a file costs 0.2–0.8 ms of kernel time here and
 * each new leaf directory as much again, so a 256×256 tree pays a mkdir for most of its
 * first 65,536 writes; 256 directories are all created within the first few thousand writes
 * and ext4's hashed directories stay fast to millions of entries (4,000 per partition).
 * Partitions are created when first written (each write checks its directories from the root
 * down with lstat and makes what is missing), so opening a cache costs no partition mkdirs.
 */
export const ENTRY_NAME = /^[0-9a-f]{16}$/
/** A partition directory's name. */
export const PARTITION_NAME = /^[0-9a-f]{2}$/
/** A temp file: ours, `<hash>.<pid>-<n>.tmp`, or `<hash>.<digits>` left by versions that wrote
 *  through write-file-atomic. */
export const TEMP_NAME = /^[0-9a-f]{16}\.[0-9]+(-[0-9]+\.tmp)?$/
/** A temp file of atomic-write.ts beside a bookkeeping file (tags/, meta/): `<name>.<pid>-<n>.tmp`. */
export const BOOKKEEPING_TEMP_NAME = /\.[0-9]+-[0-9]+\.tmp$/
/** A dead maintenance lock a taker moved aside (`maintenance.lock.<pid>-<hex>.dead` in
 *  `meta/`, maintenance/lock.ts): a taker killed before it removed it leaves it for the
 *  sweep of bookkeeping temps. */
export const DEAD_LOCK_NAME = /^maintenance\.lock\.[0-9]+-[0-9a-f]+\.dead$/
/** A `clear()`'s trash directory in `<dir>/v1/`: `.trash-<pid>-<ms>-<random>`. */
export const TRASH_NAME = /^\.trash-[0-9]+-[0-9]+-[0-9a-z]+$/

/** A fresh trash directory name for a `clear()` (in the version directory, beside the namespaces). */
export function trashName(): string {
  return `.trash-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`
}

/** When a trash directory was made (ms since the epoch), from its name. */
export function trashTime(name: string): number {
  return Number(name.split('-')[2])
}

/**
 * Deletes a trash directory, only while `v1/` is a real directory (looked at here, not only by
 * the caller: a clear's trash is removed in a worker a while after it was made, and a sweep
 * removes one trash after another). Whatever sits at the name is looked at first: a link
 * (planted) is unlinked, never entered, and the recursive removal of a real one never follows
 * the links inside it.
 */
export async function removeTrash(trash: string): Promise<void> {
  if (!chainIsReal(rootAbove(trash, 2), path.dirname(trash))) return
  const found = disk.lstatSync(trash, { throwIfNoEntry: false })
  if (found === undefined) return
  if (!found.isDirectory()) disk.unlinkSync(trash)
  else await disk.rm(trash, { recursive: true, force: true })
}

/**
 * The bytes a trash directory holds, for the report of the sweep that removes it: the sizes of
 * the regular files in its tree, each looked at with lstat, so a link (planted, or one at the
 * trash name itself) counts for nothing and nothing behind it is entered. Whatever cannot be
 * read (gone meanwhile, another process removing it too) counts for nothing.
 */
export function trashBytes(trash: string): number {
  let bytes = 0
  const dirs: string[] = []
  const look = (file: string): void => {
    let stat
    try {
      stat = disk.lstatSync(file, { throwIfNoEntry: false })
    } catch {
      return
    }
    if (stat === undefined) return
    if (stat.isDirectory()) dirs.push(file)
    else if (stat.isFile()) bytes += stat.size
  }
  look(trash)
  // A stack rather than recursion: a planted tree may be deeper than the call stack.
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    let names: string[]
    try {
      names = disk.readdirSync(dir)
    } catch {
      continue
    }
    for (const name of names) look(path.join(dir, name))
  }
  return bytes
}

/**
 * The cache root of a path we handed to a worker thread, which gets paths, not the layout:
 * an entry file is 4 levels below it (`v1/<ns>/<pp>/<hash>`), a partition 3, a namespace 2,
 * a meta subdirectory (`v1/<ns>/meta/hits`) 4.
 */
export function rootAbove(file: string, levels: number): string {
  let at = file
  for (let i = 0; i < levels; i++) at = path.dirname(at)
  return at
}

/**
 * How a key becomes a file name: xxhash64, 16 hex digits. An object rather than a function so
 * that tests can replace `hash` to force two keys onto one name (a 64-bit collision cannot be
 * found on demand). Internal: not exported from the package.
 */
export const keyNames = {
  hash: (key: string): string => hasher().h64ToString(key),
}

export class Layout {
  readonly root: string
  /** The directories below `root`, checked before every write and removal. */
  readonly tree: OwnedTree
  /** `<dir>/v1`: where the namespaces and the trash of `clear()` live. */
  readonly versionDir: string
  readonly namespaceDir: string
  readonly tagsDir: string
  readonly metaDir: string
  readonly totalsDir: string
  readonly hitsDir: string
  readonly activityDir: string
  /** What Redis still missed when an instance closed (facade/owed-to-redis.ts). */
  readonly redisOwedDir: string
  /** The maintenance lock (maintenance/lock.ts): held by a prune, verify or rekey. */
  readonly lockDir: string
  /** Where explicit maintenance waiting for the lock marks that it waits (lock.ts, LockWait). */
  readonly lockWantedDir: string

  /** `directory`: a namespace found on disk by its directory name (`default`, `ns-<hash>`),
   *  for operators listing namespaces whose names they do not know (see namespace-name.ts). */
  constructor(root: string, namespace: string, shared: Sharing = false, directory?: string) {
    this.root = root
    this.tree = new OwnedTree(root, shared)
    const ns = directory ?? (namespace === '' ? 'default' : 'ns-' + hasher().h64ToString(namespace))
    this.versionDir = path.join(root, `v${TREE_VERSION}`)
    this.namespaceDir = path.join(this.versionDir, ns)
    this.tagsDir = path.join(this.namespaceDir, 'tags')
    this.metaDir = path.join(this.namespaceDir, 'meta')
    this.totalsDir = path.join(this.metaDir, 'totals')
    this.hitsDir = path.join(this.metaDir, 'hits')
    this.activityDir = path.join(this.metaDir, 'activity')
    this.redisOwedDir = path.join(this.metaDir, 'redis-owed')
    this.lockDir = path.join(this.metaDir, 'maintenance.lock')
    this.lockWantedDir = path.join(this.metaDir, 'maintenance.wanted')
  }

  /** Whether the namespace directory is gone (a cache removed while this instance ran):
   *  bookkeeping written at close and exit (the running totals, the activity record) is then
   *  skipped, rather than making a removed cache directory again. A disk that cannot say
   *  (EIO, EACCES) is not taken for one without it: the write goes on, and fails as any. */
  namespaceGone(): boolean {
    try {
      return disk.statSync(this.namespaceDir, { throwIfNoEntry: false })?.isDirectory() !== true
    } catch {
      return false
    }
  }

  /** 16 hex digits of xxhash64 of the key (see `keyNames`). */
  hashKey(key: string): string {
    return keyNames.hash(key)
  }

  /** The partition directory of an entry hash. */
  partitionDir(hash: string): string {
    return this.namespaceDir + path.sep + hash.slice(0, 2)
  }

  entryPath(hash: string): string {
    return this.namespaceDir + path.sep + hash.slice(0, 2) + path.sep + hash
  }

  /** The directories of bookkeeping files (not entries), whose stray temp files a prune or
   *  verify sweeps: a writer killed mid-write leaves one, and nothing else would reclaim it. */
  get bookkeepingDirs(): string[] {
    return [this.tagsDir, this.metaDir, this.totalsDir, this.activityDir, this.hitsDir, this.redisOwedDir]
  }

  tagPath(tag: string): string {
    return this.tagsDir + path.sep + hasher().h64ToString(tag)
  }
}

export const CACHEDIR_TAG = `Signature: 8a477f597d28d172789f06886806bc55
# This file is a cache directory tag created by larder.
# For information about cache directory tags, see https://bford.info/cachedir/
`
