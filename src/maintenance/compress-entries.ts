/**
 * Compress-later's work in a maintenance worker (the main thread's side is
 * compress-later.ts): entries that `set` wrote uncompressed so that the set did not wait for
 * zlib are read back, checked (checksum, and still the entry that set wrote: the same
 * creation time, still plain), compressed with the cache's codec and swapped in for the plain
 * file only if that file is still the one read (store/swap-in.ts: a newer entry written
 * meanwhile stays, a delete meanwhile is not undone). The rewrite keeps the key, value, times,
 * tags, grace and mtime (its LRU position); only its payload's encoding changes, so no reader
 * anywhere can tell but by its size.
 */
import fs from 'node:fs'
import path from 'node:path'
import type { MessagePort } from 'node:worker_threads'
import { Compression, compressSync, KEEP_COMPRESSED_RATIO } from '../format/compression.js'
import { CorruptEntryError, decodeEntry, FLAG_FRAMED, FLAG_SEALED } from '../format/entry-format.js'
import { encodeUnframedEntry } from '../format/payload.js'
import { openTempSync, writeAllSync } from '../store/atomic-write.js'
import { errorCode, NOT_A_FILE, openForReading } from '../store/disk.js'
import { Layout, rootAbove } from '../store/layout.js'
import { OwnedTree, type Sharing } from '../store/owned-tree.js'
import { swapIfSame } from '../store/swap-in.js'
import { RewriteGuard } from './rewrite-guard.js'
import { RunningTotals } from './totals.js'

export interface CompressInput {
  task: 'compress'
  namespaceDir: string
  shared: Sharing
  /** The codec and level of the cache that wrote the files. */
  compression: Compression
  level: number
  /** The most a file may hold to be read whole (the writer's maxValueSize and the entry's
   *  head and trailer): a larger one is not the entry set wrote. */
  maxFileBytes: number
  /** Where the files come from, as they are written: `[file, createdAt, size]` (the creation
   *  time of the entry set wrote there), or null once no more will come. A port, not a list: the
   *  main thread posts to it in the middle of a run of synchronous sets, which never lets its
   *  event loop turn to hand this worker another task. */
  port: MessagePort
  /** Set to 1 while this task takes files, 0 once it takes no more (in shared memory: the
   *  main thread writes values uncompressed only while someone will compress them). */
  running: Int32Array
  /** This task's counts as it goes (taken, compressed, savedBytes, skipped), for `stats()`
   *  before the task reports: shared memory, read without the worker's help. */
  progress: Float64Array
  /** The cache's RewriteGuard (its shared memory): no swap overlaps its own sets and deletes. */
  guard: SharedArrayBuffer
}

export interface CompressOutput {
  /** Files taken from the port, in the order posted (those posted after are the caller's to
   *  hand to another task). */
  taken: number
  /** Rewritten compressed. */
  compressed: number
  /** Bytes the rewritten files shrank by, in all (told to the running totals once a batch:
   *  RunningTotals.savedIn). */
  savedBytes: number
  /** Left as they are: gone, replaced, used or changed meanwhile, damaged, or not worth
   *  compressing (saving less than a tenth). */
  skipped: number
  /** The disk failed (its error's code, for the breaker): the file it failed on is left as it
   *  is, and no more were taken. */
  failed: string | undefined
}

/** Files are compressed once none has come for this long: a run of sets is not slowed by
 *  this worker's reads, writes and renames in the same directories (on the 2-core machines of
 *  issue 14 that cost the sets more than the codec's time they saved), and its values are
 *  compressed once it paused. */
const QUIET_MS = 20
/** The longest a file is held waiting for a pause: sets that never pause for QUIET_MS (a long
 *  burst, or a steady stream) have what is held compressed beside them this often, so no file
 *  stays plain on disk much longer than this. */
const MAX_HOLD_MS = 1000
/** How long the task waits for another file once it has compressed all it had, then ends
 *  (and frees its thread). A set that finds no task running compresses first and starts one,
 *  so sets further apart than this never go plain: a second keeps an application that sets a
 *  large value now and then (not in a burst) on the fast path, for a thread that sleeps. */
const IDLE_MS = 1000
/** How often files held back by a scan in progress look for its end, and for how long at most. */
const SCAN_WAIT_MS = 100
const SCAN_WAIT_MAX_MS = 60_000

/** Compresses the files posted to `input.port` a quiet moment at a time (or MAX_HOLD_MS),
 *  until null comes (then what it holds, at once), the port stays quiet for IDLE_MS, or the
 *  disk fails. */
export function compressEntries(input: CompressInput): Promise<CompressOutput> {
  const out: CompressOutput = { taken: 0, compressed: 0, savedBytes: 0, skipped: 0, failed: undefined }
  // A root the opening thread had: its parents are never made here (see OwnedTree).
  const tree = new OwnedTree(rootAbove(input.namespaceDir, 2), input.shared, true)
  // The bytes each rewrite saves go to the running totals from here, in the epoch the rewrite
  // was made in (RunningTotals.savedIn), through a delta file of this task's own.
  const totals = new RunningTotals(new Layout(tree.root, '', input.shared, path.basename(input.namespaceDir)))
  const guard = new RewriteGuard(input.guard)
  const { port } = input
  const held: [string, number, number][] = []
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    /** When the oldest file held came. */
    let heldSince = 0
    const end = (): void => {
      Atomics.store(input.running, 0, 0)
      clearTimeout(timer)
      port.off('message', next)
      port.close()
      resolve(out)
    }
    /** Compresses what is held, in order, until it finds a scan counting the files (the rest
     *  wait for its end); false once the disk failed. What the rewrites saved is told to the
     *  totals once per epoch they were made in, at the end (one delta write for the batch). */
    const work = (): boolean => {
      let epochOfSaved = -1
      let saved = 0
      const tell = (): void => {
        if (saved > 0) totals.savedIn(epochOfSaved, saved)
        saved = 0
      }
      try {
        while (held.length > 0) {
          const [file, createdAt] = held[0]!
          // Not while a scan counts the files (prune, verify): whether it counted a file
          // before or after its rewrite cannot be known, and so neither can what the totals
          // should be told. The files wait for the scan's end. Looked at before each file (two
          // small reads and an lstat): a scan begun between the look and the rewrite finds the
          // epoch moved on, and that file's savings are dropped (the totals high, never low).
          const { epoch, scanning } = totals.scanState()
          if (scanning) break
          if (epoch !== epochOfSaved) {
            tell()
            epochOfSaved = epoch
          }
          const item = held.shift()!
          out.taken++
          try {
            const rewritten = compressEntry(tree, file, createdAt, input, guard)
            if (rewritten === BUSY) {
              // A set or delete of its partition is in progress here: tried again shortly.
              held.unshift(item)
              out.taken--
              break
            }
            if (rewritten === undefined) out.skipped++
            else {
              out.compressed++
              out.savedBytes += rewritten.saved
              saved += rewritten.saved
            }
          } catch (error) {
            out.skipped++ // the file it failed on
            throw error
          }
        }
        tell()
        // Shown once the batch's savings are in the totals: a file the main thread counts as
        // done is counted there too.
        shown(out, input.progress)
        return true
      } catch (error) {
        try {
          tell() // what was rewritten before the failure was saved all the same
        } catch {
          // the disk failing: the totals stay high (the safe way) until the next scan
        }
        out.failed = errorCode(error) ?? 'UNKNOWN' // not a disk's error: the breaker does not count it
        shown(out, input.progress)
        return false
      }
    }
    /** Since when files have waited for a scan to end (0: none waits). */
    let waitingSince = 0
    /** Leaves what is held plain (for a later prune's scan to compress). */
    const leaveHeld = (): void => {
      out.taken += held.length
      out.skipped += held.length
      held.length = 0
      shown(out, input.progress)
    }
    const quiet = (): void => {
      if (held.length === 0 || !work()) return end()
      if (held.length === 0) waitingSince = 0
      else {
        // Files still held wait for a scan to end: looked at again soon, for a bounded time
        // (a scan killed part way leaves its epoch begun until another scan ends).
        waitingSince ||= Date.now()
        if (Date.now() - waitingSince >= SCAN_WAIT_MAX_MS) {
          leaveHeld()
          waitingSince = 0
        }
      }
      timer = setTimeout(quiet, held.length > 0 ? SCAN_WAIT_MS : IDLE_MS)
    }
    const next = (message: [string, number, number] | null): void => {
      clearTimeout(timer)
      if (message === null) {
        // Closing: what a scan still holds back is left plain (for a later prune).
        if (work()) leaveHeld()
        return end()
      }
      if (held.length === 0) heldSince = Date.now()
      held.push(message)
      if (Date.now() - heldSince >= MAX_HOLD_MS && !work()) return end()
      timer = setTimeout(quiet, QUIET_MS)
    }
    port.on('message', next)
    Atomics.store(input.running, 0, 1)
    timer = setTimeout(quiet, IDLE_MS)
  })
}

/** The counts where the main thread reads them; `taken` last, so that a file it counts as
 *  taken has its savings there too. */
function shown(out: CompressOutput, progress: Float64Array): void {
  progress[1] = out.compressed
  progress[2] = out.savedBytes
  progress[3] = out.skipped
  progress[0] = out.taken
}

/** compressEntry's answer when a change of the file's partition was in progress (the guard's). */
export const BUSY = Symbol('busy')

/** What one entry is compressed with (a task's, or a prune scan's: worker.ts). */
export type CompressWith = Pick<CompressInput, 'compression' | 'level' | 'maxFileBytes'>

/** Compresses one entry file (the entry created at `createdAt`, still plain); the bytes it
 *  shrank by and the rewritten file's inode, or undefined if it was left alone. Throws what the
 *  disk throws. `tree` undefined: a dry run's measure, nothing written (the bytes it would
 *  shrink by, and its own inode). */
export function compressEntry(
  tree: OwnedTree | undefined,
  file: string,
  createdAt: number,
  input: CompressWith,
  guard?: RewriteGuard,
): { saved: number; ino: number } | typeof BUSY | undefined {
  // Never a FIFO's endless open, never through a link planted at the name (openForReading).
  const fd = openForReading(file)
  if (fd === undefined || fd === NOT_A_FILE) return undefined
  let temp: string | undefined
  try {
    const stat = fs.fstatSync(fd)
    if (!stat.isFile() || stat.size > input.maxFileBytes) return undefined
    const bytes = Buffer.allocUnsafe(stat.size)
    if (fs.readSync(fd, bytes, 0, stat.size, 0) !== stat.size) return undefined
    let entry
    try {
      entry = decodeEntry(bytes)
    } catch (error) {
      if (error instanceof CorruptEntryError) return undefined // for readers and prune to judge
      throw error
    }
    if (
      entry.createdAt !== createdAt ||
      (entry.compression as Compression) !== Compression.None ||
      (entry.flags & (FLAG_FRAMED | FLAG_SEALED)) !== 0
    )
      return undefined
    const compressed = compressSync(input.compression, input.level, entry.payload)
    if (compressed.length >= entry.payload.length * KEEP_COMPRESSED_RATIO) return undefined
    const rewritten = encodeUnframedEntry({ ...entry, compression: input.compression }, compressed, entry.logicalLength, undefined)
    if (tree === undefined) return { saved: stat.size - rewritten.length, ino: stat.ino }
    const written = openTempSync(tree, file)
    temp = written.temp
    let ino: number
    try {
      writeAllSync(written.fd, rewritten, 'compress temp')
      fs.futimesSync(written.fd, stat.atimeMs / 1000, stat.mtimeMs / 1000) // the LRU position stays
      ino = fs.fstatSync(written.fd).ino
    } finally {
      fs.closeSync(written.fd)
    }
    const swapped = guard === undefined ? swapIfSame(file, temp, stat) : guard.swapAlone(file, () => swapIfSame(file, temp!, stat))
    if (swapped === undefined) return BUSY // the temp file goes below
    if (swapped !== 'swapped') return undefined
    temp = undefined // linked in its place, and its own name unlinked
    return { saved: stat.size - rewritten.length, ino }
  } finally {
    fs.closeSync(fd)
    // Not through a link put in place of the partition since (swapIfSame refused it): the
    // temp file is not there, and what is named like it outside the cache is not ours.
    if (temp !== undefined && tree?.isRealSync(path.dirname(temp)) === true) fs.rmSync(temp, { force: true })
  }
}
