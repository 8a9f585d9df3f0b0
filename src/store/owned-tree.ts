import path from 'node:path'
import type { Stats } from 'node:fs'
import { disk, errorCode } from './disk.js'

/**
 * The directories larder owns below the cache root, and the rule that keeps every write and
 * removal inside them: **nothing below the root is ever followed**.
 *
 * The root (`dir`) is the user's choice and may be a symlink they made; everything below it
 * is ours. Before a directory of ours is used, each directory between the root and it is
 * looked at with `lstat`: a real directory is used; a missing one is created (one level at a
 * time, never `mkdir -p` through unchecked components); anything else — a symlink, a file, a
 * FIFO — was planted or damaged, so it is removed (the link itself, never what it points
 * to), reported as foreign (the facade counts it as corrupt), and a real directory is made.
 * With owner-only modes, a directory owned by another user (root excepted, as ssh's
 * StrictModes allows) is not used either.
 *
 * What this cannot close: Node has no openat(2), so a path is resolved again by each call
 * after its check. An attacker who can write inside the tree and swaps a directory for a
 * link in the microseconds between the check and the use is not stopped by it; that is why
 * `open()` refuses a tree that others can write (see `trustProblem`), and why the README
 * says the directory must be trusted.
 */
export type Sharing = false | 'group' | 'everyone'

/** What a directory's own lstat found when its chain was checked: which inode it is. */
interface CheckedDir {
  dev: number
  ino: number
  uid: number
}

/** Checked directories remembered per tree (a namespace has ~270: partitions, tags, meta);
 *  past this, the memory is dropped and rebuilt by the next checks. */
const CHECKED_MAX = 4096

/**
 * The cache roots (resolved paths) this process has seen as directories, or made: their
 * parents are never made again. Process-wide, not per tree: a server opens a namespace (a new
 * instance, a new tree) on a team's first upload and reopens teams it closed, and an
 * application may open a second instance of a directory; each new tree would otherwise take a
 * project deleted under the running process for a cache that never had its directory, and
 * bring the project back. One path per directory a process ever opened: never pruned (a root
 * forgotten would be recreated with its parents).
 */
const rootsSeen = new Set<string>()

/** Called for each foreign thing found and removed where something of ours belongs. */
export type ForeignReport = (file: string, reason: string) => void

/** Permission bits for a sharing level. Owner-only by default; 'group' adds setgid on
 *  directories so every file keeps the directory's group, whoever writes it. */
export function modesFor(shared: Sharing): { dir: number; file: number } {
  if (shared === 'group') return { dir: 0o2770, file: 0o660 }
  if (shared === 'everyone') return { dir: 0o777, file: 0o666 }
  return { dir: 0o700, file: 0o600 }
}

/** The sharing level a directory's mode says it was made with (for worker threads, which
 *  are handed paths, not options). */
export function sharingOf(dirMode: number): Sharing {
  if ((dirMode & 0o002) !== 0) return 'everyone'
  if ((dirMode & 0o020) !== 0) return 'group'
  return false
}

export class OwnedTree {
  readonly root: string
  readonly shared: Sharing
  readonly dirMode: number
  readonly fileMode: number
  /** Set by the facade: counts and reports what was removed. */
  onForeign: ForeignReport = () => {}
  /** This process's user; undefined where there are no uids (Windows). */
  readonly #uid = process.getuid?.()
  /** Directories whose whole chain from the root a `dirSync` found real and ours, with what
   *  its own lstat of the directory found (see dirSync). */
  readonly #checked = new Map<string, CheckedDir>()
  /** The root's resolved path: its key in `rootsSeen`. */
  readonly #rootKey: string

  /** `rootExisted`: the tree is for a root another thread opened (a maintenance worker is
   *  handed its paths): its parents are never made, whatever this thread has seen. */
  constructor(root: string, shared: Sharing = false, rootExisted = false) {
    this.root = root
    this.shared = shared
    const modes = modesFor(shared)
    this.dirMode = modes.dir
    this.fileMode = modes.file
    this.#rootKey = path.resolve(root)
    if (rootExisted) rootsSeen.add(this.#rootKey)
  }

  /**
   * Makes `dir` (the root or below it) a usable directory of ours: every directory from the
   * root down is checked with lstat and, where missing or foreign, made. Throws what the
   * disk throws (ENOTDIR when the root itself is not a directory: that is the user's, and
   * never removed).
   *
   * A directory whose chain was found real is remembered with its inode (device, inode,
   * owner), and the next call is one `lstat` of the directory's whole path: if it still finds
   * that same directory, the chain is taken as checked (one syscall a write instead of one per
   * level; a partition's chain is four). A link planted since, at any level, is still never
   * followed: at the directory itself, lstat sees the link; at a level above, the path now
   * resolves through the link to some other directory (another inode, or nothing), and a
   * nothing or a different inode sends the call through the full check, which removes the link.
   * The one link this does not see is one that leads back to the very directory remembered: a
   * directory of ours moved out of the tree by someone with write access to it, whom `open()`
   * already refuses (trustProblem), and the file is then still written into that directory
   * of ours. A directory made by this call is remembered only from the next full check.
   */
  dirSync(dir: string): void {
    const known = this.#checked.get(dir)
    if (known !== undefined) {
      if (isSameDir(dir, known)) return
      this.#checked.delete(dir)
    }
    this.#rootSync()
    let at = this.root
    let last: Stats | undefined
    for (const part of this.#below(dir)) {
      at = at + path.sep + part
      last = this.#ownDirSync(at)
    }
    if (last === undefined) return
    if (this.#checked.size >= CHECKED_MAX) this.#checked.clear()
    this.#checked.set(dir, { dev: last.dev, ino: last.ino, uid: last.uid })
  }

  /** Whether `dir` and every directory between the root and it are real directories now
   *  (nothing created or removed). Removals use it: never unlink through a planted link. */
  isRealSync(dir: string): boolean {
    return chainIsReal(this.root, dir)
  }

  /** Removes a foreign thing where something of ours belongs (a directory recursively:
   *  `rm` never follows the links inside), and reports it. */
  removeForeignSync(at: string, found: Stats, reason: string): void {
    if (found.isDirectory()) disk.rmSync(at, { recursive: true, force: true })
    else disk.unlinkSync(at)
    this.onForeign(at, `${describe(found)} ${reason}: removed, never followed`)
  }

  /** Gives a directory we just made the exact mode (mkdir's mode is filtered by the umask,
   *  which only matters when sharing adds group or other bits). */
  chmodMadeSync(at: string): void {
    if (this.shared !== false) disk.chmodSync(at, this.dirMode)
  }

  /**
   * Why this tree must not be used as it stands, or undefined. Like ssh's StrictModes: the
   * root (and any of our directories already below it, up to `dir`) must be owned by this
   * user or root, and the root must not be writable by others without the sticky bit — or
   * by the group, unless sharing was chosen. A root that is a symlink must be one its owner
   * (this user or root) made. With `shared: 'everyone'` nothing is checked.
   */
  trustProblem(dir: string): string | undefined {
    const uid = this.#uid
    if (uid === undefined || this.shared === 'everyone') return undefined
    const foreignOwner = (s: Stats): boolean => s.uid !== uid && s.uid !== 0
    const advice = `Use a directory of your own, or pass shared: 'group' (or 'everyone') to share a cache deliberately (see the README's Security section)`
    const link = disk.lstatSync(this.root, { throwIfNoEntry: false })
    if (link === undefined) return undefined // created by us when first needed
    if (link.isSymbolicLink() && foreignOwner(link)) {
      return `The cache directory ${this.root} is a symlink owned by uid ${link.uid}, not by this process's user (uid ${uid}) or root. ${advice}`
    }
    const root = disk.statSync(this.root, { throwIfNoEntry: false })
    if (root === undefined || !root.isDirectory()) return undefined // the disk's problem: reads miss, writes drop
    if (this.shared === false && foreignOwner(root)) {
      return `The cache directory ${this.root} is owned by uid ${root.uid}, not by this process's user (uid ${uid}) or root: whoever owns it can plant entries this process would serve. ${advice}`
    }
    const sticky = (root.mode & 0o1000) !== 0
    const writable = (root.mode & 0o002) !== 0 ? 'others' : this.shared === false && (root.mode & 0o020) !== 0 ? 'group' : undefined
    if (writable !== undefined && !sticky) {
      return `The cache directory ${this.root} is writable by ${writable} (mode ${(root.mode & 0o7777).toString(8).padStart(4, '0')}) without the sticky bit: anyone who can write it can plant entries this process would serve, or swap its folders. Remove that permission (chmod go-w), use a directory of your own, or pass shared: 'group' (or 'everyone') to share a cache deliberately (see the README's Security section)`
    }
    if (this.shared !== false) return undefined
    let at = this.root
    for (const part of this.#below(dir)) {
      at = at + path.sep + part
      const s = disk.lstatSync(at, { throwIfNoEntry: false })
      if (s === undefined || !s.isDirectory()) return undefined // made (or replaced) when first used
      if (foreignOwner(s))
        return `${at}, a directory of the cache, is owned by uid ${s.uid}, not by this process's user (uid ${uid}) or root. ${advice}`
    }
    return undefined
  }

  /** Sets our directories from the root down to `dir` to the configured mode when they are
   *  ours and differ: a tree made by an older version (or another umask) is closed (or, when
   *  sharing, opened) at open. */
  tightenSync(dir: string): void {
    let at = this.root
    for (const part of this.#below(dir)) {
      at = at + path.sep + part
      const s = disk.lstatSync(at, { throwIfNoEntry: false })
      if (s === undefined || !s.isDirectory()) return
      if (s.uid === this.#uid && (s.mode & 0o7777) !== this.dirMode) disk.chmodSync(at, this.dirMode)
    }
  }

  /** The components of `dir` below the root. */
  #below(dir: string): string[] {
    if (dir === this.root) return []
    const rel = path.relative(this.root, dir)
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${dir} is not inside the cache directory ${this.root}`)
    return rel.split(path.sep)
  }

  /** The root is followed (the user's choice); created when missing, as `mkdir -p` would,
   *  with our mode on the root itself. A root that is not a directory is left alone. */
  #rootSync(): void {
    const root = disk.statSync(this.root, { throwIfNoEntry: false })
    if (root?.isDirectory()) {
      rootsSeen.add(this.#rootKey)
      return
    }
    if (root !== undefined)
      throw Object.assign(new Error(`ENOTDIR: the cache directory ${this.root} is not a directory`), { code: 'ENOTDIR' })
    // The directories above the root are the user's: made once, for a cache that never had
    // its directory in this process (by any instance: see rootsSeen). Once it had one, a root
    // that vanished is made again, not its parents: a project deleted while its server ran had
    // its whole tree brought back by the next write, or by the next team namespace opened.
    // Without them, the write fails with ENOENT (a counted drop).
    if (!rootsSeen.has(this.#rootKey)) disk.mkdirSync(path.dirname(this.root), { recursive: true })
    try {
      disk.mkdirSync(this.root, this.dirMode)
      this.chmodMadeSync(this.root)
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error
    }
    rootsSeen.add(this.#rootKey)
  }

  /** Makes `at` a real directory of ours; returns what lstat found when it already was one
   *  (undefined when it was made now: its first use is not remembered, see dirSync). */
  #ownDirSync(at: string): Stats | undefined {
    for (let attempt = 0; ; attempt++) {
      const found = disk.lstatSync(at, { throwIfNoEntry: false })
      if (found?.isDirectory()) {
        if (this.shared === false && this.#uid !== undefined && found.uid !== this.#uid && found.uid !== 0) {
          throw Object.assign(new Error(`EACCES: ${at}, a directory of the cache, is owned by uid ${found.uid}, not this process's user`), {
            code: 'EACCES',
          })
        }
        return found
      }
      if (found !== undefined) this.removeForeignSync(at, found, 'where a directory of the cache belongs')
      try {
        disk.mkdirSync(at, this.dirMode)
        this.chmodMadeSync(at)
        return undefined
      } catch (error) {
        // Another process made it (or planted something) since we looked: look again.
        if (errorCode(error) !== 'EEXIST' || attempt >= 3) throw error
      }
    }
  }
}

/** Whether `dir`'s path still leads to the directory remembered (any failure: no, and the
 *  full check that follows throws what the disk throws). */
function isSameDir(dir: string, known: CheckedDir): boolean {
  try {
    const now = disk.lstatSync(dir, { throwIfNoEntry: false })
    return now !== undefined && now.isDirectory() && now.ino === known.ino && now.dev === known.dev && now.uid === known.uid
  } catch {
    return false
  }
}

/** Whether every directory from below `root` down to `dir` is a real directory (lstat). */
export function chainIsReal(root: string, dir: string): boolean {
  const rel = path.relative(root, dir)
  if (rel === '') return true
  if (rel.startsWith('..') || path.isAbsolute(rel)) return false
  let at = root
  for (const part of rel.split(path.sep)) {
    at = at + path.sep + part
    const s = disk.lstatSync(at, { throwIfNoEntry: false })
    if (s === undefined || !s.isDirectory()) return false
  }
  return true
}

function describe(s: Stats): string {
  if (s.isSymbolicLink()) return 'a symlink'
  if (s.isDirectory()) return 'a directory'
  if (s.isFile()) return 'a file'
  if (s.isFIFO()) return 'a FIFO'
  if (s.isSocket()) return 'a socket'
  return 'a device'
}
