import path from 'node:path'
import { hasher } from '../format/checksum.js'
import { CorruptEntryError, FLAG_FRAMED, type EntryHead } from '../format/entry-format.js'
import { ENTRY_NAME } from '../store/layout.js'
import { entryState } from '../store/liveness.js'
import { Glob } from './glob.js'
import { headBuffer, listPartition, readEntryHead, TagStamps, type EntryFacts } from './entry-scan.js'
import type { HeldStamps } from '../store/tag-clock.js'
import { HeardRemovals, type HeardSnapshot } from '../tiers/heard-removals.js'

/**
 * Read-only walks for operators (`larder ls`, `larder stats`), run in worker threads like
 * every other scan. They read each entry's head and trailer, never its payload, and remove
 * nothing: an expired or damaged file is counted (usage) or skipped (listing) and left for
 * the next prune or read to deal with.
 */

/** What a listing knows of one entry, without reading its value. */
export interface EntryInfo {
  key: string
  /** Bytes on disk (the entry file). */
  size: number
  /** Bytes of the serialized value before compression. */
  logicalSize: number
  /** When it was written (ms since the epoch). */
  createdAt: number
  /** When it was last read or written, as the LRU policy sees it (the file's mtime). */
  usedAt: number
  /** When it expires (ms since the epoch); null if never. */
  expiresAt: number | null
  tags: string[]
  /** How the value became bytes: 'json', 'v8', 'msgpack', 'bytes', 'text', 'custom', or 'stream' (setStream). */
  codec: CodecName
  compression: 'none' | 'gzip' | 'deflate' | 'brotli' | 'zstd' | 'unknown'
  /** Written by setStream in frames. */
  framed: boolean
}

export type CodecName = 'bytes' | 'text' | 'json' | 'v8' | 'msgpack' | 'custom' | 'stream' | 'unknown'

const CODEC_NAMES: readonly CodecName[] = ['bytes', 'text', 'json', 'v8', 'msgpack', 'custom', 'stream']
const COMPRESSION_NAMES = ['none', 'gzip', 'deflate', 'brotli', 'zstd'] as const

export interface ListFilters {
  /** Keys starting with this. */
  prefix?: string
  /** Keys matching this glob. */
  pattern?: string
  /** Entries carrying any of these tags. */
  tags?: string[]
}

/** What the reads of the instance asking count beyond the directory: a read-only instance's
 *  removals heard from other instances (tiers/heard-removals.ts) and the tag stamps it holds
 *  in memory (TagClock.heldStamps), which it may not write there. A walk counts them too, so
 *  what it lists agrees with what that instance's `get` answers. */
export interface HeldByReader {
  removals?: HeardSnapshot
  tags?: HeldStamps
}

interface WalkInput {
  namespaceDir: string
  tagsDir: string
  partitions: string[]
  now: number
  held?: HeldByReader
}

export interface ListInput extends WalkInput {
  task: 'list'
  filters: ListFilters
}

export interface UsageInput extends WalkInput {
  task: 'usage'
  /** Upper bounds (ms of age) of the age buckets; one more bucket holds everything older. */
  ageBounds: number[]
}

export interface UsageOutput {
  entries: number
  storedBytes: number
  logicalBytes: number
  /** Entries that are not live (past their expiry or tag invalidation; on a read-only
   *  instance, also older than a removal it heard), still on disk until a prune (or, for one
   *  kept for its grace, until a prune after the grace). */
  expired: number
  expiredBytes: number
  /** Files under entry names that are not valid entries. */
  corrupt: number
  oldestCreatedAt: number | null
  newestCreatedAt: number | null
  /** Per age bucket (by createdAt): entries and bytes. */
  byAge: { entries: number; bytes: number }[]
}

/** Calls `visit` for every readable entry of the partitions (with its trailer facts), and
 *  `damaged` for every file under an entry name that is not one. */
function walk(input: WalkInput, visit: (facts: EntryFacts & { logicalLength: number }, stale: boolean) => void, damaged: () => void): void {
  const stamps = new TagStamps(input.tagsDir, input.held?.tags)
  const removals = input.held?.removals === undefined ? undefined : HeardRemovals.from(input.held.removals)
  const buffer = headBuffer()
  for (const partition of input.partitions) {
    const dir = path.join(input.namespaceDir, partition)
    for (const name of listPartition(dir)) {
      if (!ENTRY_NAME.test(name)) continue
      let facts: EntryFacts | undefined
      try {
        facts = readEntryHead(path.join(dir, name), buffer, true)
      } catch (error) {
        if (!(error instanceof CorruptEntryError)) throw error
        damaged()
        continue
      }
      if (facts === undefined) continue
      if (hasher().h64ToString(facts.head.key) !== name) {
        damaged()
        continue
      }
      const stale = entryState(facts.head, input.now, stamps) !== 'live' || removals?.hides(facts.head.key, facts.head.createdAt) === true
      visit(facts as EntryFacts & { logicalLength: number }, stale)
    }
  }
}

/** An entry's description from its head, file size, trailer length and mtime. */
export function toEntryInfo(head: EntryHead, size: number, logicalLength: number, mtimeMs: number): EntryInfo {
  return {
    key: head.key,
    size,
    logicalSize: logicalLength,
    createdAt: head.createdAt,
    usedAt: mtimeMs,
    expiresAt: head.expiresAt === 0 ? null : head.expiresAt,
    tags: [...head.tags],
    codec: CODEC_NAMES[head.codec] ?? 'unknown',
    compression: COMPRESSION_NAMES[head.compression] ?? 'unknown',
    framed: (head.flags & FLAG_FRAMED) !== 0,
  }
}

/** The live entries of some partitions that match the filters. */
export function listEntries(input: ListInput): EntryInfo[] {
  const { prefix, pattern, tags } = input.filters
  const glob = pattern === undefined ? undefined : new Glob(pattern)
  const wanted = tags === undefined ? undefined : new Set(tags)
  const out: EntryInfo[] = []
  walk(
    input,
    ({ head, size, mtimeMs, logicalLength }, stale) => {
      if (stale) return
      if (prefix !== undefined && !head.key.startsWith(prefix)) return
      if (glob !== undefined && !glob.test(head.key)) return
      if (wanted !== undefined && !head.tags.some((t) => wanted.has(t))) return
      out.push(toEntryInfo(head, size, logicalLength, mtimeMs))
    },
    () => {},
  )
  return out
}

function emptyUsage(buckets: number): UsageOutput {
  return {
    entries: 0,
    storedBytes: 0,
    logicalBytes: 0,
    expired: 0,
    expiredBytes: 0,
    corrupt: 0,
    oldestCreatedAt: null,
    newestCreatedAt: null,
    byAge: Array.from({ length: buckets }, () => ({ entries: 0, bytes: 0 })),
  }
}

/** Counts and sizes of some partitions, by age. */
export function usage(input: UsageInput): UsageOutput {
  const out = emptyUsage(input.ageBounds.length + 1)
  walk(
    input,
    ({ head, size, logicalLength }, stale) => {
      if (stale) {
        out.expired++
        out.expiredBytes += size
        return
      }
      out.entries++
      out.storedBytes += size
      out.logicalBytes += logicalLength
      if (out.oldestCreatedAt === null || head.createdAt < out.oldestCreatedAt) out.oldestCreatedAt = head.createdAt
      if (out.newestCreatedAt === null || head.createdAt > out.newestCreatedAt) out.newestCreatedAt = head.createdAt
      const age = input.now - head.createdAt
      let bucket = input.ageBounds.findIndex((bound) => age < bound)
      if (bucket === -1) bucket = input.ageBounds.length
      out.byAge[bucket]!.entries++
      out.byAge[bucket]!.bytes += size
    },
    () => out.corrupt++,
  )
  return out
}

/** Sums the usage of several batches. */
export function mergeUsage(parts: readonly UsageOutput[], buckets: number): UsageOutput {
  const total = emptyUsage(buckets)
  for (const p of parts) {
    total.entries += p.entries
    total.storedBytes += p.storedBytes
    total.logicalBytes += p.logicalBytes
    total.expired += p.expired
    total.expiredBytes += p.expiredBytes
    total.corrupt += p.corrupt
    if (p.oldestCreatedAt !== null && (total.oldestCreatedAt === null || p.oldestCreatedAt < total.oldestCreatedAt))
      total.oldestCreatedAt = p.oldestCreatedAt
    if (p.newestCreatedAt !== null && (total.newestCreatedAt === null || p.newestCreatedAt > total.newestCreatedAt))
      total.newestCreatedAt = p.newestCreatedAt
    p.byAge.forEach((b, i) => {
      total.byAge[i]!.entries += b.entries
      total.byAge[i]!.bytes += b.bytes
    })
  }
  return total
}
