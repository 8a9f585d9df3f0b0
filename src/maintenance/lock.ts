import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { errorCode, isNoSpace } from '../store/disk.js'
import type { OwnedTree } from '../store/owned-tree.js'
import { readSmallFileSync } from '../store/small-file.js'

/**
 * The maintenance lock: one process prunes or verifies a namespace at a time, so two prunes
 * never choose victims from the same count.
 *
 *   meta/maintenance.lock/         a directory: `mkdir` is atomic, locally and on NFS
 *   meta/maintenance.lock/owner    {"pid","host","token","purpose"} of the holder
 *
 * `purpose` says what the holder is doing (LockPurpose): a writer whose automatic prune
 * stands aside paces its writes over budget only while the holder is pruning (see
 * auto-prune.ts), not while it verifies or rekeys, which can hold the lock for minutes and
 * evict nothing. A lock without one (an older larder's, or one whose owner file is not
 * written yet) is taken for a prune's.
 *
 * The holder refreshes the directory's mtime every few seconds. A lock is dead, and taken
 * over at once, when
 *   - its mtime is 30 s old: the holder stopped refreshing (killed, or hung that long), or 30 s
 *     in the future (see isStale);
 *   - its owner is a process on this host that no longer exists (a CLI run that failed to
 *     release, e.g. on a file system remounted read-only, and exited);
 *   - its owner is this process under a token no instance holds any more: a release of ours
 *     that failed. Its token is forgotten before the release is tried, so a failed release
 *     never leaves this process waiting for itself.
 * A dead lock is taken over by one taker at a time (`maintenance.lock.takeover`, see
 * takeOverIfDead), and a full disk's lock may have no owner file (see hold).
 * A lock without an owner file (being taken right now, or taken by another tool that speaks
 * the same mkdir protocol, such as proper-lockfile) is judged by its age alone. The worst a
 * wrong judgement can do (a holder stalled for 30 s) is two prunes at once: each removal is
 * still guarded by the inode it judged.
 */
const STALE_MS = 30_000
const REFRESH_MS = 5_000
const OWNER = 'owner'
/** The suffix of the directory one taker at a time holds while it takes over a dead lock. */
const TAKEOVER = '.takeover'
/** Tokens of the locks this process holds, whichever instance took them. */
const held = new Set<string>()

/** What a holder of the lock is doing: `prune` evicts (an automatic or explicit prune);
 *  the others remove no entry to bring the cache within its budget (a dry run, `verify`,
 *  `rekey`, the fold of the bookkeeping files). */
export type LockPurpose = 'prune' | 'dry-run' | 'verify' | 'rekey' | 'bookkeeping'

/** The purposes of a holder that will not bring the cache back within its budget. */
const EVICTS_NOTHING: ReadonlySet<string> = new Set<LockPurpose>(['dry-run', 'verify', 'rekey', 'bookkeeping'])

interface Owner {
  pid: number
  host: string
  token: string
  /** Missing in an older larder's lock; not to be trusted to be a string (heldToEvict). */
  purpose?: unknown
}

/** Takes the lock at `lockDir` if it is free or dead; undefined if a live holder has it.
 *  Resolves to the release. Throws file-system errors (a failing disk). */
export function tryLock(lockDir: string, modes: { dir: number; file: number }, purpose?: LockPurpose): (() => void) | undefined {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.mkdirSync(lockDir, modes.dir)
    } catch (error) {
      // A full disk with no block for the lock's directory: the prune that frees it runs
      // unlocked (two at once choose victims from the same count, but every removal is still
      // guarded by the inode it judged: the worst is more evicted than needed).
      if (isNoSpace(error)) return () => {}
      if (errorCode(error) !== 'EEXIST') throw error
      if (takeOverIfDead(lockDir)) continue
      return undefined
    }
    // Undefined: another taker's lock took the name under ours (busy).
    return hold(lockDir, modes.file, purpose)
  }
  return undefined // taken over and taken again by others meanwhile: busy
}

/** Holds the lock directory just made: its owner written, refreshed, released. Undefined
 *  (busy) when its owner file exists already: the directory is another taker's (a takeover
 *  put a live lock back under the name), and nothing of it is touched. */
function hold(lockDir: string, fileMode: number, purpose: LockPurpose | undefined): (() => void) | undefined {
  const token = randomBytes(9).toString('base64url')
  const owner: Owner = { pid: process.pid, host: os.hostname(), token, purpose }
  const ownerText = JSON.stringify(owner)
  // The directory made, by its inode: the refresh and the release touch and remove only it,
  // never a link or another directory put in its place while it was held (a prune can hold
  // it for minutes).
  const ino = fs.lstatSync(lockDir).ino
  try {
    // O_EXCL: a name nothing else has in a directory we just made; never follows a link.
    fs.writeFileSync(path.join(lockDir, OWNER), ownerText, { flag: 'wx', mode: fileMode })
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return undefined
    // A full disk: held without an owner (judged by its age alone, and refreshed below), for
    // the prune or clear that frees space must be able to run on it.
    if (!isNoSpace(error)) {
      removeQuietly(lockDir, ino)
      throw error
    }
  }
  held.add(token)
  const refresh = setInterval(() => {
    const now = new Date()
    try {
      if (isHeldDir(lockDir, ino)) fs.lutimesSync(lockDir, now, now)
    } catch {
      // a failing disk: the lock may go stale and be taken over; the guarded removals keep that safe
    }
  }, REFRESH_MS)
  refresh.unref()
  return () => {
    // Forgotten first: if what follows fails, this process already sees the lock as dead.
    held.delete(token)
    clearInterval(refresh)
    removeQuietly(lockDir, ino, { text: ownerText, mode: fileMode })
  }
}

/** Whether `lockDir` is still the directory made with inode `ino` (lstat: never followed). */
function isHeldDir(lockDir: string, ino: number): boolean {
  const found = fs.lstatSync(lockDir, { throwIfNoEntry: false })
  return found !== undefined && found.isDirectory() && found.ino === ino
}

/**
 * Removes a dead lock; true if the caller should try to take it again. One taker at a time
 * does so, under `<lock>.takeover` (a directory: mkdir is atomic): several processes that
 * judged the same dead lock at once (an auto-prune in each of them, after its holder was
 * killed) otherwise each moved away what the name held by then, a live lock one of them had
 * just taken included, and two prunes chose victims from the same count. Under the mutex the
 * name is looked at again: moved aside only if it is still the lock judged dead.
 */
function takeOverIfDead(lockDir: string): boolean {
  let judged: fs.Stats
  try {
    judged = fs.lstatSync(lockDir)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return true // released meanwhile
    throw error
  }
  if (!isDead(lockDir, judged)) return false
  const mutex = takeoverMutex(lockDir)
  try {
    fs.mkdirSync(mutex, 0o700)
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error
    clearStaleMutex(mutex)
    return false // another taker is at it: busy, for now
  }
  try {
    const now = fs.lstatSync(lockDir, { throwIfNoEntry: false })
    if (now === undefined) return true // taken away meanwhile: try again
    // Judged again: taken over and taken again meanwhile, it is live (and may even have the
    // dead one's inode number, freed and handed out again at once).
    if (!sameFile(now, judged) || !isDead(lockDir, now)) return false
    // Killed before the removal below, a taker leaves this name for the sweep of bookkeeping
    // temps (store/layout.ts, DEAD_LOCK_NAME).
    const aside = `${lockDir}.${process.pid}-${randomBytes(4).toString('hex')}.dead`
    try {
      fs.renameSync(lockDir, aside)
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true
      throw error
    }
    // Released and taken again between the look and the rename (its holder was alive after
    // all): that one goes back, while the name is free (a rename replaces an empty directory).
    if (!sameFile(fs.lstatSync(aside), judged)) {
      if (fs.lstatSync(lockDir, { throwIfNoEntry: false }) === undefined) {
        try {
          fs.renameSync(aside, lockDir)
        } catch {
          // the name was taken again meanwhile; the lock moved is lost to its holder
        }
      }
      return false
    }
    try {
      fs.rmSync(aside, { recursive: true, force: true }) // never follows a link inside
    } catch {
      // the disk is failing; a later takeover tries again
    }
    return true
  } finally {
    try {
      fs.rmdirSync(mutex)
    } catch {
      // a failing disk: it goes stale, and is cleared
    }
  }
}

/** Whether two looks saw the same lock: an inode number is handed out again once freed, so
 *  its mtime too (a rename changes its ctime, not its mtime). */
function sameFile(a: fs.Stats, b: fs.Stats): boolean {
  return a.ino === b.ino && a.mtimeMs === b.mtimeMs
}

/** A takeover mutex left by a taker killed mid-takeover (older than STALE_MS), or something
 *  planted at its name (a directory holding anything: notAMutex), is removed: the next
 *  attempt takes it. */
function clearStaleMutex(mutex: string): void {
  try {
    const found = fs.lstatSync(mutex, { throwIfNoEntry: false })
    if (found === undefined) return
    if (!found.isDirectory()) fs.unlinkSync(mutex)
    else if (isStale(found.mtimeMs) || notAMutex(mutex) !== undefined) fs.rmSync(mutex, { recursive: true, force: true })
  } catch {
    // another taker cleared it, or the disk is failing
  }
}

/** Whether a lock's (or mutex's) mtime is STALE_MS away from now, in the past (its holder
 *  stopped refreshing) or in the future: a clock that was ahead when its holder died, or a
 *  planted or restored tree. A holder refreshes to its own now, so a future mtime that stays
 *  is never refreshed by anyone, and would otherwise keep the namespace locked for good. */
function isStale(mtimeMs: number): boolean {
  return Math.abs(Date.now() - mtimeMs) > STALE_MS
}

function isDead(lockDir: string, stat: fs.Stats): boolean {
  if (!stat.isDirectory()) return true // not a lock at all (a file or link planted there)
  if (notALock(lockDir) !== undefined) return true // a directory no locker made (see there)
  if (isStale(stat.mtimeMs)) return true
  const owner = readOwner(lockDir)
  if (owner === undefined || owner.host !== os.hostname()) return false
  if (owner.pid === process.pid) return !held.has(owner.token)
  return !processExists(owner.pid)
}

/**
 * What a directory at the lock's name holds that no lock ever does, described; undefined if
 * it may be a lock. A lock holds its owner file (a regular file) at most: larder writes
 * nothing else into it, and a locker of the same mkdir protocol nothing at all. So a
 * directory holding any other name (or an owner that is a link, a FIFO, a directory) was
 * planted, or is some tool's own folder: judged by its age alone it held every prune for
 * 30 s, then was deleted with whatever it held, unreported. It is judged dead at once
 * instead (the takeover moves it aside and removes it, never following a link inside), and
 * the maintainer reports it.
 */
export function notALock(lockDir: string): string | undefined {
  return heldBeyond(lockDir, OWNER)
}

/** What a directory at the takeover mutex's name holds, described (a taker's mutex holds
 *  nothing: made and removed empty); undefined if it may be a mutex. One holding something
 *  is cleared at once (clearStaleMutex), not once 30 s old: it held a dead lock's takeover. */
export function notAMutex(mutex: string): string | undefined {
  return heldBeyond(mutex, undefined)
}

/** The takeover mutex's path beside the lock at `lockDir`. */
export function takeoverMutex(lockDir: string): string {
  return `${lockDir}${TAKEOVER}`
}

/** A name `dir` holds other than `allowed` (a regular file), described; undefined if none, or
 *  if `dir` cannot be read (gone, released meanwhile, a failing disk: judged as before, by its
 *  age). Two names at most are read, whatever it holds. */
function heldBeyond(dir: string, allowed: string | undefined): string | undefined {
  let opened: fs.Dir
  try {
    opened = fs.opendirSync(dir)
  } catch {
    return undefined
  }
  try {
    for (let entry = opened.readSync(), seen = 0; entry !== null && seen < 2; entry = opened.readSync(), seen++) {
      if (entry.name !== allowed) return `a directory holding '${entry.name}'`
      // lstat, not the entry's type: some file systems do not report it (DT_UNKNOWN), and a
      // live lock's owner must never be taken for a foreign one.
      const file = fs.lstatSync(path.join(dir, entry.name), { throwIfNoEntry: false })
      if (file !== undefined && !file.isFile()) return `a directory whose '${entry.name}' is not a regular file`
    }
    return undefined
  } catch {
    return undefined
  } finally {
    opened.closeSync()
  }
}

/**
 * Whether the lock at `lockDir` is held by a prune, which evicts (or may: a holder that does
 * not say, an older larder's or one whose owner file is not written yet, is taken for one, as
 * is a lock just released, which the next try may find taken by a prune). False only when its
 * owner says it is doing something that evicts nothing (EVICTS_NOTHING).
 */
export function heldToEvict(lockDir: string): boolean {
  const purpose = readOwner(lockDir)?.purpose
  return typeof purpose !== 'string' || !EVICTS_NOTHING.has(purpose)
}

function readOwner(lockDir: string): Owner | undefined {
  try {
    const owner = JSON.parse(readSmallFileSync(path.join(lockDir, OWNER)) ?? 'null') as Partial<Owner> | null
    if (owner !== null && Number.isSafeInteger(owner.pid) && typeof owner.host === 'string' && typeof owner.token === 'string')
      return owner as Owner
    return undefined
  } catch {
    return undefined // missing, half-written, or not ours (a link or FIFO is never followed or waited on)
  }
}

/** Whether a lock directory is at `lockDir` with an mtime its holder refreshed lately (not
 *  stale: see isStale). Any thread may ask; nothing is taken or judged beyond that. */
export function lockIsFresh(lockDir: string): boolean {
  const stat = fs.lstatSync(lockDir, { throwIfNoEntry: false })
  return stat !== undefined && stat.isDirectory() && !isStale(stat.mtimeMs)
}

/** How long a waiter's mark counts without being renewed (its waiter renews it at each of its
 *  tries, at most a second apart): one killed, or gone without withdrawing it, soon counts
 *  for nothing. */
const WANTED_FRESH_MS = 5_000

/**
 * Explicit maintenance (a `prune()`, `verify()` or `rekey()` called by the application or the
 * CLI) that finds the lock held marks that it waits, with a file of its own in `wantedDir`
 * renewed at each of its tries; an automatic run takes the lock only while no such mark is
 * fresh (lockWanted). Automatic runs take the lock pass after pass while writes keep the cache
 * over budget, and the explicit call, trying at most a second apart, found it held every time
 * for a minute, then failed with ERR_BUSY, though no pass held it for a second (an instance's
 * own auto-prune did that to its own `prune()`). Everything here is best effort: a mark the
 * disk refuses leaves the waiter to its tries, as before.
 */
export class LockWait {
  readonly #tree: OwnedTree
  readonly #dir: string
  readonly #file: string

  /** Marks that a caller waits for the lock (`wantedDir` made and checked by the caller). */
  constructor(tree: OwnedTree, wantedDir: string) {
    this.#tree = tree
    this.#dir = wantedDir
    this.#file = path.join(wantedDir, `${process.pid}-${randomBytes(6).toString('hex')}`)
    this.#place()
  }

  /** The mark renewed (made again if it was taken for a dead waiter's meanwhile). Its
   *  directory is checked first, as at each use: a wait lasts up to a minute, and by path
   *  through a link put in its place meanwhile the mark would be touched, made or removed
   *  outside the cache. */
  renew(): void {
    const now = new Date()
    try {
      this.#tree.dirSync(this.#dir)
      fs.lutimesSync(this.#file, now, now)
    } catch {
      this.#place()
    }
  }

  /** The wait is over (the lock taken, or given up). */
  withdraw(): void {
    try {
      if (this.#tree.isRealSync(this.#dir)) fs.unlinkSync(this.#file)
    } catch {
      // gone already, or the disk is failing: it goes stale
    }
  }

  #place(): void {
    try {
      this.#tree.dirSync(this.#dir)
      // A new name of ours: exclusive, never through a link.
      fs.closeSync(
        fs.openSync(
          this.#file,
          fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
          this.#tree.fileMode,
        ),
      )
    } catch {
      // a full or failing disk: no mark, and the tries go on as they would without one
    }
  }
}

/** Whether explicit maintenance waits for the lock (see LockWait): a mark in `wantedDir`
 *  renewed lately. Marks that are stale (or whose mtime is as far in the future) are removed. */
export function lockWanted(wantedDir: string): boolean {
  let names: string[]
  try {
    names = fs.readdirSync(wantedDir)
  } catch {
    return false // none ever waited here, or the disk is failing (the lock's own try says which)
  }
  const now = Date.now()
  let wanted = false
  for (const name of names) {
    const file = path.join(wantedDir, name)
    try {
      const found = fs.lstatSync(file, { throwIfNoEntry: false })
      if (found === undefined || !found.isFile()) continue // not a mark of ours: never counts
      if (Math.abs(now - found.mtimeMs) <= WANTED_FRESH_MS) wanted = true
      else fs.unlinkSync(file) // its waiter was killed, or left without withdrawing it
    } catch {
      // taken by another look meanwhile, or the disk is failing
    }
  }
  return wanted
}

/** Whether a process `pid` runs on this host. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errorCode(error) !== 'ESRCH' // EPERM: it exists, under another user
  }
}

/** Removes a lock directory of ours (the one with inode `ino`): its owner file, then itself.
 *  Looked at first, never followed: a link or file planted in its place is unlinked (a name in
 *  our tree), a directory that is not ours (taken over since) is left to its holder. A release
 *  whose directory stays (`owner`: what its owner file held) writes that file back. */
function removeQuietly(dir: string, ino: number, owner?: { text: string; mode: number }): void {
  let found: fs.Stats | undefined
  try {
    found = fs.lstatSync(dir, { throwIfNoEntry: false })
  } catch {
    return // the disk is failing: the lock is dead to this process, and goes stale
  }
  if (found === undefined) return
  if (!found.isDirectory()) {
    try {
      fs.unlinkSync(dir)
    } catch {
      // gone
    }
    return
  }
  if (found.ino !== ino) return
  try {
    fs.unlinkSync(path.join(dir, OWNER))
  } catch {
    // none, or the disk is failing
  }
  try {
    fs.rmdirSync(dir)
  } catch {
    // the disk is failing (the lock is dead to this process) or another tool left files in it
    // (it will go stale). Its owner file goes back (O_EXCL: never through a link): without one
    // the lock is judged by its age alone, and this process waited 30 s for its own failed
    // release (a meta/ it may no longer write), its writes paced as if another process pruned.
    if (owner === undefined) return
    try {
      fs.writeFileSync(path.join(dir, OWNER), owner.text, { flag: 'wx', mode: owner.mode })
    } catch {
      // the disk refuses that too: the lock goes stale
    }
  }
}
