import { Command, Option } from 'commander'
import { isLarderError } from '../../errors.js'
import type { PruneReport } from '../../maintenance/maintainer.js'
import { booleanOptions, collectTag, countArgument, durationArgument, sizeArgument } from '../arguments.js'
import { budgetJson, budgetLine, CliContext, CliFailure, EXIT } from '../context.js'
import { count, duration, entries, printable, size } from '../format.js'
import { interruptSignal, ProgressBar } from '../progress.js'
import { sharedTierOption, withSharedTierOptions, type SharedTierFlags } from '../shared-tier.js'

interface PruneFlags extends SharedTierFlags {
  maxSize?: number
  maxEntries?: number
  maxAge?: number
  tag?: string[]
  pattern?: string
  dryRun?: boolean
}

export function pruneCommand(): Command {
  const [dryRun, noDryRun] = booleanOptions('--dry-run', 'report what would be removed; remove nothing', 'LARDER_DRY_RUN')
  return withSharedTierOptions(
    new Command('prune')
      .description(
        'remove expired, damaged and matching entries and stray temp files, then evict down to the budget (worker threads; Ctrl-C stops cleanly; with --redis, --pattern also from Redis)',
      )
      .addOption(
        new Option('--max-size <size>', 'evict down to this size (500MB, 1.5GB, 1GiB); default: the recorded budget')
          .env('LARDER_MAX_SIZE')
          .argParser(sizeArgument),
      )
      .addOption(new Option('--max-entries <n>', 'evict down to this many entries').env('LARDER_MAX_ENTRIES').argParser(countArgument))
      .addOption(
        new Option('--max-age <duration>', 'remove entries not used within this long (90s, 15m, 7d)')
          .env('LARDER_MAX_AGE')
          .argParser(durationArgument),
      )
      .addOption(new Option('--tag <tag>', 'remove entries carrying this tag (repeatable)').argParser(collectTag))
      .addOption(new Option('--pattern <glob>', "remove entries whose key matches this glob, e.g. 'user:*'").env('LARDER_PATTERN'))
      .addOption(dryRun)
      .addOption(noDryRun),
  ).action(async (flags: PruneFlags, command: Command) => {
    const ctx = new CliContext(command)
    // A dry run only reads: it runs on a read-only copy of a cache too.
    const use = flags.dryRun === true ? 'preview' : 'maintain'
    await ctx.checkConfigAndDir(use)
    // A budget on the command line is an exact target; without one, the cache is opened with
    // the recorded budget and pruned to its low-water mark, as the application's prunes are.
    const budget = await ctx.budget(flags)
    // Flags replace the recorded budget whole: the one they leave out is none. The cache is
    // opened with the record, whose other budget the prune would otherwise keep (`--max-size
    // 1GB` evicted a 15 kB cache down to 90 % of a recorded `maxEntries`, and said "budget: 1 GB").
    const unbounded = Number.MAX_SAFE_INTEGER
    const targets =
      budget.source === 'command line' ? { maxSize: flags.maxSize ?? unbounded, maxEntries: flags.maxEntries ?? unbounded } : {}
    const bar = new ProgressBar(ctx.interactive)
    const interrupt = interruptSignal()
    const result = (r: PruneReport): PruneReport & { budget: ReturnType<typeof budgetJson> } => ({ ...r, budget: budgetJson(budget) })
    let report: PruneReport
    try {
      report = await ctx.withCache(
        use,
        (cache) =>
          cache.prune({
            ...targets,
            ...(flags.maxAge !== undefined ? { maxAge: flags.maxAge } : {}),
            ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
            ...(flags.pattern !== undefined ? { pattern: flags.pattern } : {}),
            dryRun: flags.dryRun === true,
            signal: interrupt.signal,
            onProgress: bar.update,
          }),
        sharedTierOption(flags, command),
      )
    } catch (error) {
      bar.stop()
      if (isLarderError(error, 'ERR_ABORTED') && interrupt.interrupted()) {
        const partial = (error as { report?: PruneReport }).report
        if (partial !== undefined)
          ctx.print(
            () => `interrupted: ${summary(partial)}`,
            () => ({ ...result(partial), interrupted: true }),
          )
        throw new CliFailure('prune interrupted; what was removed so far is reported above', EXIT.interrupted, 'ERR_ABORTED')
      }
      throw error
    } finally {
      bar.stop()
      interrupt.release()
    }
    ctx.print(
      () => [summary(report), budgetLine(budget), ...keyList(report)].join('\n'),
      () => result(report),
    )
  })
}

/** A dry run's victims, the first 20. */
function keyList(r: PruneReport): string[] {
  if (!r.dryRun || r.keys === undefined || r.keys.length === 0) return []
  return [
    ...r.keys.slice(0, 20).map((k) => `  ${printable(k)}`),
    ...(r.keys.length > 20 ? [`  … and ${count(r.keys.length - 20)} more`] : []),
  ]
}

/** "removed 48,211 of 100,000 entries (2.3 GB) in 1.4 s; 51,789 entries (2.6 GB) remain" */
export function summary(r: PruneReport): string {
  const removed = r.expired + r.matched + r.evicted + r.corrupt
  const verb = r.dryRun ? 'would remove' : 'removed'
  const parts = [`${verb} ${count(removed)} of ${entries(r.scanned)} (${size(r.freedBytes)}) in ${duration(r.durationMs)}`]
  const why = [
    [r.expired, 'expired'],
    [r.matched, 'matched'],
    [r.evicted, 'evicted'],
    [r.corrupt, 'damaged'],
  ]
    .filter(([n]) => (n as number) > 0)
    .map(([n, label]) => `${count(n as number)} ${label}`)
  if (why.length > 1) parts[0] += ` [${why.join(', ')}]`
  if (r.tempFilesRemoved > 0) parts.push(`${count(r.tempFilesRemoved)} stray temp files`)
  if (r.trashRemoved > 0)
    parts.push(`${count(r.trashRemoved)} ${r.trashRemoved === 1 ? 'trash directory' : 'trash directories'} of a dead clear`)
  if (r.stampsFolded > 0)
    parts.push(
      `${count(r.stampsFolded)} tag ${r.stampsFolded === 1 ? 'stamp' : 'stamps'} folded into the floor (older tagged entries stale)`,
    )
  if (r.sharedRemoved !== undefined) parts.push(`${count(r.sharedRemoved)} ${r.sharedRemoved === 1 ? 'key' : 'keys'} removed from Redis`)
  parts.push(`${entries(r.remainingEntries)} (${size(r.remainingBytes)}) ${r.remainingEntries === 1 ? 'remains' : 'remain'}`)
  return parts.join('; ')
}
