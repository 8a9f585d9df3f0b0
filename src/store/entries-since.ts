import path from 'node:path'
import { writeFileAtomicSync } from './atomic-write.js'
import { disk } from './disk.js'
import { PARTITION_NAME, type Layout } from './layout.js'
import { readSmallFileSync } from './small-file.js'

/**
 * `meta/since`: a time before which no entry of the namespace was created in this directory,
 * written when a writable instance opens the namespace and finds no partition (so no entry):
 * a new directory, a new namespace, or one nothing was ever written to.
 *
 * What it is for: the tag stamps Redis holds (one per tag ever invalidated anywhere in the
 * fleet; they are never removed) are copied into `tags/` at open, so that every process using
 * the directory, with Redis or without, honours them. A stamp only makes stale the entries
 * created at or before it, so a stamp older than every entry of the directory cannot matter to
 * any of them: the instance holds it in memory for its own reads (of Redis entries, which
 * may be older than the directory) and writes nothing. Without this, a new host opening against
 * a fleet with 200,000 stamps wrote 600,000 files (1.6 GB) before its first read.
 *
 * Entries are created by this host's clock at or after the record (a margin covers a writer
 * that took its time just before another process found the namespace empty), and a stamp is
 * compared with an entry's creation time whichever clock made it, so the rule holds under
 * skew between hosts. One kind of entry can be older than the directory: a value read from
 * Redis and copied into it. It is copied only if no stamp known here makes it stale; a stamp
 * older than the directory that reaches Redis late (held by an instance through an outage) is
 * then honoured by the instances with Redis, not by a process using the directory alone.
 */
const SINCE_MARGIN_MS = 60_000

function sinceFile(layout: Layout): string {
  return path.join(layout.metaDir, 'since')
}

/**
 * The namespace's record, written now if it has none and holds no entry. 0 when nothing is
 * known (a namespace with entries from a version before this record, an unreadable or
 * damaged record, a failing disk): then every stamp is written, as before.
 */
export function recordEntriesSince(layout: Layout, now = Date.now()): number {
  const recorded = readEntriesSince(layout, now)
  if (recorded !== undefined) return recorded
  try {
    if (disk.readdirSync(layout.namespaceDir).some((name) => PARTITION_NAME.test(name))) return 0
    const since = now - SINCE_MARGIN_MS
    writeFileAtomicSync(layout.tree, sinceFile(layout), Buffer.from(`${since}\n`))
    return since
  } catch {
    return 0 // a failing disk: nothing known, every stamp written (when the disk takes them)
  }
}

/** The recorded time, 0 when there is none: a read-only instance's view (it writes nothing). */
export function recordedEntriesSince(layout: Layout): number {
  return readEntriesSince(layout, Date.now()) ?? 0
}

/** The recorded time, or undefined when there is none or it cannot be trusted (unreadable,
 *  not a number, later than now: a clock gone backwards, or damage). */
function readEntriesSince(layout: Layout, now: number): number | undefined {
  let text: string | undefined
  try {
    text = readSmallFileSync(sinceFile(layout))
  } catch {
    return undefined
  }
  if (text === undefined) return undefined
  const since = Number(text.trim())
  return Number.isSafeInteger(since) && since > 0 && since <= now ? since : undefined
}
