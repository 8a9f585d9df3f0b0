import fs from 'node:fs'
import path from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { rootAbove } from '../store/layout.js'
import { chainIsReal, OwnedTree, sharingOf } from '../store/owned-tree.js'
import { READ_FLAGS } from '../store/disk.js'
import { LOG_ROTATE_BYTES } from './hit-log.js'

/**
 * Reading and compacting the LFU hit logs that `HitLog` appends to (see hit-log.ts for the
 * scheme). Runs in a worker.
 *
 * A log is lines `<hash16> <count>`, each group of them after a line `@<ms>` saying when they
 * were counted (a log without one was counted at its mtime). A count weighs
 * `2^-(age / halfLife)`: popularity fades with elapsed time, at the same pace however often
 * prunes run. Compaction writes the decayed sums as of now, so the merged log keeps what an
 * entry's past is worth today.
 *
 * The hits directory is `<dir>/v1/<ns>/meta/hits`; nothing is read, renamed or written unless
 * every directory down to it is a real one (never through a planted link), and a log is read
 * only if it is a regular file.
 */
const LOG_NAME = /\.log$/
const COMPACTING = '.compacting'
/** A log holds one line (about 24 bytes) per entry hit in each second a process flushed;
 *  a process starts a new one past LOG_ROTATE_BYTES (hit-log.ts), and compaction writes its
 *  merged counts in files of at most that much too. So no genuine log comes near 64 MiB, and a
 *  larger file at a log's name is foreign (planted, or damaged: a sparse file of terabytes
 *  costs no disk): not read, and removed by compaction. */
const LOG_LIMIT = 64 * 1024 * 1024
/** A log is read this much at a time, so a large one never sits in memory whole. */
const LOG_BLOCK = 1024 * 1024
/** Below this a count is forgotten at compaction (64 hits take 13 half-lives to get there). */
const FORGOTTEN = 0.01

function isRealHitsDir(dir: string): boolean {
  return chainIsReal(rootAbove(dir, 4), dir)
}

function logFiles(dir: string): string[] {
  if (!isRealHitsDir(dir)) return []
  try {
    return fs.readdirSync(dir).filter((name) => LOG_NAME.test(name) || name.endsWith(COMPACTING))
  } catch {
    return []
  }
}

/** Adds a log's counts, each weighed by its age at `now`, from lines counted at `countedAt`
 *  until a line says otherwise. Returns when the last of them were counted (the next block
 *  of the log goes on from there). */
function addLines(text: string, countedAt: number, now: number, halfLife: number, into: Map<string, number>): number {
  let weight = decay(now - countedAt, halfLife)
  for (const line of text.split('\n')) {
    if (line.startsWith('@')) {
      const at = Number(line.slice(1))
      if (Number.isFinite(at)) {
        countedAt = at
        weight = decay(now - at, halfLife)
      }
      continue
    }
    const space = line.indexOf(' ')
    if (space !== 16) continue // a torn or foreign line
    const count = Number(line.slice(17))
    if (!Number.isFinite(count) || count <= 0) continue
    const hash = line.slice(0, 16)
    into.set(hash, (into.get(hash) ?? 0) + count * weight)
  }
  return countedAt
}

function decay(age: number, halfLife: number): number {
  return halfLife > 0 ? 2 ** (-Math.max(0, age) / halfLife) : 1
}

/** Adds a log's decayed counts; throws for anything but a regular file of at most LOG_LIMIT
 *  bytes (a link, a FIFO, a huge or sparse file planted at the name). Read a block at a time,
 *  never whole: the worker runs in the host process. */
function readLog(file: string, now: number, halfLife: number, into: Map<string, number>): void {
  const fd = fs.openSync(file, READ_FLAGS)
  try {
    const stat = fs.fstatSync(fd)
    if (!stat.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EINVAL' })
    if (stat.size > LOG_LIMIT)
      throw Object.assign(new Error(`${file} holds ${stat.size} bytes, more than a hit log ever does`), { code: 'EINVAL' })
    const block = Buffer.allocUnsafe(LOG_BLOCK)
    let countedAt = stat.mtimeMs
    let rest = ''
    for (let at = 0; at < stat.size;) {
      const n = fs.readSync(fd, block, 0, Math.min(LOG_BLOCK, stat.size - at), at)
      if (n === 0) break
      at += n
      const text = rest + block.toString('utf8', 0, n)
      const lastLine = text.lastIndexOf('\n') + 1
      countedAt = addLines(text.slice(0, lastLine), countedAt, now, halfLife, into)
      rest = text.slice(lastLine)
    }
    addLines(rest, countedAt, now, halfLife, into)
  } finally {
    fs.closeSync(fd)
  }
}

/** Sums every process's hit counts, by entry file name, as worth at `now`. */
export function readHitCounts(dir: string, now: number, halfLife: number): Map<string, number> {
  const counts = new Map<string, number>()
  for (const name of logFiles(dir)) {
    try {
      readLog(path.join(dir, name), now, halfLife, counts)
    } catch {
      // removed meanwhile, or not a log
    }
  }
  return counts
}

/**
 * Folds every log into one (one per `fileBytes` of counts: LOG_ROTATE_BYTES, so that no merged
 * log nears LOG_LIMIT), with each count decayed to `now` (and dropping entries that no longer
 * exist: `names`, the survivors, 16 characters each; undefined, without a scan to say which:
 * every entry's kept, until a prune's compaction or its decay drops it). Each log is renamed
 * aside before it is read, so a writer's next append starts a new file instead of being lost.
 * Returns the number of logs folded.
 */
export function compactHitLogs(
  dir: string,
  names: string | undefined,
  now: number,
  halfLife: number,
  fileBytes = LOG_ROTATE_BYTES,
): number {
  let alive: Set<string> | undefined
  if (names !== undefined) {
    alive = new Set<string>()
    for (let i = 0; i < names.length; i += 16) alive.add(names.slice(i, i + 16))
  }
  const counts = new Map<string, number>()
  const folded: string[] = []
  for (const name of logFiles(dir)) {
    // Looked at again before each rename: reading a log (up to 64 MiB) takes a while, and
    // through a link put in place of the directory meanwhile the renames (and the removals
    // below) would be made outside the cache. The logs left are folded by the next prune.
    if (!isRealHitsDir(dir)) break
    const from = path.join(dir, name)
    const aside = name.endsWith(COMPACTING) ? from : `${from}.${process.pid}${COMPACTING}`
    try {
      if (aside !== from) fs.renameSync(from, aside)
      folded.push(aside)
      readLog(aside, now, halfLife, counts)
    } catch {
      // another compaction took it, or it was not a log (removed below all the same)
    }
  }
  const stamp = Date.now().toString(36)
  let tree: OwnedTree | undefined
  let text = ''
  let parts = 0
  const write = (): void => {
    // Files take the mode the directory was made with (owner-only unless the cache is shared);
    // asked only once there is something to write (a cache never hit may have no such
    // directory). A root the opening thread had: its parents are never made here (OwnedTree).
    tree ??= new OwnedTree(rootAbove(dir, 4), sharingOf(fs.statSync(dir).mode), true)
    writeFileAtomicSync(tree, path.join(dir, `merged.${process.pid}.${stamp}.${parts++}.log`), Buffer.from(`@${now}\n` + text))
    text = ''
  }
  for (const [hash, count] of counts) {
    if (count < FORGOTTEN || (alive !== undefined && !alive.has(hash))) continue
    text += `${hash} ${Number(count.toPrecision(4))}
`
    if (text.length >= fileBytes) write() // every file well under LOG_LIMIT, however many entries
  }
  if (text !== '') write()
  // Recursive: a directory planted at a log's name was renamed aside with the logs, and
  // failing on it would fail every prune (rm never follows a link, inside or at the name).
  if (isRealHitsDir(dir)) for (const file of folded) fs.rmSync(file, { recursive: true, force: true })
  return folded.length
}
