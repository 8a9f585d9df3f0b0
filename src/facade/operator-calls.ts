import { LarderError } from '../errors.js'
import { Glob } from '../maintenance/glob.js'
import type { TierEntry } from '../tiers/tier.js'
import type { ActivityReport } from '../stats/activity-log.js'
import type { EntryInfo, ListFilters } from '../maintenance/listing.js'
import { emptyPruneReport } from '../maintenance/maintainer.js'
import type { Maintainer, PruneReport, UsageReport, VerifyOptions, VerifyReport, WalkOptions } from '../maintenance/maintainer.js'
import type { ValidPruneOptions } from '../validate.js'
import type { CacheParts } from './cache-parts.js'

// The operator's and introspection calls (prune, verify, activity, info, entries, usage) once
// Larder has validated their arguments. Each reports a failure as ERR_UNAVAILABLE whatever
// failOpen says (Failures.operation), except info, which reads like get: a failing disk is a
// miss unless failOpen is false. (rekey has its own file: facade/rekey.ts.)

/** prune(): the directory in the maintenance workers; with `redis` and a `pattern` (not a dry
 *  run), then the matching keys in Redis (`sharedRemoved`), which the bus drops everywhere. */
export async function prune(parts: CacheParts, options: ValidPruneOptions): Promise<PruneReport> {
  if (parts.disk === undefined && parts.shared !== undefined) return pruneShared(parts, options)
  const { failures, shared, stack } = parts
  // The removal's time, taken as it is called: a prune is in no key's order, so a set called
  // after it may land anywhere in its passes, and must stay in every tier (memory's copies and
  // Redis's values are judged by it).
  const at = parts.clock.stamp()
  const maintainer = maintainerFor(parts, 'prune')
  const run = (): Promise<PruneReport> => failures.operation(() => maintainer.prune({ ...options, createdBefore: at }))
  const filtered =
    options.pattern !== undefined || options.tags !== undefined || options.maxAge !== undefined || options.olderThan !== undefined
  let report: PruneReport
  if (!filtered || options.dryRun === true) report = await run()
  else {
    // Entries removed by filter are values no process may serve any longer: this instance's
    // memory tier drops its copies that may match (what the workers match, as far as a copy can
    // tell: a file's last use, maxAge's measure, is not known here, so any copy may match it),
    // and the change log tells every other process on the directory that anything may have
    // changed.
    const glob = options.pattern !== undefined ? new Glob(options.pattern) : undefined
    const tags = options.tags !== undefined ? new Set(options.tags) : undefined
    const { maxAge, olderThan } = options
    const may = (key: string, entry: TierEntry): boolean =>
      maxAge !== undefined ||
      (olderThan !== undefined && entry.createdAt < olderThan) ||
      (tags !== undefined && entry.tags.some((t) => tags.has(t))) ||
      glob?.test(key) === true
    let removedAny = true // unknown when the prune failed part way
    // Recorded before as well as after (store/change-clock.ts, announce): a process killed while
    // its workers remove entries has still told the others. A log that cannot take the record
    // fails the prune before anything is removed.
    await failures.operation(() => Promise.resolve(parts.disk!.changes.announce()))
    try {
      report = await stack.pruningFiles(may, at, run)
      removedAny = report.matched > 0
    } finally {
      if (removedAny) parts.disk!.changes.bump()
    }
  }
  if (options.pattern !== undefined && shared !== undefined && options.dryRun !== true) {
    report.sharedRemoved = await failures.operation(() => stack.removeSharedMatching(options.pattern!, at), 'redis')
  }
  // What Redis holds that no instance will serve again (expired, invalidated by a tag): a read
  // removes such an entry when it meets it, and this removes those no read meets. Not for a
  // removal of what matches alone (onlyMatching: `larder rm`), which counts what it was asked
  // to remove.
  if (
    shared !== undefined &&
    stack.redis !== undefined &&
    options.dryRun !== true &&
    options.onlyMatching !== true &&
    !parts.options.readOnly
  ) {
    const redis = stack.redis
    const dead = await failures.operation(() => redis.removeDead(), 'redis')
    report.sharedRemoved = (report.sharedRemoved ?? 0) + dead
  }
  return report
}

/** What prune() does to entry files has nothing to work on without a directory. */
const FILE_ONLY = ['maxSize', 'maxEntries', 'maxAge', 'olderThan', 'tags', 'dryRun', 'listKeys'] as const

/** prune() of a cache with `redis` and no directory (`dir: false`): Redis's part alone, the
 *  keys `pattern` matches (this instance's memory copies with them, the others' through the
 *  bus) and the dead entries no read met (redis/dead-entries.ts), which would otherwise stay
 *  in Redis for good. The budgets and the other filters judge entry files (a last use, a
 *  listing of keys): refused, naming the field, so nobody takes a prune that did nothing for
 *  one that kept a budget. */
async function pruneShared(parts: CacheParts, options: ValidPruneOptions): Promise<PruneReport> {
  for (const field of FILE_ONLY) {
    if (options[field] !== undefined && options[field] !== false)
      throw new LarderError('ERR_INVALID_OPTION', `prune({ ${field} }) needs a cache directory; this cache was opened with dir: false`, {
        field,
      })
  }
  const { failures, stack, clock } = parts
  const redis = stack.redis!
  const started = performance.now()
  const report = emptyPruneReport(false)
  report.sharedRemoved = 0
  // Cancelled before a pass, as the workers' prune is: ERR_ABORTED, with the report so far.
  const stopIfCancelled = (): void => {
    const { signal } = options
    if (signal?.aborted !== true) return
    const message = 'Maintenance was cancelled; `report` holds what was done before it stopped'
    throw Object.assign(new LarderError('ERR_ABORTED', message, { field: 'signal', cause: signal.reason }), { report })
  }
  stopIfCancelled()
  const { pattern } = options
  if (pattern !== undefined) {
    const glob = new Glob(pattern)
    const at = clock.stamp()
    const removing = (): Promise<number> => failures.operation(() => stack.removeSharedMatching(pattern, at), 'redis')
    report.sharedRemoved = await stack.pruningFiles((key) => glob.test(key), at, removing)
  }
  stopIfCancelled()
  report.sharedRemoved += await failures.operation(() => redis.removeDead(options.signal), 'redis')
  stopIfCancelled()
  report.durationMs = performance.now() - started
  return report
}

/** verify(): every entry's checksum, in the maintenance workers. */
export function verify(parts: CacheParts, options: VerifyOptions): Promise<VerifyReport> {
  return parts.failures.operation(() => maintainerFor(parts, 'verify').verify(options))
}

/** activity(): the activity records every process left in the directory, summed. */
export function activity(parts: CacheParts): Promise<ActivityReport> {
  parts.files('activity')
  const disk = parts.disk!
  return parts.failures.operation(() => Promise.resolve(disk.bookkeeping(() => disk.activity.read())))
}

/** info(): once the changes of `key` called before it have taken effect, what its entry file
 *  tells without decoding the value (a file the outage rule would not serve left out), else
 *  (with `redis`) what the live entry Redis holds tells (another host's value: get would find
 *  it there); a failing tier is a miss (or ERR_UNAVAILABLE). */
export function info(parts: CacheParts, key: string): Promise<EntryInfo | undefined> {
  const files = parts.files('info')
  return parts.order.afterChanges(key, async () => {
    try {
      const found = await files.info(key)
      // A file older than the last outage describes what get serves only once the outage
      // rule has checked it against Redis (else another host's overwrite, or a deleted key).
      if (found !== undefined && found !== 'expired' && (await parts.stack.streamStillValid(key, () => Promise.resolve(found.createdAt))))
        return found
    } catch (error) {
      parts.failures.readFailed(error)
    }
    const redis = parts.stack.redis
    if (redis === undefined) return undefined
    try {
      return await redis.info(key)
    } catch (error) {
      parts.failures.readFailed(error, 'redis')
      return undefined
    }
  })
}

/** entries(): the live entries matching `filters`, read from entry heads in the maintenance
 *  workers, held whole (`entryBatches` gives them a batch at a time). */
export function entries(parts: CacheParts, filters: ListFilters, walk: WalkOptions): Promise<EntryInfo[]> {
  return parts.failures.operation(async () => parts.stack.servable(await maintainerFor(parts, 'entries').list(filters, walk)))
}

/** The bounded listing (adapter-hooks.ts `entryBatches`): entries()'s entries a batch of
 *  partitions at a time (Maintainer.listBatches), each step's failure ruled as entries()'s. */
export async function* entryBatches(parts: CacheParts, filters: ListFilters, walk: WalkOptions): AsyncGenerator<EntryInfo[], void> {
  const batches = maintainerFor(parts, 'entries').listBatches(filters, walk)
  try {
    for (;;) {
      const step = await parts.failures.operation(() => batches.next())
      if (step.done === true) return
      yield await parts.stack.servable(step.value)
    }
  } finally {
    await batches.return()
  }
}

/** usage(): a read-only walk of every entry head in the maintenance workers. */
export function usage(parts: CacheParts, options: WalkOptions): Promise<UsageReport> {
  return parts.failures.operation(() => maintainerFor(parts, 'usage').usage(options))
}

/** The maintenance workers' owner; ERR_INVALID_OPTION naming `method` for a cache without a
 *  directory. */
function maintainerFor(parts: CacheParts, method: string): Maintainer {
  parts.files(method)
  return parts.disk!.maintainer
}
