import type fs from 'node:fs'
import path from 'node:path'
import type { Layout } from './layout.js'
import { writeFileAtomicSync } from './atomic-write.js'
import { DIR_FLAGS, disk } from './disk.js'
import type { OwnedTree } from './owned-tree.js'
import { OwedStamps } from './owed-stamps.js'
import { ForeignFileError, readSmallFileSync } from './small-file.js'
import { oldestKey } from '../oldest-key.js'

/**
 * Tag invalidation that costs O(tags), not O(entries), and holds across every process
 * sharing the directory.
 *
 * `invalidateTags(['users'])` writes one small file, `tags/<xxhash64('users')>`, holding the
 * time of the invalidation. An entry carrying the tag is stale when it was created at or
 * before that time; a value set afterwards is fresh. Nothing is scanned or deleted: stale
 * entries read as misses and maintenance reclaims them.
 *
 * Reading a tag file on every get would cost a syscall per tag, so stamps are cached in
 * memory and the cache is trusted only while the tags directory is unchanged: same inode, same
 * mtime (every invalidation renames a file into it, which updates the mtime). One `fstat` per
 * file-tier read of a tagged entry, whatever its tag count. The memory tier asks the stamps
 * held (`isStaleHeld`) and has them checked (`look()`) on its change-log cadence instead, so
 * another process's invalidation reaches its hits within that window, as its writes do.
 *
 * An mtime is only as fine as the file system keeps it: a Linux clock tick (a few ms) on
 * ext4, xfs or tmpfs; a whole second on ext3, ext4 with 128-byte inodes, HFS+; two seconds
 * on FAT. A change within the same granule leaves the mtime as it was. So, as git does with
 * "racily clean" index entries, stamps read while the directory's mtime was still within the
 * racy window of the clock are never trusted later: the cache is trusted only when it was
 * filled RACY_MS (whole-second mtimes: COARSE_RACY_MS) or more after that mtime. Any
 * invalidation after such a fill lands in a later granule, so it changes the mtime. The cost
 * is a stamp read per tag on each read during the window after an invalidation.
 *
 * A stamp only ever rises. The file `tags/<hash>` is replaced whole, last writer wins, and
 * two processes invalidating one tag can finish in the other order than they began: one that
 * took its time early and was then descheduled would rename its older time over a newer one,
 * and entries written between the two would come back to life (found by the 8-process torture
 * test on a loaded machine). So each invalidation also creates `tags/<hash>.d/<time>` (a new
 * name, never replaced) and removes only the names below its own; a stamp is the highest of
 * these and the file. The file stays for caches shared with an older larder, which reads only
 * it. Creating the name comes first: the file's rename that follows is what moves the
 * directory's mtime, so a reader that refills on it sees both.
 *
 * Bounded: a stamp is a file, a directory and a name (the directory alone a 4 KiB block on
 * ext4), and an application that tags entries per row (`user:<id>`) and invalidates them makes
 * one per row it ever changed. Past a bound (maintenance/stamp-fold.ts), a prune folds the
 * oldest into a floor, `tags/floor.d/<time>` (raised as a stamp is, so it too only rises):
 * every tagged entry created at or before it reads as stale, whatever its tags (more misses,
 * never a stale hit), as a memory-only clock's floor does (memory-tag-clock.ts). The floor is
 * raised before any stamp below it is removed, and is read again whenever the stamps are: a
 * stamp's removal moves the directory's mtime, so a reader that finds a stamp gone has read
 * the floor raised before it.
 *
 * What this cannot see past: the `stat` itself. On NFS, the client's attribute cache may
 * answer it with the directory as it was for up to `acdirmax` (60 s by default): mount with
 * `actimeo=0` (or `noac`) where invalidations must be seen at once.
 */
const RACY_MS = 100
/** How long an open handle on the tags directory is trusted before the path is looked up
 *  again (see `#statDir`). */
const HANDLE_RECHECK_MS = 100
/** Whole-second mtimes: FAT keeps two seconds; anything finer than a second is under RACY_MS. */
const COARSE_RACY_MS = 2000 + RACY_MS

/** At most this many stamps are held (about 1 MB): past it, what is held is let go and read
 *  again as asked. An application tagging entries per row (`user:<id>`) asks about a new tag
 *  with nearly every write, and the tags directory changes only on an invalidation, which
 *  such an application may rarely make: the stamps held grew with every tag ever asked about. */
export const MAX_HELD_STAMPS = 10_000

/** #dirMtime after a failed look: the directory may be anything, so every stamp is read. */
const UNKNOWN = -2

function racyWindow(mtimeMs: number): number {
  return mtimeMs % 1000 === 0 ? COARSE_RACY_MS : RACY_MS
}

/** Tag stamps a clock holds in memory only (TagClock.heldStamps): each tag's time, and a floor
 *  at or below which every tagged entry is stale. */
export interface HeldStamps {
  stamps: [tag: string, at: number][]
  floor: number
}

/** The floor's name in the tags directory (a tag's is 16 hex digits, so no tag's can be this).
 *  Only its raises are kept, `floor.d/<time>`, no stamp file: an older larder, which reads only
 *  those, knows no floor either. */
const FLOOR = 'floor'

/** The floor of the tags directory `tagsDir` (see above); 0 when none was raised. Something
 *  that is not a directory at its name (planted, or damaged) is taken for a floor raised when
 *  it was put there, as a damaged stamp is (see readStamp): never fewer misses. */
export function readFloor(tagsDir: string): number {
  const dir = raisesDir(tagsDir + path.sep + FLOOR)
  const found = disk.lstatSync(dir, { throwIfNoEntry: false })
  if (found === undefined) return 0
  if (!found.isDirectory()) return found.mtimeMs
  return highestIn(dir)
}

/** Raises the floor of `tagsDir` to `at` (never lowers it). */
export function raiseFloorSync(tree: OwnedTree, tagsDir: string, at: number): void {
  raiseStampSync(tree, tagsDir + path.sep + FLOOR, at)
}

/** How many stamps a tag clock holds unwritten (see TagClock's #unwritten). */
const MAX_UNWRITTEN = 10_000

export class TagClock {
  readonly #layout: Layout
  readonly #stamps = new Map<string, number>()
  /** The floor of the stamps folded away (see above), as read with the stamps held; undefined:
   *  not read since they were last dropped. */
  #floor: number | undefined
  /** The tags directory as last looked at: -1, there was none; UNKNOWN, the look failed. */
  #dirMtime = -1
  #dirIno = -1
  /** When the cached stamps were read (Date.now() before the reads began). */
  #filledAt = -1
  /** An open handle on the tags directory (-1: none), and when its path was last checked. */
  #dirFd = -1
  #dirFdCheckedAt = 0
  /** After close(): no handle is opened again. */
  #closed = false
  /** Stamps this instance knows of but could not write (a failing disk): counted by its own
   *  reads until written (writeUnwritten), so a refused invalidation, its own under failOpen or
   *  one heard from another host, never leaves the entries it invalidated to be served here. */
  readonly #unwritten = new Map<string, number>()
  /** Stamps a failed read of Redis's left owed (store/owed-stamps.ts): the file tier's reads
   *  and the memory tier's hits of a tagged entry created before it miss, left in place. */
  readonly owed = new OwedStamps()

  /** No entry of the directory was created before this (store/entries-since.ts; 0: unknown):
   *  a stamp older than it is held for this instance's reads and never written. */
  entriesSince = 0

  /** Whether this instance may make the tags directory (not a read-only cache). */
  #mayCreate: boolean
  readonly #writable: boolean
  /** When something foreign was found where the tags directory belongs (a file, a FIFO): the
   *  stamps it held are lost, so every tagged entry created before then is stale here; raised
   *  to a stamp held unwritten that had to be let go (holdUnwritten). 0: never. */
  #lostBefore = 0
  #foundForeign = false

  constructor(layout: Layout, options: { readOnly?: boolean } = {}) {
    this.#layout = layout
    this.#mayCreate = options.readOnly !== true
    this.#writable = options.readOnly !== true
  }

  /** True when any of `tags` was invalidated at or after `createdAt`. Sync: called on hot reads. */
  isStale(tags: readonly string[], createdAt: number): boolean {
    return tags.length > 0 && this.latest(tags) >= createdAt
  }

  /**
   * The latest invalidation time of any of `tags` (0 if none was ever invalidated). A write
   * takes a creation time above it, so a value set after an invalidation (by any process)
   * is fresh even when both fall in the same millisecond.
   */
  latest(tags: readonly string[]): number {
    if (tags.length === 0) return 0
    let held = this.#lookAtDir() ? Math.max(this.#latestHeld(tags), this.#floorHeld()) : 0
    if (this.#unwritten.size !== 0) held = Math.max(held, this.#latestUnwritten(tags))
    return held > this.#lostBefore ? held : this.#lostBefore
  }

  /** `tags` invalidated at `at`, which the disk would not record: held here until written. */
  holdUnwritten(tags: readonly string[], at: number): void {
    for (const tag of tags) {
      const before = this.#unwritten.get(tag)
      this.#unwritten.delete(tag)
      this.#unwritten.set(tag, before === undefined ? at : Math.max(before, at))
    }
    // Bounded: past it the oldest is let go, and its stamp becomes a floor for every tag (as
    // for stamps lost with the tags directory): the entries it invalidated must not be read
    // again, so every tagged entry created at or before it reads as stale (more misses, never
    // a stale hit). A read-only instance holds every stamp it hears here for its lifetime.
    while (this.#unwritten.size > MAX_UNWRITTEN) {
      const tag = oldestKey(this.#unwritten)!
      const at = this.#unwritten.get(tag)!
      this.#unwritten.delete(tag)
      if (at > this.#lostBefore) this.#lostBefore = at
    }
  }

  /** Every tagged entry created at or before `at` is stale here from now on (the floor of the
   *  stamps a fold removed from Redis: facade/tag-invalidation.ts), as for stamps let go. */
  holdFloor(at: number): void {
    if (at > this.#lostBefore) this.#lostBefore = at
  }

  /** What this clock counts beyond the tags directory (the stamps held unwritten, and the
   *  floor of those let go or lost), for a walk in the workers that must judge entries as
   *  this instance's reads do (`larder ls`, `larder stats` of a read-only cache); undefined
   *  when it counts nothing more. */
  heldStamps(): HeldStamps | undefined {
    // Those older than every entry of the directory judge none of its files (they are held for
    // reads of Redis): a walk is not handed them (10,000 stamps to each partition's task).
    const since = this.entriesSince
    const floor = this.#lostBefore >= since ? this.#lostBefore : 0
    const stamps = since === 0 ? [...this.#unwritten] : [...this.#unwritten].filter(([, at]) => at >= since)
    return stamps.length === 0 && floor === 0 ? undefined : { stamps, floor }
  }

  /** Whether any stamp is held unwritten. */
  holdsUnwritten(): boolean {
    return this.#unwritten.size !== 0
  }

  /** Writes the stamps held unwritten, oldest first; throws the disk's failure (the rest stay).
   *  Those older than every entry of the directory stay held: no entry there needs them. */
  writeUnwritten(): void {
    if (!this.#writable) return // a read-only cache's: held, never written
    for (const [tag, at] of [...this.#unwritten]) if (at >= this.entriesSince) this.invalidate([tag], at)
  }

  #latestUnwritten(tags: readonly string[]): number {
    let latest = 0
    for (const tag of tags) {
      const at = this.#unwritten.get(tag)
      if (at !== undefined && at > latest) latest = at
    }
    return latest
  }

  /** isStale() as of the last look at the tags directory (look()): no syscall while the
   *  stamps of `tags` are held. For the memory tier, whose hits look on the change log's
   *  cadence; this instance's own invalidations are held at once (invalidate()). */
  isStaleHeld(tags: readonly string[], createdAt: number): boolean {
    if (tags.length === 0) return false
    if (this.owed.covers(tags, createdAt)) return true
    const unwritten = this.#unwritten.size === 0 ? 0 : this.#latestUnwritten(tags)
    return Math.max(this.#latestHeld(tags), this.#floorHeld(), this.#lostBefore, unwritten) >= createdAt
  }

  /** Looks at the tags directory now: the stamps held are dropped (and read again when next
   *  asked) unless it is unchanged since they were read and they can be trusted. */
  look(): void {
    try {
      this.#lookAtDir()
    } catch (error) {
      // Nothing held is trusted after a failed look: each stamp is read from its file again
      // (which fails as stale while the disk does), as latest() would.
      this.#stamps.clear()
      this.#floor = undefined
      this.#dirMtime = UNKNOWN
      throw error
    }
  }

  /** The stamps held are kept only if the tags directory is unchanged and they were read past
   *  its racy window; false when there is no tags directory (then no stamp is held). */
  #lookAtDir(): boolean {
    const dirStat = this.#statDir()
    if (dirStat === undefined) {
      // No tag was ever invalidated here (or the cache was cleared).
      this.#stamps.clear()
      this.#floor = undefined
      this.#dirMtime = -1
      this.#dirIno = -1
      return false
    }
    const unchanged = dirStat.mtimeMs === this.#dirMtime && dirStat.ino === this.#dirIno
    const trusted = unchanged && this.#filledAt - dirStat.mtimeMs >= racyWindow(dirStat.mtimeMs)
    if (!trusted) {
      this.#stamps.clear()
      this.#floor = undefined
      this.#dirMtime = dirStat.mtimeMs
      this.#dirIno = dirStat.ino
      this.#filledAt = Date.now()
    }
    return true
  }

  /** The latest stamp of `tags` held, a stamp not held read from its file. */
  #latestHeld(tags: readonly string[]): number {
    let latest = 0
    for (const tag of tags) {
      let stamp = this.#stamps.get(tag)
      if (stamp === undefined) {
        if (this.#dirMtime === -1) continue // no tags directory at the last look: nothing to read
        stamp = this.#readStamp(tag)
        this.#hold(tag, stamp)
      }
      if (stamp > latest) latest = stamp
    }
    return latest
  }

  /** The floor of the stamps folded away, read with the stamps held (one read after each
   *  change of the directory); 0 when there is no tags directory. */
  #floorHeld(): number {
    if (this.#floor !== undefined) return this.#floor
    if (this.#dirMtime === -1) return 0 // no tags directory at the last look: nothing to read
    const floor = readFloor(this.#layout.tagsDir)
    this.#floor = floor
    return floor
  }

  /**
   * The tags directory's inode and mtime, from an open handle on it: an `fstat` costs about
   * 1 µs here against 2.3 µs for a `stat` of its path (the path walk and its checks), and this
   * runs on every file-tier read of a tagged entry (and on each look of the memory tier). The
   * handle answers for the directory it was opened on; the path is looked up again when that
   * directory is gone (no links left), and at most HANDLE_RECHECK_MS after the last look,
   * which bounds how long a tags directory moved away and replaced (larder never does; an
   * operator might) goes unnoticed. No handle (it could not be opened, or no O_DIRECTORY here): the path each time.
   */
  #statDir(): fs.Stats | undefined {
    if (this.#dirFd >= 0) {
      let held: fs.Stats | undefined
      try {
        held = disk.fstatSync(this.#dirFd)
      } catch {
        this.#closeDir()
      }
      if (held !== undefined && held.nlink > 0 && Date.now() - this.#dirFdCheckedAt < HANDLE_RECHECK_MS) return held
    }
    let found = disk.statSync(this.#layout.tagsDir, { throwIfNoEntry: false })
    if (found === undefined && this.#mayCreate && !this.#closed) {
      // No tag was ever invalidated here. Made now (empty, as an invalidation would make it)
      // so that a handle can be held on it: without one, every read of a tagged entry would
      // pay a failing `stat` of the path. Once per instance; if it cannot be made, the path.
      this.#mayCreate = false
      try {
        this.#layout.tree.dirSync(this.#layout.tagsDir)
        found = disk.statSync(this.#layout.tagsDir, { throwIfNoEntry: false })
      } catch {
        // a read-only or failing disk: nothing to hold; the read goes on without it
      }
    }
    if (found !== undefined && !found.isDirectory()) {
      // Something foreign where the tags directory belongs (a file, a FIFO): the stamps it held
      // are lost, so every tagged entry created before now is stale here. A writable instance
      // puts a directory back (the foreign thing removed and reported as corrupt, through the
      // owned tree); either way the reads go on, as misses of those entries, not disk errors.
      if (!this.#foundForeign) this.#lostBefore = Math.max(this.#lostBefore, Date.now())
      this.#foundForeign = true
      if (this.#writable && !this.#closed) {
        try {
          this.#layout.tree.dirSync(this.#layout.tagsDir)
          found = disk.statSync(this.#layout.tagsDir, { throwIfNoEntry: false })
        } catch {
          // a read-only or failing disk: read on without stamps
        }
      }
      if (found !== undefined && !found.isDirectory()) found = undefined
    }
    if (found === undefined) {
      this.#closeDir()
      return undefined
    }
    this.#dirFdCheckedAt = Date.now()
    if (this.#dirFd >= 0) {
      const held = disk.fstatSync(this.#dirFd)
      if (held.ino === found.ino && held.dev === found.dev) return found
      this.#closeDir()
    }
    if (DIR_FLAGS !== undefined && !this.#closed) {
      try {
        const fd = disk.openSync(this.#layout.tagsDir, DIR_FLAGS)
        let same = false
        try {
          const opened = disk.fstatSync(fd)
          same = opened.ino === found.ino && opened.dev === found.dev // else replaced between the two looks
        } finally {
          if (same) this.#dirFd = fd
          else disk.closeSync(fd)
        }
      } catch {
        // not readable, or a link now: the path it is, until the next check
      }
    }
    return found
  }

  #closeDir(): void {
    if (this.#dirFd < 0) return
    try {
      disk.closeSync(this.#dirFd)
    } catch {
      // already gone
    }
    this.#dirFd = -1
  }

  /** Lets go of the handle on the tags directory (the cache is closing). */
  close(): void {
    this.#closed = true
    this.#closeDir()
  }

  /** Records that `tags` are invalid as of `at`. Each file is replaced atomically, never
   *  through a link (atomic-write.ts). */
  invalidate(tags: readonly string[], at: number): void {
    for (const tag of tags) {
      const file = this.#layout.tagPath(tag)
      raiseStampSync(this.#layout.tree, file, at)
      writeFileAtomicSync(this.#layout.tree, file, Buffer.from(`${at}\n${tag}\n`))
      this.#hold(tag, at)
      const unwritten = this.#unwritten.get(tag)
      if (unwritten !== undefined && unwritten <= at) this.#unwritten.delete(tag)
    }
  }

  /** Whether the directory records `tag`'s stamp at `at` exactly (its raise of that time is
   *  there): one lstat, the common answer when an open reads again the stamps Redis holds, which
   *  the directory took at an earlier open or heard (false: not known so, the full read decides). */
  recordsExactly(tag: string, at: number): boolean {
    try {
      return disk.lstatSync(raisesDir(this.#layout.tagPath(tag)) + path.sep + String(at), { throwIfNoEntry: false })?.isFile() === true
    } catch {
      return false
    }
  }

  /** Holds `tag`'s stamp, within MAX_HELD_STAMPS (each one let go is read again when asked). */
  #hold(tag: string, stamp: number): void {
    if (this.#stamps.size >= MAX_HELD_STAMPS && !this.#stamps.has(tag)) this.#stamps.clear()
    this.#stamps.set(tag, stamp)
  }

  /** How many stamps are held (tests). */
  get heldCount(): number {
    return this.#stamps.size
  }

  #readStamp(tag: string): number {
    return readStamp(this.#layout.tagPath(tag))
  }
}

/**
 * The invalidation time a stamp file records; 0 when there is none. A damaged stamp, or
 * something foreign planted at its name (a link, a FIFO: never followed, never waited on),
 * must not resurrect entries: it counts as an invalidation when it was put there (its own
 * mtime), or now if even that cannot be read. Shared with maintenance workers (entry-scan.ts).
 */
export function readStamp(file: string): number {
  const raised = highestRaise(file)
  const written = writtenStamp(file)
  return raised > written ? raised : written
}

/** Where the stamps that only rise live for the stamp file `file`: one empty file per
 *  invalidation, named by its time. */
export function raisesDir(file: string): string {
  return `${file}.d`
}

/**
 * Records `at` as a time `file`'s stamp has reached: a new name, made with O_EXCL (never
 * through a planted link), then the names below it removed. Nobody removes a name above
 * their own, so the highest stays whatever order the writers finish in.
 */
function raiseStampSync(tree: OwnedTree, file: string, at: number): void {
  const dir = raisesDir(file)
  const name = dir + path.sep + String(at)
  const create = (): void => {
    // A fold (maintenance/stamp-fold.ts) removes the directory of a stamp it folded once it
    // is empty: made again if that happened between the check and the create.
    for (let attempt = 0; ; attempt++) {
      tree.dirSync(dir)
      let fd: number
      try {
        fd = disk.openSync(name, 'wx', tree.fileMode)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 3) continue
        throw error
      }
      try {
        if (tree.shared !== false) disk.fchmodSync(fd, tree.fileMode) // the umask filtered open()'s mode
      } finally {
        disk.closeSync(fd)
      }
      return
    }
  }
  try {
    create()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    const found = disk.lstatSync(name)
    if (!found.isFile()) {
      tree.removeForeignSync(name, found, 'where a tag stamp belongs')
      create()
    }
  }
  if (!tree.isRealSync(dir)) return // never unlink through a link planted meanwhile
  for (const other of disk.readdirSync(dir)) {
    const time = Number(other)
    if (!(time < at)) continue
    try {
      disk.unlinkSync(dir + path.sep + other)
    } catch {
      // another writer removed it first
    }
  }
}

/** The highest time under `file`'s raises directory; 0 when there is none. Read only when
 *  it is a real directory: a link planted there is never followed. */
function highestRaise(file: string): number {
  const dir = raisesDir(file)
  const found = disk.lstatSync(dir, { throwIfNoEntry: false })
  if (found === undefined || !found.isDirectory()) return 0
  return highestIn(dir)
}

/** The highest time named in the raises directory `dir`. */
function highestIn(dir: string): number {
  let highest = 0
  for (const name of disk.readdirSync(dir)) {
    const time = Number(name)
    if (Number.isFinite(time) && time > highest) highest = time
  }
  return highest
}

/** The time the stamp file itself records (the last writer's). */
function writtenStamp(file: string): number {
  let text: string | undefined
  try {
    text = readSmallFileSync(file)
  } catch (error) {
    if (!(error instanceof ForeignFileError)) throw error
  }
  if (text === undefined) {
    const found = disk.lstatSync(file, { throwIfNoEntry: false })
    return found === undefined ? 0 : found.isFile() ? Date.now() : found.mtimeMs
  }
  const stamp = Number(text.slice(0, text.indexOf('\n')))
  return Number.isFinite(stamp) && stamp > 0 ? stamp : disk.lstatSync(file).mtimeMs
}
