/**
 * The piscina worker: every maintenance task that touches many files runs here, off the main
 * thread. Tasks are plain data in, plain data out (typed arrays for per-entry records, so
 * 100,000 entries cross threads as a few MB of transferable memory, not 100,000 objects).
 */
import fs from 'node:fs'
import path from 'node:path'
import { hasher, loadHasher } from '../format/checksum.js'
import { Compression } from '../format/compression.js'
import { CorruptEntryError, FLAG_FRAMED, FLAG_SEALED, type EntryHead } from '../format/entry-format.js'
import { BOOKKEEPING_TEMP_NAME, DEAD_LOCK_NAME, ENTRY_NAME, removeTrash, rootAbove, TEMP_NAME, trashBytes } from '../store/layout.js'
import { chainIsReal, OwnedTree, type Sharing } from '../store/owned-tree.js'
import { entryState } from '../store/liveness.js'
import type { HeldStamps } from '../store/tag-clock.js'
import { stopRequested } from './cancellation.js'
import { Glob } from './glob.js'
import { touchIfOlder } from './last-use.js'
import {
  headBuffer,
  listPartition,
  openJudged,
  readEntryHead,
  readHead,
  removeIfSame,
  removeStaleTemp,
  TagStamps,
  verifyBuffer,
  verifyEntry,
  type JudgedFile,
} from './entry-scan.js'
import { chooseVictims, RECORD_FIELDS, type PlanInput, type PlanOutput } from './policy.js'
import { compactHitLogs, readHitCounts } from './hit-counts.js'
import { rekeyPartitions, type RekeyInput, type RekeyOutput } from '../crypto/rekey-entries.js'
import { listEntries, usage, type EntryInfo, type ListInput, type UsageInput, type UsageOutput } from './listing.js'
import { foldStamps, type FoldInput, type FoldOutput } from './stamp-fold.js'
import { BUSY, compressEntries, compressEntry, type CompressInput, type CompressOutput, type CompressWith } from './compress-entries.js'

export interface PruneFilters {
  /** Remove entries not used (read or written) within this many ms. */
  maxAge?: number
  /** Remove entries created before this time (ms since the epoch). */
  olderThan?: number
  /** Remove entries carrying any of these tags. */
  tags?: string[]
  /** Remove entries whose key matches this glob. */
  pattern?: string
  /** Internal: `pattern` and `tags` remove only the entries created before this time (the
   *  prune's own, taken as it was called, or that of one heard from another instance): a set
   *  called after the prune runs at once, while its workers' pass still scans, and stays. */
  createdBefore?: number
  /** Internal (`larder rm --pattern/--tag`, facade/adapter-hooks.ts `removeMatching`): remove
   *  what `pattern` and `tags` select and nothing else. An expired entry that matches goes
   *  (counted in `expired`); one that does not match stays, as do damaged files and stray temp
   *  files: `rm` removes what it was asked to, and counts exactly that. */
  onlyMatching?: boolean
}

export interface ScanInput {
  task: 'scan'
  namespaceDir: string
  tagsDir: string
  partitions: string[]
  now: number
  tempMaxAge: number
  dryRun: boolean
  filters: PruneFilters
  /** Collect the keys of entries removed (dry-run and listing reports). */
  listKeys: boolean
  /** The operation's cancellation flag (see cancellation.ts). */
  cancel?: Int32Array
  /** The tag stamps the pruning instance holds unwritten (its disk refused them: TagClock.
   *  heldStamps): an entry one of them invalidated is removed as its reads judge it, not kept
   *  a survivor (counted in the budget, evicting live entries in its place) until written. */
  held?: HeldStamps
  /** compressLater's leftovers: survivors written plain (at least `from` bytes, untouched for a
   *  minute) that no worker compressed (their writer exited without close(), or its queue was
   *  full or dropped), compressed here as compress-later's task would. Each is tried by one
   *  scan, not every one: only those created since a minute before `lastScan` (the last scan's
   *  time; 0: never), so a value that does not compress is not read again and again. */
  compressPlain?: CompressWith & { from: number; lastScan: number; shared: Sharing }
}

/** A plain survivor is left this long to the worker of the process that wrote it. */
const PLAIN_SETTLED_MS = 60_000

/** What every removing task reports besides its own counts. */
interface Removals {
  /** Entry files removed (or, on a dry run, that would be), and their bytes: what the
   *  running totals lose. Temp files are not entries and are not in these. */
  entriesRemoved: number
  entryBytesRemoved: number
  /** Cancelled before the end: the counts cover only what was done. */
  stopped: boolean
}

export interface ScanOutput extends Removals {
  scanned: number
  expired: number
  /** Removed because a filter (maxAge, olderThan, tags, pattern) matched. */
  matched: number
  corrupt: number
  tempFilesRemoved: number
  freedBytes: number
  /** Survivors: RECORD_FIELDS numbers each, in the order of `names`. */
  records: Float64Array
  /** Survivors' file names, 16 characters each, concatenated. */
  names: string
  removedKeys: string[]
  /** Survivors left plain by compress-later, compressed by this scan (`compressPlain`). */
  compressedPlain: number
  /** Survivors compress-later left plain less than PLAIN_SETTLED_MS ago (with `compressPlain`):
   *  their indexes among `names`. Their writer's worker compresses them, but not while this
   *  scan counts the files, so a prune whose budget their plain size breaks compresses them
   *  first (compress-fresh) rather than evict what their compressed size leaves room for. */
  freshPlain: number[]
}

export interface CompressFreshInput {
  task: 'compress-fresh'
  namespaceDir: string
  /** The files' names, 16 characters each, and the creation times of their entries. */
  names: string
  createdAt: number[]
  with: CompressWith & { shared: Sharing }
  /** Measure what each would shrink by, writing nothing (a dry run's prune). */
  dryRun: boolean
}

export interface EvictInput {
  task: 'evict'
  namespaceDir: string
  /** Victims' file names, 16 characters each. */
  names: string
  /** size, mtimeMs, ino per victim. */
  facts: Float64Array
  dryRun: boolean
  listKeys: boolean
  cancel?: Int32Array
}

export interface EvictOutput extends Removals {
  evicted: number
  freedBytes: number
  /** Victims used or rewritten since they were chosen, and so kept. */
  kept: number
  keptBytes: number
  keys: string[]
}

export interface VerifyInput {
  task: 'verify'
  namespaceDir: string
  partitions: string[]
  now: number
  tempMaxAge: number
  repair: boolean
  cancel?: Int32Array
}

export interface VerifyOutput extends Removals {
  scanned: number
  corrupt: number
  tempFilesRemoved: number
  freedBytes: number
  entries: number
  bytes: number
  /** Up to 100 examples of what was found corrupt, for the report. */
  problems: { file: string; reason: string }[]
}

export interface CompactInput {
  task: 'compact-hits'
  hitsDir: string
  /** Entries that still exist (16-character names, concatenated); undefined: unknown (a fold
   *  without a scan), every entry's counts kept. */
  names: string | undefined
  /** Counts are decayed to `now`, halved every `halfLife` ms. */
  now: number
  halfLife: number
}

/** Stray temp files of bookkeeping writes (tags/, meta/) older than `tempMaxAge`. */
export interface SweepInput {
  task: 'sweep-bookkeeping'
  /** The cache root: nothing is listed or removed unless every directory down to it is real. */
  root: string
  dirs: string[]
  now: number
  tempMaxAge: number
  dryRun: boolean
}

/** Remembered hits to write (last-use.ts): each file's mtime moved up to its hit time. */
export interface TouchInput {
  task: 'touch'
  files: string[]
  times: number[]
}

/** A clear's trash directory, deleted here: one file removal at a time flooded the main
 *  thread's event loop with completions (1.9 s without a timer firing for 90,000 entries). */
export interface TrashInput {
  task: 'remove-trash'
  trash: string
  /** Resolve to the bytes the tree held (a sweep's report; a clear() does not need them and
   *  does not pay for the walk). */
  measure?: boolean
  /** Only measure: remove nothing (a dry run's report). */
  dryRun?: boolean
}

export type TaskInput =
  | ScanInput
  | EvictInput
  | VerifyInput
  | (PlanInput & { task: 'plan' })
  | CompactInput
  | ListInput
  | UsageInput
  | SweepInput
  | RekeyInput
  | TouchInput
  | TrashInput
  | FoldInput
  | CompressInput
  | CompressFreshInput

export default async function run(
  input: TaskInput,
): Promise<
  | ScanOutput
  | EvictOutput
  | VerifyOutput
  | PlanOutput
  | number
  | EntryInfo[]
  | UsageOutput
  | SweepOutput
  | RekeyOutput
  | FoldOutput
  | CompressOutput
  | number[]
> {
  await loadHasher()
  switch (input.task) {
    case 'scan':
      return scan(input)
    case 'rekey':
      return rekeyPartitions(input, () => stopRequested(input.cancel))
    case 'evict':
      return evict(input)
    case 'verify':
      return verify(input)
    case 'plan':
      return chooseVictims(input, input.policy === 'lfu' ? readHitCounts(input.hitsDir, input.now, input.halfLife) : undefined)
    case 'compact-hits':
      return compactHitLogs(input.hitsDir, input.names, input.now, input.halfLife)
    case 'list':
      return listEntries(input)
    case 'usage':
      return usage(input)
    case 'sweep-bookkeeping':
      return sweepBookkeeping(input)
    case 'fold-stamps':
      return foldStamps(input)
    case 'touch':
      return touchIfOlder(input.files, input.times)
    case 'compress':
      return compressEntries(input)
    case 'compress-fresh':
      return compressFresh(input)
    case 'remove-trash': {
      const bytes = input.measure === true ? trashBytes(input.trash) : 0
      if (input.dryRun !== true) await removeTrash(input.trash)
      return bytes
    }
  }
}

export interface SweepOutput {
  tempFilesRemoved: number
  freedBytes: number
}

/** Removes stray bookkeeping temp files (see SweepInput); their count and bytes. */
function sweepBookkeeping(input: SweepInput): SweepOutput {
  const out: SweepOutput = { tempFilesRemoved: 0, freedBytes: 0 }
  for (const dir of input.dirs) {
    if (!chainIsReal(input.root, dir)) continue
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch {
      continue
    }
    for (const name of names) {
      if (!BOOKKEEPING_TEMP_NAME.test(name) && !DEAD_LOCK_NAME.test(name)) continue
      const freed = removeStaleTemp(path.join(dir, name), input.now, input.tempMaxAge, input.dryRun, input.root)
      if (freed === undefined) continue
      out.tempFilesRemoved++
      out.freedBytes += freed
    }
  }
  return out
}

/** A file that is not an entry: a temp file old enough that no writer can still own it is
 *  removed (or, on a dry run, counted); anything else is left alone. */
function sweepTemp(
  file: string,
  name: string,
  now: number,
  maxAge: number,
  dryRun: boolean,
  out: { tempFilesRemoved: number; freedBytes: number },
): void {
  if (!TEMP_NAME.test(name)) return
  const freed = removeStaleTemp(file, now, maxAge, dryRun)
  if (freed === undefined) return
  out.tempFilesRemoved++
  out.freedBytes += freed
}

/** Reads every entry's head: removes the expired, the invalidated, the corrupt, what the
 *  filters select, and stale temp files; returns the survivors for the budget plan. Each
 *  removal happens while the judged file is still open (see JudgedFile). */
function scan(input: ScanInput): ScanOutput {
  const out: ScanOutput = {
    scanned: 0,
    expired: 0,
    matched: 0,
    corrupt: 0,
    tempFilesRemoved: 0,
    freedBytes: 0,
    records: new Float64Array(0),
    names: '',
    removedKeys: [],
    entriesRemoved: 0,
    entryBytesRemoved: 0,
    compressedPlain: 0,
    freshPlain: [],
    stopped: false,
  }
  const { now, filters, dryRun } = input
  const stamps = new TagStamps(input.tagsDir, input.held)
  const pattern = filters.pattern === undefined ? undefined : new Glob(filters.pattern)
  const filterTags = filters.tags === undefined ? undefined : new Set(filters.tags)
  const before = (head: EntryHead): boolean => filters.createdBefore === undefined || head.createdAt < filters.createdBefore
  const buffer = headBuffer()
  let records = new Float64Array(1024 * RECORD_FIELDS)
  let count = 0
  const names: string[] = []

  const remove = (entry: JudgedFile, size: number, key: string | undefined): boolean => {
    const freed = dryRun ? size : entry.remove()
    if (freed === undefined) return false
    out.freedBytes += freed
    out.entriesRemoved++
    out.entryBytesRemoved += freed
    if (input.listKeys && key !== undefined) out.removedKeys.push(key)
    return true
  }

  /** Judges one opened entry: removes it, or adds it to the survivors. */
  // A dry run measures what a prune would compress, and writes nothing (tree undefined).
  const plain = input.compressPlain
  const tree = plain === undefined || dryRun ? undefined : new OwnedTree(rootAbove(input.namespaceDir, 2), plain.shared, true)
  /** Whether a survivor is one compress-later left plain (compressed later by a worker). */
  const leftPlain = (head: EntryHead, size: number): boolean =>
    plain !== undefined &&
    (head.compression as Compression) === Compression.None &&
    (head.flags & (FLAG_FRAMED | FLAG_SEALED)) === 0 &&
    size >= plain.from
  /** A settled one compressed now (see compressPlain): its new size and inode. */
  const compressedPlain = (file: string, head: EntryHead, size: number): { size: number; ino: number } | undefined => {
    if (head.createdAt < plain!.lastScan - PLAIN_SETTLED_MS) return undefined
    const rewritten = compressQuietly(tree, file, head.createdAt, plain!)
    if (rewritten === undefined) return undefined
    if (tree !== undefined) out.compressedPlain++
    return { size: size - rewritten.saved, ino: rewritten.ino }
  }

  const judge = (entry: JudgedFile, name: string, file: string): void => {
    let facts
    try {
      // The trailer's grace matters only for an expired entry (store/liveness.ts).
      facts = readHead(entry, buffer, (head) => head.expiresAt !== 0 && head.expiresAt <= now)
    } catch (error) {
      if (!(error instanceof CorruptEntryError)) throw error
      if (!filters.onlyMatching && remove(entry, entry.stat.isFile() ? entry.stat.size : 0, undefined)) out.corrupt++
      return
    }
    const { head, mtimeMs } = facts
    let { size, ino } = facts
    // A file whose key does not hash to its name (swapped, misplaced) is never read: corrupt.
    if (hasher().h64ToString(head.key) !== name) {
      if (!filters.onlyMatching && remove(entry, size, undefined)) out.corrupt++
      return
    }
    const matched =
      (filters.maxAge !== undefined && now - mtimeMs > filters.maxAge) ||
      (filters.olderThan !== undefined && head.createdAt < filters.olderThan) ||
      (filterTags !== undefined && before(head) && head.tags.some((t) => filterTags.has(t))) ||
      (pattern !== undefined && before(head) && pattern.test(head.key))
    // Expired or invalidated: removed, unless its grace still keeps it for getOrSet's
    // stale-if-error (then it stays, a survivor in the budget like any other entry). With
    // onlyMatching, one the filters do not select stays too.
    if (entryState(head, now, stamps, facts.grace ?? 0) === 'dead' && (matched || !filters.onlyMatching)) {
      if (remove(entry, size, head.key)) out.expired++
      return
    }
    if (matched) {
      if (remove(entry, size, head.key)) out.matched++
      return
    }
    if ((count + 1) * RECORD_FIELDS > records.length) {
      const grown = new Float64Array(records.length * 2)
      grown.set(records)
      records = grown
    }
    if (leftPlain(head, size)) {
      if (now - mtimeMs < PLAIN_SETTLED_MS) out.freshPlain.push(count)
      else {
        const compressed = compressedPlain(file, head, size)
        if (compressed !== undefined) ({ size, ino } = compressed)
      }
    }
    const at = count * RECORD_FIELDS
    records[at] = size
    records[at + 1] = mtimeMs
    records[at + 2] = head.createdAt
    records[at + 3] = ino
    names.push(name)
    count++
  }

  partitions: for (const partition of input.partitions) {
    const dir = path.join(input.namespaceDir, partition)
    for (const name of listPartition(dir)) {
      if (stopRequested(input.cancel)) {
        out.stopped = true
        break partitions
      }
      const file = path.join(dir, name)
      if (!ENTRY_NAME.test(name)) {
        if (!filters.onlyMatching) sweepTemp(file, name, now, input.tempMaxAge, dryRun, out)
        continue
      }
      out.scanned++
      const entry = openJudged(file)
      if (entry === undefined) continue
      try {
        judge(entry, name, file)
      } finally {
        entry.close()
      }
    }
  }
  out.records = records.slice(0, count * RECORD_FIELDS)
  out.names = names.join('')
  return out
}

/** compressEntry for a scan's leftovers: what it saved and the new inode, or undefined if the
 *  file was left as it was. A failing disk leaves it plain: the scan's own steps fail next.
 *  Without the cache's RewriteGuard (another process's, or none), so never BUSY. */
function compressQuietly(
  tree: OwnedTree | undefined,
  file: string,
  createdAt: number,
  how: CompressWith,
): { saved: number; ino: number } | undefined {
  try {
    const rewritten = compressEntry(tree, file, createdAt, how)
    return rewritten === BUSY ? undefined : rewritten
  } catch {
    return undefined
  }
}

/** Compresses the fresh plain survivors a prune's budget needs smaller (ScanOutput.freshPlain):
 *  per file, the bytes it shrank by (0: left as it was) and its inode after. */
function compressFresh(input: CompressFreshInput): number[] {
  const tree = input.dryRun ? undefined : new OwnedTree(rootAbove(input.namespaceDir, 2), input.with.shared, true)
  const out: number[] = []
  input.createdAt.forEach((createdAt, i) => {
    const name = input.names.slice(i * 16, i * 16 + 16)
    const rewritten = compressQuietly(tree, path.join(input.namespaceDir, name.slice(0, 2), name), createdAt, input.with)
    out.push(rewritten?.saved ?? 0, rewritten?.ino ?? 0)
  })
  return out
}

function evict(input: EvictInput): EvictOutput {
  const out: EvictOutput = {
    evicted: 0,
    freedBytes: 0,
    kept: 0,
    keptBytes: 0,
    keys: [],
    entriesRemoved: 0,
    entryBytesRemoved: 0,
    stopped: false,
  }
  const buffer = input.listKeys ? headBuffer() : undefined
  const count = input.names.length / 16
  for (let i = 0; i < count; i++) {
    if (stopRequested(input.cancel)) {
      out.stopped = true
      break
    }
    const name = input.names.slice(i * 16, i * 16 + 16)
    const file = path.join(input.namespaceDir, name.slice(0, 2), name)
    const size = input.facts[i * 3]!
    const mtimeMs = input.facts[i * 3 + 1]!
    const ino = input.facts[i * 3 + 2]!
    let key: string | undefined
    if (buffer !== undefined) {
      try {
        key = readEntryHead(file, buffer)?.head.key
      } catch {
        key = undefined
      }
    }
    // Chosen from a scan whose handles are closed: the mtime check (not used or rewritten
    // since) guards what the inode alone cannot.
    const freed = input.dryRun ? size : removeIfSame(file, ino, mtimeMs)
    if (freed === undefined) {
      out.kept++
      out.keptBytes += size
      continue
    }
    out.evicted++
    out.freedBytes += freed
    out.entriesRemoved++
    out.entryBytesRemoved += freed
    if (key !== undefined) out.keys.push(key)
  }
  return out
}

function verify(input: VerifyInput): VerifyOutput {
  const out: VerifyOutput = {
    scanned: 0,
    corrupt: 0,
    tempFilesRemoved: 0,
    freedBytes: 0,
    entries: 0,
    bytes: 0,
    problems: [],
    entriesRemoved: 0,
    entryBytesRemoved: 0,
    stopped: false,
  }
  const buffer = verifyBuffer()
  const stop = (): boolean => stopRequested(input.cancel)
  partitions: for (const partition of input.partitions) {
    const dir = path.join(input.namespaceDir, partition)
    for (const name of listPartition(dir)) {
      if (stop()) {
        out.stopped = true
        break partitions
      }
      const file = path.join(dir, name)
      if (!ENTRY_NAME.test(name)) {
        sweepTemp(file, name, input.now, input.tempMaxAge, !input.repair, out)
        continue
      }
      const entry = openJudged(file)
      if (entry === undefined) continue
      try {
        const ok = verifyEntry(entry, buffer, stop)
        if (ok === undefined) {
          out.stopped = true
          break partitions
        }
        // Whole and checksummed, but another key's entry (swapped, misplaced): never readable.
        // Counted in `scanned` by the catch, as every damaged file is (not also here).
        if (hasher().h64ToString(ok.key) !== name)
          throw new CorruptEntryError('an entry of another key under this name (swapped or misplaced)')
        out.scanned++
        out.entries++
        out.bytes += ok.size
      } catch (error) {
        if (!(error instanceof CorruptEntryError)) throw error
        out.scanned++
        out.corrupt++
        if (out.problems.length < 100) out.problems.push({ file, reason: error.message })
        if (!input.repair) continue
        // Removed while the judged file is still open: never a fresh entry written meanwhile.
        const freed = entry.remove()
        if (freed === undefined) continue
        out.freedBytes += freed
        out.entriesRemoved++
        out.entryBytesRemoved += freed
      } finally {
        entry.close()
      }
    }
  }
  return out
}
