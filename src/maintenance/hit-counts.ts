import fs from 'node:fs'
import path from 'node:path'
import { writeFileAtomicSync } from '../store/atomic-write.js'
import { rootAbove } from '../store/layout.js'
import { chainIsReal, OwnedTree, sharingOf } from '../store/owned-tree.js'

/**
 * Reading and compacting the LFU hit logs that `HitLog` appends to (see hit-log.ts for the
 * scheme). Runs in a worker. The hits directory is `<dir>/v1/<ns>/meta/hits`; nothing is
 * read, renamed or written unless every directory down to it is a real one (never through a
 * planted link), and a log is read only if it is a regular file.
 */
const LOG_NAME = /\.log$/
const COMPACTING = '.compacting'
const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK

function isRealHitsDir(dir: string): boolean {
  return chainIsReal(rootAbove(dir, 4), dir)
}

/** A log's text; throws for anything but a regular file (a link, a FIFO planted at the name). */
function readLog(file: string): string {
  const fd = fs.openSync(file, READ_FLAGS)
  try {
    if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EINVAL' })
    return fs.readFileSync(fd, 'utf8')
  } finally {
    fs.closeSync(fd)
  }
}

function logFiles(dir: string): string[] {
  if (!isRealHitsDir(dir)) return []
  try {
    return fs.readdirSync(dir).filter((name) => LOG_NAME.test(name) || name.endsWith(COMPACTING))
  } catch {
    return []
  }
}

function addLines(text: string, into: Map<string, number>): void {
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ')
    if (space !== 16) continue // a torn or foreign line
    const count = Number(line.slice(17))
    if (!Number.isSafeInteger(count) || count <= 0) continue
    const hash = line.slice(0, 16)
    into.set(hash, (into.get(hash) ?? 0) + count)
  }
}

/** Sums every process's hit counts, by entry file name. */
export function readHitCounts(dir: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const name of logFiles(dir)) {
    try {
      addLines(readLog(path.join(dir, name)), counts)
    } catch {
      // removed meanwhile
    }
  }
  return counts
}

/**
 * Folds every log into one, halving each count (aging) and dropping entries that no longer
 * exist (`names`: the survivors, 16 characters each). Each log is renamed aside before it is
 * read, so a writer's next append starts a new file instead of being lost. Returns the
 * number of logs folded.
 */
export function compactHitLogs(dir: string, names: string): number {
  const alive = new Set<string>()
  for (let i = 0; i < names.length; i += 16) alive.add(names.slice(i, i + 16))
  const counts = new Map<string, number>()
  const folded: string[] = []
  for (const name of logFiles(dir)) {
    const from = path.join(dir, name)
    const aside = name.endsWith(COMPACTING) ? from : `${from}.${process.pid}${COMPACTING}`
    try {
      if (aside !== from) fs.renameSync(from, aside)
      folded.push(aside)
      addLines(readLog(aside), counts)
    } catch {
      // another compaction took it
    }
  }
  let text = ''
  for (const [hash, count] of counts) {
    const halved = Math.floor(count / 2)
    if (halved > 0 && alive.has(hash)) text += `${hash} ${halved}\n`
  }
  if (text !== '') {
    // Files take the mode the directory was made with (owner-only unless the cache is shared).
    const tree = new OwnedTree(rootAbove(dir, 4), sharingOf(fs.statSync(dir).mode))
    writeFileAtomicSync(tree, path.join(dir, `merged.${process.pid}.${Date.now().toString(36)}.log`), Buffer.from(text))
  }
  for (const file of folded) fs.rmSync(file, { force: true })
  return folded.length
}
