import path from 'node:path'
import { noRekeyCounts, REKEY_COUNTS } from '../crypto/rekey-counts.js'
import type { RekeyOutput } from '../crypto/rekey-entries.js'
import { keyringData, type Keyring } from '../crypto/keys.js'
import type { RedisRekeyReport } from '../crypto/rekey-redis.js'
import { isLarderError, LarderError } from '../errors.js'
import type { ResolvedOptions } from '../options.js'
import { disk, ifRoom, isForbidden } from '../store/disk.js'
import { PARTITION_NAME, TRASH_NAME, trashTime, type Layout } from '../store/layout.js'
import { RECORD_FIELDS, type PlanOutput } from './policy.js'
import type { MaintenancePool } from './pool.js'
import { Cancellation } from './cancellation.js'
import { heldToEvict, LockWait, lockWanted, notALock, notAMutex, takeoverMutex, tryLock, type LockPurpose } from './lock.js'
import { crowded } from './crowding.js'
import type { RunningTotals, Totals } from './totals.js'
import type { EvictOutput, PruneFilters, ScanInput, ScanOutput, SweepOutput, VerifyOutput } from './worker.js'
import { ENTRY_OVERHEAD, writesPlain } from './compress-later.js'
import { compressionIds } from '../format/compression.js'
import { mergeUsage, type EntryInfo, type HeldByReader, type ListFilters, type UsageOutput } from './listing.js'
import { stampLimits, type FoldOutput } from './stamp-fold.js'

export interface PruneReport {
  /** Entry files looked at. */
  scanned: number
  /** Expired or tag-invalidated entries removed. */
  expired: number
  /** Entries removed because they matched `maxAge`, `olderThan`, `tags` or `pattern`. */
  matched: number
  /** Entries evicted to bring the cache within its budget. */
  evicted: number
  /** Damaged or foreign files removed. */
  corrupt: number
  /** Stray temp files (of writers that died) removed. */
  tempFilesRemoved: number
  /** Trash directories of `clear()` calls whose process died, removed. */
  trashRemoved: number
  /** Tag stamps folded into the floor (tags/ past its bound: store/tag-clock.ts), removed (or,
   *  on a dry run, that would be). */
  stampsFolded: number
  /** Bytes of everything removed: entries, stray temp files and those trash directories. */
  freedBytes: number
  remainingBytes: number
  remainingEntries: number
  durationMs: number
  dryRun: boolean
  /** True when another process was pruning and this (automatic) prune stood aside. */
  skipped: boolean
  /** Keys removed (or that a dry run would remove), when `listKeys` was set or on a dry run. */
  keys?: string[]
  /** With `redis` and a `pattern`: keys of the namespace removed from Redis (SCAN per master,
   *  UNLINK in batches). */
  sharedRemoved?: number
}

/** A prune's report before any work: every count 0. */
export function emptyPruneReport(dryRun: boolean): PruneReport {
  return {
    scanned: 0,
    expired: 0,
    matched: 0,
    evicted: 0,
    corrupt: 0,
    tempFilesRemoved: 0,
    trashRemoved: 0,
    stampsFolded: 0,
    freedBytes: 0,
    remainingBytes: 0,
    remainingEntries: 0,
    durationMs: 0,
    dryRun,
    skipped: false,
  }
}

export interface VerifyReport {
  scanned: number
  /** Entries whose every byte matches their checksum. */
  ok: number
  corrupt: number
  tempFilesRemoved: number
  /** Trash directories of `clear()` calls whose process died, removed. */
  trashRemoved: number
  /** Bytes of everything removed: corrupt entries, stray temp files and those trash directories. */
  freedBytes: number
  /** Entries and bytes after the repair: the corrected running totals. */
  entries: number
  bytes: number
  durationMs: number
  /** Whether corrupt entries and stale temp files were removed (`repair`, default true). */
  repaired: boolean
  /** Up to 100 examples: file and reason. */
  problems: { file: string; reason: string }[]
}

export interface MaintenanceProgress {
  operation: 'prune' | 'verify' | 'list' | 'usage' | 'rekey'
  /** 'redis': rekey's pass over the values Redis holds, whose total grows as they are found. */
  phase: 'scan' | 'evict' | 'verify' | 'rekey' | 'redis'
  done: number
  total: number
}

export interface PruneOptions {
  /** Evict down to this size (bytes or `'5GB'`) instead of the configured budget's low-water mark. */
  maxSize?: number | string
  /** Remove entries not used (read or written) within this duration (ms or `'7d'`). */
  maxAge?: number | string
  /** Remove entries created before this time (a Date or ms since the epoch). */
  olderThan?: Date | number
  /** Remove entries carrying any of these tags. */
  tags?: readonly string[]
  /** Remove entries whose key matches this glob (`*`, `?`, `[abc]`, `{a,b}`), e.g. `'user:*'`. */
  pattern?: string
  /** Evict down to this many entries. */
  maxEntries?: number
  /** Report what would be removed; remove nothing. */
  dryRun?: boolean
  /** Also report the keys removed (always on for a dry run). */
  listKeys?: boolean
  signal?: AbortSignal
  onProgress?: (progress: MaintenanceProgress) => void
}

/** Options of the read-only walks (list, usage). */
export interface WalkOptions {
  signal?: AbortSignal
  onProgress?: (progress: MaintenanceProgress) => void
}

export interface UsageReport extends UsageOutput {
  /** Age buckets by createdAt, youngest first: `label` is the upper bound ('1h', '1d', '7d', '30d', 'older'). */
  byAge: { label: string; entries: number; bytes: number }[]
  durationMs: number
}

/** Age bucket bounds for usage reports. */
const AGE_BUCKETS: readonly [string, number][] = [
  ['1h', 3_600_000],
  ['1d', 86_400_000],
  ['7d', 7 * 86_400_000],
  ['30d', 30 * 86_400_000],
]

export interface VerifyOptions {
  /** Remove corrupt entries and stale temp files. Default true. */
  repair?: boolean
  signal?: AbortSignal
  onProgress?: (progress: MaintenanceProgress) => void
}

export interface RekeyOptions {
  signal?: AbortSignal
  onProgress?: (progress: MaintenanceProgress) => void
  /** Also seal the entries not sealed at all (counted `unsealed` and left otherwise): what was
   *  written before encryption was turned on. They are trusted as they are, so only when
   *  nobody else could write the directory (or Redis) since: a cache that seals every entry
   *  reads an unsealed one as a forgery. Default false. */
  sealPlain?: boolean
}

/** What `Larder.rekey` did (see crypto/rekey-entries.ts `RekeyOutput` for each count). */
export interface RekeyReport extends Omit<RekeyOutput, 'stopped' | 'grownBytes'> {
  durationMs: number
  /** With `redis`: what was done with the values Redis holds (facade/rekey.ts). */
  redis?: RedisRekeyReport
}

/** What an automatic prune (auto-prune.ts) is told. */
export interface AutomaticPrune {
  /** It has taken the lock: its pass begins (it no longer stands aside). */
  locked(): void
}

/** Partitions per worker task: 256 partitions make 32 tasks, fine-grained enough for
 *  progress and cancellation, coarse enough that messaging costs nothing. */
const PARTITIONS_PER_TASK = 8
/** Partitions per batch of a bounded listing (listBatches): a partition holds about a
 *  256th of the entries (4,000 of a million), so a batch is small whatever the cache holds. */
const PARTITIONS_PER_BATCH = 1
/** Victims per eviction task. */
const VICTIMS_PER_TASK = 4096
/** Fresh plain survivors compressed by one task (each up to maxValueSize: both threads share them). */
const FRESH_PER_TASK = 256

interface MaintainerParts {
  layout: Layout
  options: ResolvedOptions
  totals: RunningTotals
  pool: MaintenancePool
  /** A prune begins: this process's pending uses of entries (merged LRU touches, LFU hit
   *  counts) are written so it sees them, and hits touch at once until `pruneEnded`. */
  pruneStarted(): Promise<void> | void
  pruneEnded(): void
  /** The cache's circuit breaker: maintenance does not start while it is open (the disk is
   *  left alone until it recovers), and a maintenance step that fails on the disk counts as a
   *  failure, as any other disk operation's does. */
  breaker: { isOpen(): boolean; failed(error: unknown): void }
  /** Folds closed instances' activity records into one (needs the lock). */
  compactActivity(): void
  progress(progress: MaintenanceProgress): void
  /** What this instance's reads count beyond the directory (a read-only instance's heard
   *  removals and tag stamps held in memory), for the walks (list, usage) to count too. */
  heldByReader?(): HeldByReader | undefined
}

/**
 * Runs prune and verify: lists partitions, hands them to the worker pool in batches, and
 * keeps the main thread to bookkeeping. Only one process maintains a cache directory at a
 * time (lock.ts: refreshed while held, taken over when stale or when its holder is gone), so
 * two prunes never pick victims from the same count.
 */
export class Maintainer {
  readonly #p: MaintainerParts
  readonly #lockDir: string
  /** Prunes and verifies in progress, for close(). */
  readonly #running = new Set<{ cancel: Cancellation; settled: Promise<void> }>()

  constructor(parts: MaintainerParts) {
    this.#p = parts
    this.#lockDir = parts.layout.lockDir
  }

  /** `options` as validated by Larder.prune: sizes and durations already numbers. An
   *  `automatic` prune stands aside (`skipped`) if another holds the lock, and is told when it
   *  has taken it. */
  async prune(options: PruneOptions & PruneFilters & { maxSize?: number }, automatic?: AutomaticPrune): Promise<PruneReport> {
    const started = performance.now()
    const dryRun = options.dryRun === true
    const report = emptyPruneReport(dryRun)
    const listKeys = dryRun || options.listKeys === true
    const keys: string[] = []
    /** Whether a pass began (it settles the remaining figures, whatever stops it). */
    let passed = false
    const done = (): PruneReport => {
      // Stopped before a pass began (a signal aborted already, or while it waited for the
      // lock), or stood aside: what remains is what the running totals say.
      if (!passed) {
        try {
          const now = this.#p.totals.read()
          report.remainingEntries = now.entries
          report.remainingBytes = now.bytes
        } catch {
          // a failing disk: nothing known to report
        }
      }
      if (listKeys) report.keys = keys
      report.durationMs = performance.now() - started
      return report
    }
    // A readOnly instance's dry run writes nothing: no lock (a directory made in meta/), no
    // remembered uses written first. It reads what is there, so while another process prunes
    // its report may count what that prune is removing.
    const writesNothing = dryRun && this.#p.options.readOnly
    await this.#operation(options.signal, report, done, async (cancel) => {
      if (writesNothing) {
        passed = true
        await this.#prunePass(options, cancel, report, keys, listKeys)
        return
      }
      const release = await this.#lock(automatic !== undefined, cancel, dryRun ? 'dry-run' : 'prune')
      if (release === undefined) {
        report.skipped = true
        return
      }
      automatic?.locked()
      try {
        await this.#p.pruneStarted()
        passed = true
        await this.#prunePass(options, cancel, report, keys, listKeys)
      } finally {
        this.#p.pruneEnded()
        await release()
      }
    })
    return done()
  }

  /**
   * One prune under the lock: scan (removing the expired, the matched, the corrupt), plan,
   * evict. Whatever stops it (a cancellation, a failing disk), the running totals are left
   * right: a pass whose scan finished writes the count it made less what it evicted; one
   * stopped during the scan subtracts what it removed.
   */
  async #prunePass(
    options: PruneOptions & PruneFilters & { maxSize?: number },
    cancel: Cancellation,
    report: PruneReport,
    keys: string[],
    listKeys: boolean,
  ): Promise<void> {
    const { layout, options: config, pool, totals } = this.#p
    const dryRun = report.dryRun
    const epoch = dryRun ? 0 : beginScanIfRoom(totals)
    const now = Date.now()
    const removed = { entries: 0, bytes: 0 }
    const evicted = { entries: 0, bytes: 0 }
    const removals = new ScanRemovals(totals, dryRun ? NO_EPOCH : epoch)
    const record = (): void => removals.record({ entries: removed.entries + evicted.entries, bytes: removed.bytes + evicted.bytes })
    let survivors: Totals | undefined
    let settled = false
    const settle = (): void => {
      if (settled) return
      settled = true
      this.#settleTotals(report, epoch, survivors, removals.unrecorded(removed), evicted)
    }
    const progress = (phase: MaintenanceProgress['phase'], done: number, total: number): void => {
      const p = { operation: 'prune' as const, phase, done, total }
      options.onProgress?.(p)
      this.#p.progress(p)
    }
    try {
      // Before the scan, so that it removes the entries the floor makes stale in this pass.
      // (Not for onlyMatching: it removes what was asked for and nothing else, PruneFilters.)
      if (options.onlyMatching !== true) report.stampsFolded = await this.#foldStamps(dryRun) // a dry run (a read-only one too) writes nothing
      const partitions = await this.#partitions()
      // A dry run measures what compressing them would give, writing nothing (worker.ts).
      const compressPlain = this.#compressPlain(dryRun)
      // Taken as the scan begins, as in #walk: the stamps this instance holds unwritten count.
      const held = this.#p.heldByReader?.()?.tags
      let scannedPartitions = 0
      progress('scan', 0, partitions.length)
      const scans = await this.#tasks(
        chunk(partitions, PARTITIONS_PER_TASK),
        (batch) =>
          pool.run<ScanOutput>({
            task: 'scan',
            namespaceDir: layout.namespaceDir,
            tagsDir: layout.tagsDir,
            partitions: batch,
            now,
            tempMaxAge: config.maintenance.tempMaxAge,
            dryRun,
            filters: pickFilters(options),
            listKeys,
            cancel: cancel.flag,
            compressPlain,
            held,
          }),
        (out, batch) => {
          report.scanned += out.scanned
          report.expired += out.expired
          report.matched += out.matched
          report.corrupt += out.corrupt
          report.tempFilesRemoved += out.tempFilesRemoved
          report.freedBytes += out.freedBytes
          removed.entries += out.entriesRemoved
          removed.bytes += out.entryBytesRemoved
          keys.push(...out.removedKeys)
          record()
          progress('scan', (scannedPartitions += batch.length), partitions.length)
        },
      )
      cancel.throwIfRequested()
      if (options.onlyMatching !== true) await this.#sweepStrays(report, now, dryRun)

      // The survivors of every batch, as one set of records for the plan.
      const records = concatRecords(scans.map((s) => s.records))
      const names = scans.map((s) => s.names).join('')
      survivors = { entries: names.length / 16, bytes: sum(records) }
      let target = this.#target(options, survivors.entries, survivors.bytes)
      if (compressPlain !== undefined && survivors.bytes > target.bytes) {
        // Values other processes wrote plain a moment ago, which their workers compress only
        // once this scan ends: counted at their plain size they broke the budget, and a
        // prune evicted what their compressed size left room for (3 processes of 50 values
        // of 100 kB, 1 kB compressed, kept 8 of 150 under 1 MB).
        survivors.bytes -= await this.#compressFresh(scans, records, names, compressPlain, dryRun)
        target = this.#target(options, survivors.entries, survivors.bytes)
        cancel.throwIfRequested()
      }
      const plan = await pool.run<PlanOutput>(
        {
          task: 'plan',
          policy: config.evictionPolicy,
          hitsDir: layout.hitsDir,
          records,
          names,
          now,
          halfLife: config.maintenance.lfuHalfLife,
          targetEntries: target.entries,
          targetBytes: target.bytes,
        },
        { transfer: [records.buffer as ArrayBuffer] },
      )
      cancel.throwIfRequested()

      const victims = plan.names.length / 16
      let evictedSoFar = 0
      if (victims > 0) progress('evict', 0, victims)
      await this.#tasks(
        range(0, victims, VICTIMS_PER_TASK),
        (from) => {
          const to = Math.min(victims, from + VICTIMS_PER_TASK)
          return pool.run<EvictOutput>({
            task: 'evict',
            namespaceDir: layout.namespaceDir,
            names: plan.names.slice(from * 16, to * 16),
            facts: plan.facts.slice(from * 3, to * 3),
            dryRun,
            listKeys,
            cancel: cancel.flag,
          })
        },
        (out, from) => {
          report.evicted += out.evicted
          report.freedBytes += out.freedBytes
          evicted.entries += out.entriesRemoved
          evicted.bytes += out.entryBytesRemoved
          keys.push(...out.keys)
          record()
          progress('evict', (evictedSoFar += Math.min(victims, from + VICTIMS_PER_TASK) - from), victims)
        },
      )
      cancel.throwIfRequested()
      settle()
      if (!dryRun) {
        this.#p.compactActivity()
        if (config.evictionPolicy === 'lfu')
          await pool.run<number>({ task: 'compact-hits', hitsDir: layout.hitsDir, names, now, halfLife: config.maintenance.lfuHalfLife })
      }
    } catch (error) {
      try {
        settle()
      } catch {
        // the disk is failing too: the next scan corrects the totals
      }
      throw error
    }
  }

  /** Compresses the survivors the scans found fresh and plain (ScanOutput.freshPlain), and
   *  makes their records say so; the bytes the disk gained back. */
  async #compressFresh(
    scans: ScanOutput[],
    records: Float64Array,
    names: string,
    how: NonNullable<ScanInput['compressPlain']>,
    dryRun: boolean,
  ): Promise<number> {
    const fresh: number[] = []
    let offset = 0
    for (const scan of scans) {
      for (const i of scan.freshPlain) fresh.push(offset + i)
      offset += scan.names.length / 16
    }
    let saved = 0
    await this.#tasks(
      chunk(fresh, FRESH_PER_TASK),
      (batch) =>
        this.#p.pool.run<number[]>({
          task: 'compress-fresh',
          namespaceDir: this.#p.layout.namespaceDir,
          names: batch.map((i) => names.slice(i * 16, i * 16 + 16)).join(''),
          createdAt: batch.map((i) => records[i * RECORD_FIELDS + 2]!),
          with: how,
          dryRun,
        }),
      (out, batch) =>
        batch.forEach((i, n) => {
          const shrank = out[n * 2]!
          if (shrank === 0) return
          records[i * RECORD_FIELDS] = records[i * RECORD_FIELDS]! - shrank
          records[i * RECORD_FIELDS + 3] = out[n * 2 + 1]!
          saved += shrank
        }),
    )
    return saved
  }

  /** What a prune's scan compresses of what compressLater left plain (see ScanInput), when this
   *  cache writes values that way; for a dry run, also when it is read-only (the CLI's): it
   *  measures what a writer's prune would compress. */
  #compressPlain(dryRun: boolean): ScanInput['compressPlain'] {
    const o = dryRun ? { ...this.#p.options, readOnly: false } : this.#p.options
    if (!writesPlain(o)) return undefined
    let lastScan: number | undefined
    try {
      lastScan = this.#p.totals.read().scannedAt
    } catch {
      lastScan = undefined // unreadable totals: every plain survivor is tried, once more
    }
    return {
      compression: compressionIds[o.compression],
      level: o.compressionLevel,
      maxFileBytes: o.maxValueSize + ENTRY_OVERHEAD,
      from: o.compressLater,
      lastScan: lastScan ?? 0,
      shared: this.#p.layout.tree.shared,
    }
  }

  /**
   * Makes the running totals, and the report's remaining figures, agree with what a pass did.
   * `survivors`: what a finished scan counted after its own removals; eviction then removed
   * `evicted` of them. Without a finished scan, only what was removed (`removed`) is known, and
   * it is taken off the totals as a writer's removals are.
   */
  #settleTotals(report: PruneReport, epoch: number, survivors: Totals | undefined, removed: Totals, evicted: Totals): void {
    const { totals } = this.#p
    if (survivors !== undefined) {
      report.remainingEntries = survivors.entries - evicted.entries
      report.remainingBytes = survivors.bytes - evicted.bytes
      if (!report.dryRun) endScan(totals, epoch, { entries: report.remainingEntries, bytes: report.remainingBytes })
      return
    }
    if (!report.dryRun) totals.removed(removed.bytes, removed.entries)
    const now = totals.read()
    report.remainingEntries = now.entries
    report.remainingBytes = now.bytes
  }

  async verify(options: VerifyOptions): Promise<VerifyReport> {
    const started = performance.now()
    const repair = options.repair !== false
    const report: VerifyReport = {
      scanned: 0,
      ok: 0,
      corrupt: 0,
      tempFilesRemoved: 0,
      trashRemoved: 0,
      freedBytes: 0,
      entries: 0,
      bytes: 0,
      durationMs: 0,
      repaired: repair,
      problems: [],
    }
    const done = (): VerifyReport => {
      report.durationMs = performance.now() - started
      return report
    }
    await this.#operation(options.signal, report, done, async (cancel) => {
      // Without repair nothing is written: no lock is taken and the totals are left alone.
      const release = repair ? await this.#lock(false, cancel, 'verify') : async () => {}
      try {
        await this.#verifyPass(options, cancel, report)
      } finally {
        await release!()
      }
    })
    return done()
  }

  async #verifyPass(options: VerifyOptions, cancel: Cancellation, report: VerifyReport): Promise<void> {
    const { layout, options: config, pool, totals } = this.#p
    const repair = report.repaired
    const epoch = repair ? beginScanIfRoom(totals) : 0
    const removed = { entries: 0, bytes: 0 }
    const removals = new ScanRemovals(totals, repair ? epoch : NO_EPOCH)
    let finished = false
    try {
      await this.#overPartitions(
        'verify',
        options.onProgress,
        (batch) =>
          pool.run<VerifyOutput>({
            task: 'verify',
            namespaceDir: layout.namespaceDir,
            partitions: batch,
            now: Date.now(),
            tempMaxAge: config.maintenance.tempMaxAge,
            repair,
            cancel: cancel.flag,
          }),
        (out) => {
          report.scanned += out.scanned
          report.ok += out.entries
          report.corrupt += out.corrupt
          report.tempFilesRemoved += out.tempFilesRemoved
          report.freedBytes += out.freedBytes
          report.entries += out.entries
          report.bytes += out.bytes
          removed.entries += out.entriesRemoved
          removed.bytes += out.entryBytesRemoved
          removals.record(removed)
          for (const problem of out.problems) if (report.problems.length < 100) report.problems.push(problem)
        },
      )
      cancel.throwIfRequested()
      await this.#sweepStrays(report, Date.now(), !repair)
      finished = true
    } finally {
      // Without repair, corrupt files remain on disk and are still counted as entries.
      if (repair) {
        try {
          if (finished) endScan(totals, epoch, { entries: report.entries, bytes: report.bytes })
          else {
            const unrecorded = removals.unrecorded(removed)
            totals.removed(unrecorded.bytes, unrecorded.entries)
          }
        } catch (error) {
          // eslint-disable-next-line no-unsafe-finally -- only once the try block finished: no error in flight is masked
          if (finished) throw error // a failing disk, reported as the verify's failure
        }
      }
    }
  }

  /** `Larder.rekey`: every partition's entries rewritten under the active key in the workers
   *  (crypto/rekey-entries.ts), in batches, with progress; cancellable. */
  async rekey(options: RekeyOptions): Promise<RekeyReport> {
    const keyring = this.#p.options.encryption
    if (keyring === undefined)
      throw new LarderError('ERR_INVALID_OPTION', 'rekey needs the encryption option (the keys)', { field: 'encryption' })
    const started = performance.now()
    const report: RekeyReport = { ...noRekeyCounts(), durationMs: 0 }
    const done = (): RekeyReport => {
      report.durationMs = performance.now() - started
      return report
    }
    await this.#operation(options.signal, report, done, async (cancel) => {
      // Under the maintenance lock, as prune: two rekeys at once (two instances, a retried
      // call) each took the other's entry swapped aside for one a killed rekey left, and lost it.
      const release = (await this.#lock(false, cancel, 'rekey'))!
      try {
        await this.#rekeyPass(keyring, options, report, cancel)
      } finally {
        await release()
      }
    })
    return done()
  }

  /** One rekey under the lock: every partition, in batches, in the workers. */
  async #rekeyPass(keyring: Keyring, options: RekeyOptions, report: RekeyReport, cancel: Cancellation): Promise<void> {
    const { layout, options: config, pool } = this.#p
    await this.#overPartitions(
      'rekey',
      options.onProgress,
      (batch) =>
        pool.run<RekeyOutput>({
          task: 'rekey',
          namespaceDir: layout.namespaceDir,
          namespace: config.namespace,
          shared: config.shared,
          durable: config.durable,
          partitions: batch,
          keyring: keyringData(keyring),
          sealPlain: options.sealPlain,
          maxValueSize: config.maxValueSize,
          cancel: cancel.flag,
        }),
      (out) => {
        for (const field of REKEY_COUNTS) report[field] += out[field]
        // The rewritten entries' lengths changed (a plain one sealed grows by its seal): the
        // running totals follow, or the budget is judged against the old sizes until a scan.
        if (out.grownBytes !== 0) this.#p.totals.resized(out.grownBytes)
      },
    )
    cancel.throwIfRequested()
  }

  /** Folds the per-process bookkeeping files (running-total deltas, activity records, LFU hit
   *  logs once they pile up) under the lock, without a scan; stands aside if another process
   *  holds the lock. */
  async foldBookkeeping(): Promise<void> {
    if (this.#p.breaker.isOpen()) return
    const cancel = new Cancellation(undefined)
    await this.#reportingFailures(async () => {
      const release = await this.#lock(true, cancel, 'bookkeeping')
      if (release === undefined) return
      try {
        this.#p.totals.fold()
        this.#p.compactActivity()
        const { layout, pool, options } = this.#p
        if (crowded(layout.hitsDir)) {
          const now = Date.now()
          await pool.run<number>({
            task: 'compact-hits',
            hitsDir: layout.hitsDir,
            names: undefined,
            now,
            halfLife: options.maintenance.lfuHalfLife,
          })
        }
      } finally {
        await release()
      }
    }, cancel)
  }

  /** Every live entry matching `filters`, read in workers, as one array (held whole: see
   *  `listBatches` for a listing whose memory is bounded); takes no lock and removes nothing. */
  async list(filters: ListFilters, options: WalkOptions): Promise<EntryInfo[]> {
    const parts = await this.#walk('list', options, (partitions, now) => ({ task: 'list', filters, partitions, now }))
    return (parts as EntryInfo[][]).flat()
  }

  /**
   * The live entries matching `filters`, a batch of partitions at a time, each batch handed
   * over as its worker task ends: the bounded listing under Keyv's `iterator()` and `larder
   * ls --limit`. No more tasks run ahead of the caller than the pool has workers, so memory
   * holds the batch being consumed and at most that many more, however many entries the cache
   * has (`list` holds them all). Stopping early (`return()`, a `break`) stops the tasks in
   * flight and lists nothing further. Takes no lock and removes nothing; failures and
   * cancellation as `list`'s.
   */
  async *listBatches(filters: ListFilters, options: WalkOptions): AsyncGenerator<EntryInfo[], void> {
    this.#assertDiskAvailable()
    const { layout, pool } = this.#p
    const cancel = new Cancellation(options.signal)
    const ahead: Promise<EntryInfo[]>[] = []
    try {
      const partitions = await this.#reportingFailures(() => this.#partitions(), cancel)
      const now = Date.now()
      // As in #walk: what a read-only reader counts beyond the directory, taken as it begins.
      const held = this.#p.heldByReader?.()
      const window = Math.max(1, this.#p.options.maintenance.workers)
      let started = 0
      let done = 0
      const progress = (d: number): void => {
        const p = { operation: 'list' as const, phase: 'scan' as const, done: d, total: partitions.length }
        options.onProgress?.(p)
        this.#p.progress(p)
      }
      progress(0)
      // The next tasks start before a batch is handed over, so workers list while the caller reads.
      const fill = (): void => {
        while (ahead.length < window && started < partitions.length) {
          const batch = partitions.slice(started, (started += PARTITIONS_PER_BATCH))
          const task = this.#reportingFailures(
            () =>
              pool.run<EntryInfo[]>(
                { task: 'list', filters, partitions: batch, now, namespaceDir: layout.namespaceDir, tagsDir: layout.tagsDir, held },
                { signal: cancel.signal },
              ),
            cancel,
          )
          task.catch(() => {}) // heard when its turn comes, or dropped with the listing
          ahead.push(task)
        }
      }
      fill()
      while (ahead.length > 0) {
        const listed = await ahead.shift()!
        progress((done = Math.min(partitions.length, done + PARTITIONS_PER_BATCH)))
        fill()
        if (listed.length > 0) yield listed
      }
    } catch (error) {
      if (!cancel.requested) throw error
      throw new LarderError('ERR_ABORTED', 'list was cancelled', { field: 'signal', cause: cancel.reason })
    } finally {
      // A caller that stopped early (or a failed task) leaves tasks in flight: they are read-only,
      // so they are stopped outright, and waited for, so none outlives the listing.
      if (ahead.length > 0) cancel.cancel()
      await Promise.allSettled(ahead)
      cancel.dispose()
    }
  }

  /** Counts and sizes by age, read in workers; takes no lock and removes nothing. */
  async usage(options: WalkOptions): Promise<UsageReport> {
    const started = performance.now()
    const bounds = AGE_BUCKETS.map(([, ms]) => ms)
    const parts = await this.#walk('usage', options, (partitions, now) => ({ task: 'usage', ageBounds: bounds, partitions, now }))
    const total = mergeUsage(parts as UsageOutput[], bounds.length + 1)
    const labels = [...AGE_BUCKETS.map(([label]) => label), 'older']
    return { ...total, byAge: total.byAge.map((b, i) => ({ label: labels[i]!, ...b })), durationMs: performance.now() - started }
  }

  /** Cancels the prunes and verifies in progress (they stop after the file each worker is on
   *  and reject with ERR_ABORTED) and waits for them to settle. */
  async close(): Promise<void> {
    const running = [...this.#running]
    for (const { cancel } of running) cancel.cancel()
    await Promise.allSettled(running.map((r) => r.settled))
  }

  async #walk(operation: 'list' | 'usage', options: WalkOptions, input: (partitions: string[], now: number) => object): Promise<unknown[]> {
    this.#assertDiskAvailable()
    // Read-only tasks: piscina may stop their threads outright on cancellation.
    const cancel = new Cancellation(options.signal)
    try {
      return await this.#reportingFailures(() => this.#walkPartitions(operation, options, input, cancel), cancel)
    } catch (error) {
      if (!cancel.requested) throw error
      throw new LarderError('ERR_ABORTED', `${operation} was cancelled`, { field: 'signal', cause: cancel.reason })
    } finally {
      cancel.dispose()
    }
  }

  async #walkPartitions(
    operation: 'list' | 'usage',
    options: WalkOptions,
    input: (partitions: string[], now: number) => object,
    cancel: Cancellation,
  ): Promise<unknown[]> {
    const { layout, pool } = this.#p
    const partitions = await this.#partitions()
    const now = Date.now()
    // Taken as the walk begins: what was heard after it is judged by the reads that follow.
    const held = this.#p.heldByReader?.()
    let done = 0
    const progress = (d: number): void => {
      const p = { operation, phase: 'scan' as const, done: d, total: partitions.length }
      options.onProgress?.(p)
      this.#p.progress(p)
    }
    progress(0)
    return await this.#tasks(
      chunk(partitions, PARTITIONS_PER_TASK),
      (batch) =>
        pool.run<unknown>({ ...input(batch, now), namespaceDir: layout.namespaceDir, tagsDir: layout.tagsDir, held } as never, {
          signal: cancel.signal,
        }),
      (_out, batch) => progress((done += batch.length)),
    )
  }

  /** Refuses to start while the breaker is open (with the error opossum rejects with then). */
  #assertDiskAvailable(): void {
    if (this.#p.breaker.isOpen()) throw Object.assign(new Error('Breaker is open'), { code: 'EOPENBREAKER' })
  }

  /** Runs `step`, telling the breaker of a disk failure (not of a cancellation, nor of a
   *  LarderError such as ERR_BUSY: neither says anything about the disk). */
  async #reportingFailures<T>(step: () => Promise<T>, cancel: Cancellation): Promise<T> {
    try {
      return await step()
    } catch (error) {
      if (!cancel.requested && !isLarderError(error)) this.#p.breaker.failed(error)
      throw error
    }
  }

  /**
   * Runs `body` as one cancellable operation: its Cancellation follows `signal` (and `close()`),
   * and is released however the operation ends, so a long-lived signal gains no listener. A
   * cancelled operation rejects with ERR_ABORTED, whose `report` holds what was done.
   */
  async #operation(
    signal: AbortSignal | undefined,
    report: PruneReport | VerifyReport | RekeyReport,
    done: () => void,
    body: (cancel: Cancellation) => Promise<void>,
  ): Promise<void> {
    this.#assertDiskAvailable()
    const cancel = new Cancellation(signal)
    const settled = this.#reportingFailures(() => body(cancel), cancel)
    const entry = {
      cancel,
      settled: settled.then(
        () => {},
        () => {},
      ),
    }
    this.#running.add(entry)
    try {
      await settled
    } catch (error) {
      done()
      if (!cancel.requested) throw error
      throw Object.assign(
        new LarderError('ERR_ABORTED', 'Maintenance was cancelled; `report` holds what was done before it stopped', {
          field: 'signal',
          cause: cancel.reason,
        }),
        { report },
      )
    } finally {
      cancel.dispose()
      this.#running.delete(entry)
    }
  }

  /** Whether the holder of the maintenance lock, as its owner says, is a prune (or may be:
   *  see lock.ts, heldToEvict), rather than work that evicts nothing (verify, rekey). */
  lockHeldToEvict(): boolean {
    return heldToEvict(this.#lockDir)
  }

  /** Takes the maintenance lock (see lock.ts) for `purpose`, which its owner file records. An
   *  automatic run stands aside (undefined) if another process holds it; an explicit one waits
   *  for it, up to about a minute. */
  async #lock(automatic: boolean, cancel: Cancellation, purpose: LockPurpose): Promise<(() => Promise<void>) | undefined> {
    const { tree, lockWantedDir } = this.#p.layout
    this.#checkLockPlace()
    // An automatic run stands aside for explicit maintenance waiting for the lock (LockWait).
    if (automatic && lockWanted(lockWantedDir)) return undefined
    const deadline = Date.now() + 60_000
    let waiting: LockWait | undefined
    try {
      for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
        cancel.throwIfRequested()
        // Checked again before each try: a wait lasts up to a minute, and a link put in place
        // of meta/ meanwhile would have the lock made (and its owner written) outside the cache.
        if (waiting !== undefined) this.#checkLockPlace()
        const release = tryLock(this.#lockDir, { dir: tree.dirMode, file: tree.fileMode }, purpose)
        if (release !== undefined) return () => Promise.resolve(release())
        if (automatic) return undefined
        if (Date.now() > deadline)
          throw new LarderError('ERR_BUSY', 'Another process has been maintaining this cache for over a minute; try again later', {
            field: 'cache',
          })
        if (waiting === undefined) waiting = this.#markWaiting()
        else waiting.renew()
        await new Promise((resolve) => setTimeout(resolve, wait))
      }
    } finally {
      waiting?.withdraw()
    }
  }

  /** Makes meta/ a real directory of ours, and removes anything but a directory at the lock's
   *  name: a link there would have the lock's age read from (and its owner file written into)
   *  the link's target. A directory holding what no lock holds is reported here, and removed
   *  by the lock's takeover (lock.ts, notALock), at once rather than once 30 s old; one at the
   *  takeover mutex's name holding anything (it held a dead lock's takeover 30 s) is removed. */
  #checkLockPlace(): void {
    const { tree, metaDir } = this.#p.layout
    tree.dirSync(metaDir)
    const planted = disk.lstatSync(this.#lockDir, { throwIfNoEntry: false })
    if (planted === undefined) return
    if (!planted.isDirectory()) return tree.removeForeignSync(this.#lockDir, planted, 'where the maintenance lock belongs')
    const foreign = notALock(this.#lockDir)
    if (foreign !== undefined)
      tree.onForeign(this.#lockDir, `${foreign} where the maintenance lock belongs: no lock, removed, never followed`)
    const mutex = takeoverMutex(this.#lockDir)
    const what = notAMutex(mutex)
    const found = what === undefined ? undefined : disk.lstatSync(mutex, { throwIfNoEntry: false })
    if (found?.isDirectory() === true) {
      disk.rmSync(mutex, { recursive: true, force: true }) // never follows a link inside
      tree.onForeign(mutex, `${what} where the maintenance lock's takeover mutex belongs: removed, never followed`)
    }
  }

  /** Marks that this explicit call waits for the lock (see LockWait); undefined when the
   *  directory for it cannot be made (a failing or full disk: the tries go on without). */
  #markWaiting(): LockWait | undefined {
    const { tree, lockWantedDir } = this.#p.layout
    try {
      tree.dirSync(lockWantedDir)
    } catch {
      return undefined
    }
    return new LockWait(tree, lockWantedDir)
  }

  /** What dead processes left outside the partitions (a clear's trash, bookkeeping temp
   *  files), removed (or, on a dry run, counted) and added to the report with their bytes. */
  async #sweepStrays(report: PruneReport | VerifyReport, now: number, dryRun: boolean): Promise<void> {
    const trash = await this.#sweepTrash(now, dryRun)
    report.trashRemoved += trash.removed
    report.freedBytes += trash.bytes
    const temps = await this.#sweepBookkeeping(now, dryRun)
    report.tempFilesRemoved += temps.tempFilesRemoved
    report.freedBytes += temps.freedBytes
  }

  /**
   * Removes the trees of `clear()` calls whose process died between moving the partitions
   * aside and deleting them (`<dir>/v1/.trash-<pid>-<ms>-<random>`): nothing else would ever
   * reclaim them. Only trees older than `tempMaxAge` go, so a live clear still deleting its
   * own is left alone. Nothing is followed: `v1/` must be a real directory, and a link at a
   * trash name is unlinked, not entered. Resolves to how many trees were (or would be)
   * removed, and the bytes of the regular files they held (a crashed clear's trash is often
   * most of a cache: a report without them would say almost nothing was reclaimed).
   */
  async #sweepTrash(now: number, dryRun: boolean): Promise<{ removed: number; bytes: number }> {
    const swept = { removed: 0, bytes: 0 }
    const { tree, versionDir } = this.#p.layout
    if (!tree.isRealSync(versionDir)) return swept
    let names: string[]
    try {
      names = (await disk.readdir(versionDir)).filter((name) => TRASH_NAME.test(name))
    } catch {
      return swept
    }
    for (const name of names) {
      if (now - trashTime(name) < this.#p.options.maintenance.tempMaxAge) continue
      let bytes: number
      try {
        bytes = await this.#p.pool.run<number>({ task: 'remove-trash', trash: path.join(versionDir, name), measure: true, dryRun })
      } catch {
        continue // another process is removing it too; the next run finishes the job
      }
      swept.removed++
      swept.bytes += bytes
    }
    return swept
  }

  /** Folds the oldest tag stamps into the floor once tags/ holds more than its bound
   *  (stamp-fold.ts), in a worker; how many were (or, on a dry run, would be) folded. */
  async #foldStamps(dryRun: boolean): Promise<number> {
    const { layout, pool } = this.#p
    const out = await pool.run<FoldOutput>({
      task: 'fold-stamps',
      root: layout.root,
      tagsDir: layout.tagsDir,
      shared: layout.tree.shared,
      max: stampLimits.max,
      keep: stampLimits.keep,
      dryRun,
    })
    return out.folded
  }

  /** Removes (or, on a dry run, counts) the stray temp files that bookkeeping writes of dead
   *  processes left in tags/ and meta/, and dead locks a killed taker left aside in meta/,
   *  older than `tempMaxAge`, in a worker. */
  async #sweepBookkeeping(now: number, dryRun: boolean): Promise<SweepOutput> {
    const { layout, options, pool } = this.#p
    return pool.run<SweepOutput>({
      task: 'sweep-bookkeeping',
      root: layout.root,
      dirs: layout.bookkeepingDirs,
      now,
      tempMaxAge: options.maintenance.tempMaxAge,
      dryRun,
    })
  }

  /** Every partition, in worker tasks of PARTITIONS_PER_TASK, with progress in partitions. */
  async #overPartitions<T>(
    operation: 'verify' | 'rekey',
    onProgress: ((progress: MaintenanceProgress) => void) | undefined,
    run: (batch: string[]) => Promise<T>,
    each: (out: T) => void,
  ): Promise<void> {
    const partitions = await this.#partitions()
    let done = 0
    const progress = (d: number): void => {
      const p = { operation, phase: operation, done: d, total: partitions.length }
      onProgress?.(p)
      this.#p.progress(p)
    }
    progress(0)
    await this.#tasks(chunk(partitions, PARTITIONS_PER_TASK), run, (out, batch) => {
      each(out)
      progress((done += batch.length))
    })
  }

  async #partitions(): Promise<string[]> {
    try {
      return (await disk.readdir(this.#p.layout.namespaceDir)).filter((name) => PARTITION_NAME.test(name)).sort()
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return []
      throw error
    }
  }

  /** The entries and bytes to keep at most. */
  #target(options: { maxSize?: number; maxEntries?: number }, entries: number, bytes: number): { entries: number; bytes: number } {
    const { maxSize, maxEntries, maintenance } = this.#p.options
    const low = maintenance.lowWater
    return {
      entries: options.maxEntries ?? (maxEntries !== undefined && entries > maxEntries ? Math.floor(maxEntries * low) : Infinity),
      bytes: options.maxSize ?? (maxSize !== undefined && bytes > maxSize ? Math.floor(maxSize * low) : Infinity),
    }
  }

  /**
   * Runs one worker task per item (all queued at once; the pool runs as many as it has
   * threads), hands each result to `each` as it arrives, and waits for every task to settle
   * before rejecting, so no worker is still removing files when the caller hears of a failure.
   */
  async #tasks<I, T>(items: I[], run: (item: I) => Promise<T>, each: (out: T, item: I) => void): Promise<T[]> {
    const settled = await Promise.allSettled(
      items.map(async (item) => {
        const out = await run(item)
        each(out, item)
        return out
      }),
    )
    const failed = settled.find((s) => s.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return settled.map((s) => (s as PromiseFulfilledResult<T>).value)
  }
}

function pickFilters(o: PruneFilters): PruneFilters {
  return {
    maxAge: o.maxAge,
    olderThan: o.olderThan,
    tags: o.tags,
    pattern: o.pattern,
    createdBefore: o.createdBefore,
    onlyMatching: o.onlyMatching,
  }
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

function range(from: number, to: number, step: number): number[] {
  const out: number[] = []
  for (let i = from; i < to; i += step) out.push(i)
  return out
}

function concatRecords(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Total bytes of scan records (size is each record's first field). */
function sum(records: Float64Array): number {
  let total = 0
  for (let i = 0; i < records.length; i += RECORD_FIELDS) total += records[i]!
  return total
}

/** No epoch begun: the disk was full (see beginScanIfRoom). */
const NO_EPOCH = -1

/**
 * Begins a scan's epoch of the running totals, or NO_EPOCH when the disk has no room for its
 * few bytes: a prune is how a full cache disk is freed, so it runs, and its count is recorded
 * once its evictions have made room (endScan).
 */
function beginScanIfRoom(totals: RunningTotals): number {
  return ifPermitted(() => ifRoom(() => totals.beginScan())) ?? NO_EPOCH
}

/**
 * What a scan (a prune's or a repairing verify's) has removed, recorded in the running totals
 * as each batch ends (RunningTotals.removedByScan), so that a scan killed outright before it
 * writes its count leaves them right; what it could not record (no epoch, no room, a failing
 * disk) is taken off as before by a scan that stops early (`unrecorded`).
 */
class ScanRemovals {
  readonly #totals: RunningTotals
  readonly #epoch: number
  readonly #recorded: Totals = { entries: 0, bytes: 0 }

  constructor(totals: RunningTotals, epoch: number) {
    this.#totals = totals
    this.#epoch = epoch
  }

  /** `so`: everything the scan has removed so far. */
  record(so: Totals): void {
    if (this.#epoch === NO_EPOCH || (so.entries === this.#recorded.entries && so.bytes === this.#recorded.bytes)) return
    const recorded = { ...so }
    try {
      const wrote = ifPermitted(() =>
        ifRoom(() => {
          this.#totals.removedByScan(this.#epoch, recorded)
          return true
        }),
      )
      if (wrote === true) Object.assign(this.#recorded, recorded)
    } catch {
      // a failing disk: what is not recorded is taken off when the scan settles
    }
  }

  /** Of `removed` (entries removed so far), what the totals have not had taken off. */
  unrecorded(removed: Totals): Totals {
    return { entries: removed.entries - this.#recorded.entries, bytes: removed.bytes - this.#recorded.bytes }
  }
}

/** `step`'s result, or undefined when the totals' directory or files are another user's (mode
 *  000, say): the scan that keeps the budget runs all the same, without totals to record. */
function ifPermitted<T>(step: () => T): T | undefined {
  try {
    return step()
  } catch (error) {
    if (isForbidden(error)) return undefined
    throw error
  }
}

/** Ends a scan begun by beginScanIfRoom; one begun without an epoch takes one now (the
 *  writes other processes flushed since its count are lost from the totals until the next
 *  scan), or leaves the totals to the next scan if there is still no room. */
function endScan(totals: RunningTotals, epoch: number, counted: Totals): void {
  if (epoch !== NO_EPOCH) return ifPermitted(() => totals.endScan(epoch, counted))
  ifPermitted(() => ifRoom(() => totals.endScan(totals.beginScan(), counted)))
}
