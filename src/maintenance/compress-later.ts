/**
 * Compression off a set's path (issue 14's 64 KiB set). A value of at least `compressLater`
 * bytes is written uncompressed, and this queue hands its file to a maintenance worker
 * (compress-entries.ts), which compresses it and swaps it in if the entry is still the one
 * written. The set costs what an uncompressed one costs; the codec's time is the worker's,
 * on another core, and the disk ends up holding what a compressed set would have written.
 *
 * One task at a time, handed each file as it is written through a MessagePort (a run of
 * synchronous sets never lets the main thread's event loop turn, so a task's report and the
 * next task would wait for the end of the run); it ends when told, or once no file came for a
 * moment. A task is bounded: past MAX_QUEUED files, set compresses before it writes, as it
 * did before, until the task ends. Nothing here is needed for a correct read: a file not
 * compressed (the queue dropped by a failing disk, the process killed, a file replaced
 * meanwhile) is a valid entry, only larger, which the next prune's scan compresses (worker.ts).
 * close() waits until the queue is empty.
 */
import { compressionIds } from '../format/compression.js'
import type { ResolvedOptions } from '../options.js'
import { RewriteGuard } from './rewrite-guard.js'
import type { Layout } from '../store/layout.js'
import type { CompressInput, CompressOutput } from './compress-entries.js'
import { setTimeout as delay } from 'node:timers/promises'
import { MessageChannel, type MessagePort, type TransferListItem } from 'node:worker_threads'

/** Files, and bytes of them, handed to one task at most (the worker holds them until the sets
 *  pause); past either, set compresses first until the task ends. */
const MAX_QUEUED = 4096
const MAX_QUEUED_BYTES = 128 * 1024 * 1024
/** The longest a prune waits for the files handed over to be compressed (caughtUp). */
const CATCH_UP_MS = 5000
/** An entry's head and trailer beside its value, at most (key and tags included). */
export const ENTRY_OVERHEAD = 64 * 1024

export interface CompressLaterParts {
  layout: Layout
  options: ResolvedOptions
  run: (input: CompressInput, transfer: TransferListItem[]) => Promise<CompressOutput>
  /** Whether the disk breaker lets work go to the disk. */
  diskClosed: () => boolean
  /** A disk failure in the worker, counted by the breaker as any disk step's. */
  failed: (error: Error) => void
}

/** What `stats().tiers.file.compressLater` says. */
export interface CompressLaterCounts {
  /** Files handed to the worker and not yet reported done. */
  queued: number
  /** Rewritten compressed. */
  compressed: number
  /** Bytes the disk gained back. */
  savedBytes: number
  /** Left uncompressed: replaced or removed meanwhile, not worth it, or the disk failing. */
  skipped: number
}

/** A file handed to a task: its path, the creation time of the entry written there, its size. */
type Posted = [string, number, number]

/** One task in a worker and the files posted to it, in order. */
interface Task {
  port: MessagePort
  /** 1 while the worker is taking files (set by the worker: no event loop turn needed to see it). */
  running: Int32Array
  /** The worker's counts so far (compress-entries.ts). */
  progress: Float64Array
  posted: Posted[]
  postedBytes: number
  /** Values `takes()` said yes to that are not yet written (and posted): counted against the
   *  bounds, so sets in flight together cannot pass them. */
  reserved: number
  reservedBytes: number
  ended: Promise<void>
}

/** Errors of a file system that has no hard links, which the swap needs (store/swap-in.ts):
 *  this instance compresses before it writes from then on. Not a failing disk. */
const LINKLESS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK'])

/** Whether a cache with these options writes large values plain for a worker to compress
 *  (the `compressLater` option's exceptions), and so whether a prune's scan compresses what was
 *  left plain (maintainer.ts). */
export function writesPlain(o: ResolvedOptions): o is ResolvedOptions & { compressLater: number } {
  return o.compressLater !== false && o.compression !== 'none' && !o.durable && o.encryption === undefined && !o.readOnly
}

export class CompressLater {
  readonly #p: CompressLaterParts
  #task: Task | undefined
  #closed = false
  /** The swap cannot work here (LINKLESS): values are compressed before they are written. */
  #linkless = false
  #compressed = 0
  #savedBytes = 0
  #skipped = 0
  /** The counts at the last `resetStats()`, taken off what `counts()` says (the running task's
   *  own counts live in its shared memory, so they are not zeroed in place). */
  #baseline = { compressed: 0, savedBytes: 0, skipped: 0 }

  /** What keeps this cache's own sets and deletes from overlapping a rewrite (see RewriteGuard). */
  readonly #guard = new RewriteGuard()

  /** The guard, while a task may be rewriting files (none otherwise: nothing to keep apart). */
  guardWhileRunning(): RewriteGuard | undefined {
    return this.#task === undefined ? undefined : this.#guard
  }

  constructor(parts: CompressLaterParts) {
    this.#p = parts
  }

  /**
   * Whether a value `length` bytes long (serialized) is to be written uncompressed now: only
   * once a task runs in a worker to take it. The first such value starts one (its thread
   * starts meanwhile, and piscina hands it the task when the event loop next turns) and is
   * compressed before it is written, as are the values after it until the task is running.
   */
  takes(length: number): boolean {
    const o = this.#p.options
    if (
      !writesPlain(o) ||
      length < o.compressLater ||
      length < o.compressThreshold ||
      this.#closed ||
      this.#linkless ||
      !this.#p.diskClosed()
    )
      return false
    const task = (this.#task ??= this.#started())
    const taken =
      Atomics.load(task.running, 0) === 1 &&
      task.posted.length + task.reserved < MAX_QUEUED &&
      task.postedBytes + task.reservedBytes + length <= MAX_QUEUED_BYTES
    if (taken) {
      task.reserved++
      task.reservedBytes += length
    }
    return taken
  }

  /** `file` now holds, uncompressed, the entry created at `createdAt` (`bytes` long):
   *  compressed soon. */
  written(file: string, createdAt: number, bytes: number): void {
    this.unreserve(bytes)
    // A write that outlasted close() (which waits for writes in flight a bounded time): its
    // pool is going, left plain for a prune's scan.
    if (this.#closed && this.#task === undefined) this.#skipped++
    else this.#post([[file, createdAt, bytes]])
  }

  /** A value `takes()` said yes to is written (`written`), or its write failed: its place
   *  against the bounds is given back (about `bytes`: the entry's size, its value's and a head). */
  unreserve(bytes: number): void {
    const task = this.#task
    if (task === undefined || task.reserved === 0) return
    task.reserved--
    task.reservedBytes = task.reserved === 0 ? 0 : Math.max(0, task.reservedBytes - bytes)
  }

  /** The counts of the tasks that reported, and the running task's so far, since the last
   *  `resetCounts()`; `queued` is what waits now. */
  counts(): CompressLaterCounts {
    const task = this.#task
    const [taken, compressed, savedBytes, skipped] = task?.progress ?? [0, 0, 0, 0]
    const base = this.#baseline
    return {
      queued: (task?.posted.length ?? 0) - taken!,
      compressed: this.#compressed + compressed! - base.compressed,
      savedBytes: this.#savedBytes + savedBytes! - base.savedBytes,
      skipped: this.#skipped + skipped! - base.skipped,
    }
  }

  /** `resetStats()`: the counts start again from zero (the files waiting are still waiting). */
  resetCounts(): void {
    const { compressed, savedBytes, skipped } = this.counts()
    const base = this.#baseline
    this.#baseline = { compressed: base.compressed + compressed, savedBytes: base.savedBytes + savedBytes, skipped: base.skipped + skipped }
  }

  /**
   * Resolves once the files handed over so far have had their turn (the worker holds one at
   * most about a second: compress-entries.ts), or after CATCH_UP_MS. A prune waits for it
   * before it counts the files (disk-parts.ts, pruneStarted): a file written plain a moment
   * ago, counted at its plain size, took a cache of compressible values over its budget, and
   * the prune evicted entries the compressed files would have left room for (42 of 50 sets of
   * 100 kB, that compress to 1 kB each, under a 1 MB budget).
   */
  async caughtUp(): Promise<void> {
    const task = this.#task
    if (task === undefined) return
    const due = task.posted.length
    const giveUpAt = Date.now() + CATCH_UP_MS
    while (this.#task === task && task.progress[0]! < due && Date.now() < giveUpAt) await delay(5)
  }

  /** No more values are taken; resolves once every file handed over has had its turn. */
  async close(): Promise<void> {
    this.#closed = true
    while (this.#task !== undefined) {
      const task = this.#task
      task.port.postMessage(null)
      await task.ended
    }
  }

  #post(files: Posted[]): void {
    if (!this.#p.diskClosed()) {
      this.#skipped += files.length // the breaker is guarding a failing disk: left as written
      return
    }
    const task = (this.#task ??= this.#started())
    for (const file of files) {
      task.port.postMessage(file)
      task.posted.push(file)
      task.postedBytes += file[2]
    }
  }

  #started(): Task {
    const { options, layout } = this.#p
    const { port1, port2 } = new MessageChannel()
    port1.unref()
    const task: Task = {
      port: port1,
      running: new Int32Array(new SharedArrayBuffer(4)),
      progress: new Float64Array(new SharedArrayBuffer(4 * 8)),
      posted: [],
      postedBytes: 0,
      reserved: 0,
      reservedBytes: 0,
      ended: Promise.resolve(),
    }
    const input: CompressInput = {
      task: 'compress',
      namespaceDir: layout.namespaceDir,
      shared: layout.tree.shared,
      compression: compressionIds[options.compression],
      level: options.compressionLevel,
      maxFileBytes: options.maxValueSize + ENTRY_OVERHEAD,
      port: port2,
      running: task.running,
      progress: task.progress,
      guard: this.#guard.buffer,
    }
    task.ended = this.#p.run(input, [port2]).then(
      (out) => this.#ended(task, out),
      () => this.#ended(task, undefined),
    )
    return task
  }

  /** A task's report: its counts taken in; files posted after it stopped taking go to the next. */
  #ended(task: Task, out: CompressOutput | undefined): void {
    if (this.#task === task) this.#task = undefined
    task.port.close()
    if (out === undefined) {
      // The pool could not run it (a thread that cannot start): left as written.
      this.#skipped += task.posted.length
      return
    }
    this.#compressed += out.compressed
    this.#savedBytes += out.savedBytes
    this.#skipped += out.skipped
    const rest = task.posted.slice(out.taken)
    if (out.failed !== undefined) {
      this.#skipped += rest.length
      if (LINKLESS.has(out.failed)) this.#linkless = true
      else this.#p.failed(Object.assign(new Error(`compress-later: ${out.failed}`), { code: out.failed }))
    } else if (rest.length > 0) this.#post(rest)
  }
}
