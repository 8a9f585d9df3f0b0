import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { disk } from '../store/disk.js'
import type { Layout } from '../store/layout.js'
import { readSmallFileSync } from '../store/small-file.js'
import { MAX_KEY_BYTES, MAX_TAG_BYTES } from '../options.js'

/**
 * Changes Redis never got from an instance that closed while Redis was away: the deletes
 * waiting as tombstones, the tag stamps waiting to be raised, a clear of Redis owed. Without a
 * record of them, each was lost at close: Redis came back with the values they removed, and
 * every host served them again, this one after its restart too.
 *
 * So close() leaves them in the directory (`meta/redis-owed/<random>.json`, one file per
 * closing instance, written atomically) and the next instance that opens the directory with
 * Redis under the same prefix takes them and sends them as its own missed changes (the files
 * removed once they have reached Redis, or once its own close has left them again): when Redis can be reached, each no newer than what Redis holds by then
 * (a tombstone or a stamp never replaces a newer write), and each followed by its bus message.
 * Until then the other hosts read what Redis held. A set still queued is not recorded: its
 * entry is in the directory, which the outage rule checks against Redis (see bus/).
 */
export interface OwedChanges {
  /** The Redis prefix they were made under: another prefix is another cache's Redis. */
  prefix: string
  /** Deletes: key and the time each was called. */
  tombstones: [key: string, at: number][]
  /** Tag stamps: tag and its time. */
  stamps: [tag: string, at: number][]
  /** A clear of Redis (everything created before this time), if one is owed. */
  clearBefore?: number
}

/** Keys and times, bounded by the queues they came from (10,000 tombstones of keys up to
 *  8 KiB, 10,000 stamps); past this a file is not ours. */
const MAX_FILE_BYTES = 256 * 1024 * 1024

function owedDir(layout: Layout): string {
  return path.join(layout.metaDir, 'redis-owed')
}

/** Writes `owed` for the next instance that opens the directory (throws the disk's failure). */
export function leaveOwed(layout: Layout, owed: OwedChanges): void {
  const file = path.join(owedDir(layout), `${randomBytes(8).toString('hex')}.json`)
  writeFileAtomicSync(layout.tree, file, Buffer.from(JSON.stringify(owed)))
}

/**
 * Reads the owed changes left under `prefix`, with the files they came from: those stay until
 * their changes have reached Redis (`removeOwed`), so an instance killed before it sent them
 * leaves them for the next. A file that does not parse as one is removed (a torn write is
 * impossible: written by rename); files of another prefix stay for an instance of theirs.
 * Never throws: an unreadable directory owes nothing. Two instances opening at once may both
 * send a file's changes: harmless, as none replaces anything newer in Redis.
 */
export function takeOwed(layout: Layout, prefix: string): { owed: OwedChanges[]; files: string[] } {
  const dir = owedDir(layout)
  let names: string[]
  try {
    if (!layout.tree.isRealSync(dir)) return { owed: [], files: [] }
    names = disk.readdirSync(dir).filter((name) => name.endsWith('.json'))
  } catch {
    return { owed: [], files: [] }
  }
  const owed: OwedChanges[] = []
  const files: string[] = []
  for (const name of names) {
    const file = path.join(dir, name)
    const read = readOwed(file)
    if (read === undefined) removeOwed([file])
    else if (read.prefix === prefix) {
      owed.push(read)
      files.push(file)
    }
  }
  return { owed, files }
}

/** Removes owed-changes files whose changes have reached Redis (or been left again in a new
 *  file); one already gone was removed by another instance that sent it too. */
export function removeOwed(files: string[]): void {
  for (const file of files) {
    try {
      disk.unlinkSync(file)
    } catch {
      // gone already, or the disk refuses: sent again by the next instance, harmlessly
    }
  }
}

function readOwed(file: string): OwedChanges | undefined {
  try {
    const text = readSmallFileSync(file, MAX_FILE_BYTES)
    return text === undefined ? undefined : checked(JSON.parse(text))
  } catch {
    return undefined // foreign, unreadable or not JSON: removed, owes nothing
  }
}

/** `value` as owed changes, or undefined when any part of it is not what leaveOwed writes. */
function checked(value: unknown): OwedChanges | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { prefix, tombstones, stamps, clearBefore } = value as Record<string, unknown>
  if (typeof prefix !== 'string' || !pairs(tombstones, MAX_KEY_BYTES) || !pairs(stamps, MAX_TAG_BYTES)) return undefined
  if (clearBefore !== undefined && !isTime(clearBefore)) return undefined
  return { prefix, tombstones, stamps, ...(clearBefore === undefined ? {} : { clearBefore }) }
}

function pairs(value: unknown, maxBytes: number): value is [string, number][] {
  return (
    Array.isArray(value) &&
    value.every(
      (pair) =>
        Array.isArray(pair) &&
        pair.length === 2 &&
        typeof pair[0] === 'string' &&
        Buffer.byteLength(pair[0]) <= maxBytes &&
        isTime(pair[1]),
    )
  )
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0
}
