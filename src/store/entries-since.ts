import path from 'node:path'
import { writeFileAtomicSync } from './atomic-write.js'
import { disk } from './disk.js'
import { PARTITION_NAME, type Layout } from './layout.js'
import { readSmallFileSync } from './small-file.js'

/**
 * `meta/since`: a time before which no entry of the namespace was created in this directory.
 * A writable instance that opens a namespace holding no partition (so no entry: a new
 * directory, a new namespace, one nothing was ever written to) records its clock's now, less a
 * margin; every writable instance that opens it later lowers the record to its own clock's
 * now, less the margin, if it is above that. Entries are made by the clocks of the processes
 * writing the directory, after they opened it, so the record stays at or below every entry's
 * creation time whatever those clocks say: one ahead of the others (two hosts sharing a
 * directory over NFS), or stepped back after a first open (a host that booted before its clock
 * was synced).
 *
 * What it is for: the tag stamps Redis holds (one per tag invalidated anywhere in the
 * fleet, up to 100,000: facade/tag-invalidation.ts) are copied into `tags/` when an instance opens, and again
 * after an outage, so that every process using the directory, with Redis or without, honours
 * them. A stamp only makes stale the entries created at or before it, so one older than every
 * entry of the directory matters to none of them: the instance holds it in memory for its own
 * reads (of Redis entries, which may be older than the directory) and writes nothing. Without
 * this, a new host joining a fleet with 200,000 stamps wrote 600,000 files (1.6 GB) before its
 * first read. Invalidations heard on the bus are written whatever their time.
 *
 * One kind of entry can be older than the directory: a value read from Redis and copied into
 * it, which is copied only if no stamp known here makes it stale. A stamp older than the
 * directory that reaches Redis late (held by an instance through an outage) and only by a read
 * of the stamps is then honoured by the instances with Redis, not by a process using the
 * directory alone.
 */
const SINCE_MARGIN_MS = 60_000

function sinceFile(layout: Layout): string {
  return path.join(layout.metaDir, 'since')
}

/**
 * A writable instance's open: the namespace's record, made (no entry yet) or lowered to this
 * clock's now less the margin, as the rule above says. 0 when nothing is known (a namespace with
 * entries and no readable record, from a version before it; a failing disk): then every stamp
 * is written, as before.
 */
export function recordEntriesSince(layout: Layout, now = Date.now()): number {
  const floor = now - SINCE_MARGIN_MS
  for (let attempt = 0; attempt < 3; attempt++) {
    const recorded = readEntriesSince(layout)
    if (recorded !== undefined && recorded <= floor) return recorded
    try {
      if (recorded === undefined && disk.readdirSync(layout.namespaceDir).some((name) => PARTITION_NAME.test(name))) return 0
      writeFileAtomicSync(layout.tree, sinceFile(layout), Buffer.from(`${floor}\n`))
    } catch {
      return 0 // a failing disk: nothing known, every stamp written (when the disk takes them)
    }
    // Read again: another opener may have written a higher one at the same moment.
  }
  return 0
}

/** The record as it stands now, 0 when there is none or it cannot be read: what an instance
 *  takes before it judges the stamps it reads (another instance may have lowered it since). */
export function recordedEntriesSince(layout: Layout): number {
  return readEntriesSince(layout) ?? 0
}

/** The recorded time, or undefined when there is none or it is unreadable or not a time. */
function readEntriesSince(layout: Layout): number | undefined {
  let text: string | undefined
  try {
    text = readSmallFileSync(sinceFile(layout))
  } catch {
    return undefined
  }
  if (text === undefined) return undefined
  const since = Number(text.trim())
  return Number.isSafeInteger(since) && since > 0 ? since : undefined
}
