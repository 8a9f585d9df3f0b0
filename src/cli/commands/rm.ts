import { Command, Option } from 'commander'
import { removeMatching } from '../../facade/adapter-hooks.js'
import { isLarderError } from '../../errors.js'
import type { PruneReport } from '../../maintenance/maintainer.js'
import { collectTag } from '../arguments.js'
import { CliContext, CliFailure, EXIT } from '../context.js'
import { count } from '../format.js'
import { interruptSignal, ProgressBar } from '../progress.js'
import { sharedTierOption, withSharedTierOptions, type SharedTierFlags } from '../shared-tier.js'

export function rmCommand(): Command {
  return withSharedTierOptions(
    new Command('rm')
      .description(
        'remove entries by key, by key glob (--pattern) or by tag (--tag); prints how many were removed (with --redis, keys and --pattern also from Redis)',
      )
      .argument('[keys...]', 'keys to remove')
      .option('--pattern <glob>', "remove every entry whose key matches, e.g. 'user:*'")
      .addOption(new Option('--tag <tag>', 'remove every entry carrying this tag (repeatable; the directory only)').argParser(collectTag)),
  ).action(async (keys: string[], flags: { pattern?: string; tag?: string[] } & SharedTierFlags, command: Command) => {
    const ctx = new CliContext(command)
    const byFilter = flags.pattern !== undefined || flags.tag !== undefined
    if (keys.length === 0 && !byFilter) throw new CliFailure('rm needs keys, --pattern or --tag', EXIT.usage)
    if (keys.length > 0 && byFilter) throw new CliFailure('rm takes keys or --pattern/--tag, not both', EXIT.usage)
    await ctx.requireKeysIfSealed('remove its entries by key, pattern or tag')
    const said = (removed: number, sharedRemoved: number | undefined): string =>
      `removed ${count(removed)} ${removed === 1 ? 'entry' : 'entries'}${sharedRemoved === undefined ? '' : `; ${count(sharedRemoved)} ${sharedRemoved === 1 ? 'key' : 'keys'} from Redis`}`
    const shown = (removed: number, sharedRemoved: number | undefined): { removed: number; sharedRemoved?: number } => ({
      removed,
      ...(sharedRemoved === undefined ? {} : { sharedRemoved }),
    })
    // By filter, a pass over the whole directory in the maintenance workers: Ctrl-C stops it
    // as it stops a prune (each worker finishes its file, the running totals are settled) and
    // what was removed so far is reported; the bin's own handler would end the process at once.
    const bar = new ProgressBar(byFilter && ctx.interactive)
    const interrupt = byFilter ? interruptSignal() : undefined
    let removed: number
    let sharedRemoved: number | undefined
    try {
      ;({ removed, sharedRemoved } = await ctx.withCache(
        'maintain',
        async (cache) => {
          if (!byFilter) return { removed: await cache.deleteMany(keys), sharedRemoved: undefined }
          // `rm` removes what it was asked to, never other entries: what matches, expired or not
          // (an expired entry that matches is counted: it was removed), and none of what a prune
          // would remove besides (expired entries that do not match, damaged files, stray temp
          // files, what the recorded budget would evict, Redis's dead entries).
          const report = await cache[removeMatching]({
            ...(flags.pattern !== undefined ? { pattern: flags.pattern } : {}),
            ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
            signal: interrupt!.signal,
            onProgress: bar.update,
          })
          return { removed: report.matched + report.expired, sharedRemoved: report.sharedRemoved }
        },
        sharedTierOption(flags, command),
      ))
    } catch (error) {
      bar.stop()
      if (isLarderError(error, 'ERR_ABORTED') && interrupt?.interrupted() === true) {
        const partial = (error as { report?: PruneReport }).report
        if (partial !== undefined) {
          const n = partial.matched + partial.expired
          ctx.print(
            () => `interrupted: ${said(n, partial.sharedRemoved)}`,
            () => ({ ...shown(n, partial.sharedRemoved), interrupted: true }),
          )
        }
        throw new CliFailure('rm interrupted; what was removed so far is reported above', EXIT.interrupted, 'ERR_ABORTED')
      }
      throw error
    } finally {
      bar.stop()
      interrupt?.release()
    }
    ctx.print(
      () => said(removed, sharedRemoved),
      () => shown(removed, sharedRemoved),
    )
  })
}
