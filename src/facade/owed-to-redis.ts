import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { disk } from '../store/disk.js'
import type { Layout } from '../store/layout.js'
import { readSmallFileSync } from '../store/small-file.js'
import { MAX_KEY_BYTES, MAX_TAG_BYTES } from '../options.js'
import type { TierStack } from '../tiers/tier-stack.js'
import type { WriteBackQueue } from '../tiers/write-back.js'
import type { Failures } from './failures.js'
import type { TagInvalidation } from './tag-invalidation.js'

/**
 * Changes Redis never got from an instance that closed while Redis was away: the deletes
 * waiting as tombstones, the tag stamps waiting to be raised, a clear of Redis owed. Without a
 * record of them, each was lost at close: Redis came back with the values they removed, and
 * every host served them again, this one after its restart too.
 *
 * So close() leaves them in the directory (`meta/redis-owed/<random>.json`, one file per
 * closing instance, written atomically; a running instance keeps one too, recordSoon, so a
 * crash leaves them as well) and the next instance that opens the directory with
 * Redis under the same prefix and client keyPrefix takes them and sends them as its own missed changes (the files
 * removed once they have reached Redis, or once its own close has left them again): when Redis can be reached, each no newer than what Redis holds by then
 * (a tombstone or a stamp never replaces a newer write), and each followed by its bus message.
 * Until then the other hosts read what Redis held. A set Redis missed is recorded as a delete
 * of the value it replaced (its own value is lost: the outage rule removes its copy in the
 * directory, Redis holding no such version; see bus/), so no host serves that value again; a
 * set write-back queued is not recorded (what a crash loses with write-back).
 */
export interface OwedChanges {
  /** The Redis prefix they were made under: another prefix is another cache's Redis. */
  prefix: string
  /** The ioredis `keyPrefix` of the client they were made through (a caller's client may have
   *  one: ioredis puts it before every key), '' for none; absent in the records of versions
   *  before it was kept, which are taken as ''. Another keyPrefix is another keyspace: sent
   *  there, a delete removed another cache's value, a clear owed emptied that cache, and the
   *  keyspace they were owed to never got them. */
  keyPrefix?: string
  /** Deletes: key and the time each was called; an overwrite Redis missed, as a delete of the
   *  value it replaced, just after the overwrite's creation (WriteBackQueue.owedRemovals). */
  tombstones: [key: string, at: number][]
  /** Tag stamps: tag and its time. */
  stamps: [tag: string, at: number][]
  /** A clear of Redis (everything created before this time), if one is owed. */
  clearBefore?: number
}

/** Keys and times, bounded by the queues they came from (10,000 tombstones of keys up to
 *  8 KiB, 10,000 stamps); past this a file is not ours. */
const MAX_FILE_BYTES = 256 * 1024 * 1024

/** Writes `owed` for the next instance that opens the directory (throws the disk's failure);
 *  the file written. */
export function leaveOwed(layout: Layout, owed: OwedChanges): string {
  const file = path.join(layout.redisOwedDir, `${randomBytes(8).toString('hex')}.json`)
  writeFileAtomicSync(layout.tree, file, Buffer.from(JSON.stringify(owed)))
  return file
}

/**
 * Reads the owed changes left under `prefix`, with the files they came from: those stay until
 * their changes have reached Redis (`removeOwed`), so an instance killed before it sent them
 * leaves them for the next. A file that does not parse as one is removed (a torn write is
 * impossible: written by rename); files of another prefix or keyPrefix stay for an instance of
 * theirs.
 * Never throws: an unreadable directory owes nothing. Two instances opening at once may both
 * send a file's changes: harmless, as none replaces anything newer in Redis.
 */
export function takeOwed(layout: Layout, prefix: string, keyPrefix: string): { owed: OwedChanges[]; files: string[] } {
  const dir = layout.redisOwedDir
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
    if (read === undefined) removeOwed(layout, [file])
    else if (read.prefix === prefix && (read.keyPrefix ?? '') === keyPrefix) {
      owed.push(read)
      files.push(file)
    }
  }
  return { owed, files }
}

/** Removes owed-changes files whose changes have reached Redis (or been left again in a new
 *  file); one already gone was removed by another instance that sent it too. Not through a
 *  link planted in place of the directory since they were taken (the sends may wait for as
 *  long as Redis is away): by path, the unlinks would remove files outside the cache named
 *  like them; the files stay, sent again (harmlessly) by the next instance. */
export function removeOwed(layout: Layout, files: string[]): void {
  if (files.length === 0) return
  try {
    if (!layout.tree.isRealSync(layout.redisOwedDir)) return
  } catch {
    return // the disk refuses: sent again by the next instance
  }
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
  const { prefix, keyPrefix, tombstones, stamps, clearBefore } = value as Record<string, unknown>
  if (typeof prefix !== 'string' || (keyPrefix !== undefined && typeof keyPrefix !== 'string')) return undefined
  if (!pairs(tombstones, MAX_KEY_BYTES) || !pairs(stamps, MAX_TAG_BYTES)) return undefined
  if (clearBefore !== undefined && !isTime(clearBefore)) return undefined
  return { prefix, keyPrefix: keyPrefix ?? '', tombstones, stamps, ...(clearBefore === undefined ? {} : { clearBefore }) }
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

/** How often the owed changes taken at open are looked at again until they are sent. */
const RETRY_MS = 1000
/** How soon a change Redis missed is recorded in the directory (see recordSoon): what a crash
 *  can lose of them, at most. */
const RECORD_MS = 100

export interface OwedParts {
  /** The directory's layout; undefined without one (or read-only: nothing is left or taken). */
  layout: Layout | undefined
  prefix: string
  /** The command client's ioredis keyPrefix ('' for none). */
  keyPrefix: string
  writeBack: WriteBackQueue
  tags: TagInvalidation
  stack: TierStack
  failures: Failures
  /** Runs a bookkeeping write on the disk (counted by the breaker; throws when refused). */
  bookkeeping: (write: () => void) => void
}

/**
 * One instance's side of the hand-off (see the top of this file): what it takes at open and
 * sends, the files it removes once sent, and what it leaves at close.
 */
export class OwedToRedis {
  readonly #p: OwedParts
  /** Files taken at open whose changes this instance has not yet seen sent. */
  readonly #files: string[] = []
  #settling = false
  /** This instance's record of what Redis misses while it runs (recordSoon), and its text. */
  #mine: string | undefined
  #recorded = ''
  #recording: NodeJS.Timeout | undefined

  constructor(parts: OwedParts) {
    this.#p = parts
  }

  /** At open: what earlier instances left, queued to be sent as this instance's own missed
   *  changes, when Redis can be reached. */
  take(): void {
    const { layout, prefix, keyPrefix, writeBack, tags, stack } = this.#p
    if (layout === undefined) return
    const { owed: taken, files } = takeOwed(layout, prefix, keyPrefix)
    this.#files.push(...files)
    for (const owed of taken) {
      for (const [key, at] of owed.tombstones) {
        if (writeBack.queuedAt(key) === undefined) writeBack.enqueue(key, { bytes: undefined, createdAt: at, expiresAt: 0, grace: 0 })
      }
      const byTime = new Map<number, string[]>()
      for (const [tag, at] of owed.stamps) {
        const same = byTime.get(at)
        if (same === undefined) byTime.set(at, [tag])
        else same.push(tag)
      }
      for (const [at, same] of byTime) void tags.invalidate(same, at).catch(() => {})
      if (owed.clearBefore !== undefined) stack.oweRedisClear(owed.clearBefore)
    }
    writeBack.resume()
    void stack.sendMissedClear()
    void this.settle()
  }

  /** Removes the files taken at open once what they owed has reached Redis (everything queued
   *  sent, no stamp and no clear left to send); asked again at Redis's return and every
   *  RETRY_MS until then, or until close leaves them again. */
  async settle(): Promise<void> {
    const { layout, writeBack, tags, stack } = this.#p
    if (this.#files.length === 0 || this.#settling || layout === undefined) return
    this.#settling = true
    try {
      const sent = await writeBack.flush()
      await tags.sendPending()
      await stack.sendMissedClear()
      if (sent && tags.pending === 0 && stack.owedRedisClear() === undefined) removeOwed(layout, this.#files.splice(0))
    } finally {
      this.#settling = false
    }
    if (this.#files.length > 0) setTimeout(() => void this.settle(), RETRY_MS).unref()
  }

  /**
   * A change Redis missed was queued: what Redis misses is recorded in the directory within
   * RECORD_MS, as close() leaves it, and kept current (every RETRY_MS) until nothing is owed,
   * when the record goes. Left only at close, it was lost with a process killed (SIGKILL, a
   * crash) before Redis came back: the keys it deleted then came back on every host.
   */
  recordSoon(delay = RECORD_MS): void {
    if (this.#p.layout === undefined || this.#recording !== undefined) return
    this.#recording = setTimeout(() => {
      this.#recording = undefined
      this.#record()
    }, delay)
    this.#recording.unref()
  }

  #record(): void {
    const { layout, bookkeeping } = this.#p
    const owed = this.#owed()
    const text = JSON.stringify(owed)
    try {
      if (owed.count === 0) removeOwed(layout!, this.#mine === undefined ? [] : [this.#mine])
      else if (text !== this.#recorded && !layout!.namespaceGone()) {
        const before = this.#mine
        bookkeeping(() => (this.#mine = leaveOwed(layout!, owed.changes)))
        if (before !== undefined) removeOwed(layout!, [before])
      }
    } catch {
      // the disk refuses: tried again below, and close() leaves them in any case
    }
    if (owed.count === 0) this.#mine = undefined
    else this.recordSoon(RETRY_MS)
    this.#recorded = owed.count === 0 ? '' : text
  }

  /** What Redis still misses, and how many changes that is. */
  #owed(): { changes: OwedChanges; count: number; sets: number } {
    const { prefix, keyPrefix, writeBack, tags, stack } = this.#p
    const { removals, sets } = writeBack.owedRemovals()
    const changes = {
      prefix,
      keyPrefix,
      tombstones: removals,
      stamps: tags.pendingStamps(),
      clearBefore: stack.owedRedisClear(),
    }
    return { changes, count: changes.tombstones.length + changes.stamps.length + (changes.clearBefore === undefined ? 0 : 1), sets }
  }

  /** At close: what Redis still misses (deletes, tag stamps, a clear) left in the directory for
   *  the next instance; without one (or a disk that refuses it, or a directory removed
   *  meanwhile, which the write would make again) it is lost, and counted as dropped. */
  leave(): void {
    const { layout, failures, bookkeeping } = this.#p
    const { changes: owed, count, sets } = this.#owed()
    clearTimeout(this.#recording)
    this.#recording = undefined
    // This instance's own record goes as the files it took do: sent, or in the new file.
    const taken = [...this.#files.splice(0), ...(this.#mine === undefined ? [] : [this.#mine])]
    this.#mine = undefined
    if (count === 0) {
      if (layout !== undefined) removeOwed(layout, taken) // what they owed was sent
      return
    }
    try {
      if (layout === undefined || layout.namespaceGone()) throw new Error('no directory to leave them in')
      bookkeeping(() => leaveOwed(layout, owed))
      removeOwed(layout, taken) // what they owed and was not sent is in the new file
    } catch {
      failures.dropped('redis', count - sets) // the sets' values close() counted as dropped already
    }
  }
}
