import { Command, Option } from 'commander'
import { collect } from '../arguments.js'
import { CliContext, CliFailure, EXIT } from '../context.js'
import { count } from '../format.js'
import { sharedTierOption, withSharedTierOptions, type SharedTierFlags } from '../shared-tier.js'

export function rmCommand(): Command {
  return withSharedTierOptions(
    new Command('rm')
      .description(
        'remove entries by key, by key glob (--pattern) or by tag (--tag); prints how many were removed (with --redis, keys and --pattern also from Redis)',
      )
      .argument('[keys...]', 'keys to remove')
      .option('--pattern <glob>', "remove every entry whose key matches, e.g. 'user:*'")
      .addOption(new Option('--tag <tag>', 'remove every entry carrying this tag (repeatable; the directory only)').argParser(collect)),
  ).action(async (keys: string[], flags: { pattern?: string; tag?: string[] } & SharedTierFlags, command: Command) => {
    const ctx = new CliContext(command)
    const byFilter = flags.pattern !== undefined || flags.tag !== undefined
    if (keys.length === 0 && !byFilter) throw new CliFailure('rm needs keys, --pattern or --tag', EXIT.usage)
    if (keys.length > 0 && byFilter) throw new CliFailure('rm takes keys or --pattern/--tag, not both', EXIT.usage)
    await ctx.requireKeysIfSealed('remove its entries by key, pattern or tag')
    const { removed, sharedRemoved } = await ctx.withCache(
      'maintain',
      async (cache) => {
        if (!byFilter) return { removed: await cache.deleteMany(keys), sharedRemoved: undefined }
        // The cache is opened with the budget the application recorded (so the record stays
        // as it was), which a prune would evict down to: targets no cache reaches make this
        // prune remove what matches (and what has expired or is damaged anyway) and evict
        // nothing. `rm` removes what it was asked to, never other entries.
        const report = await cache.prune({
          ...(flags.pattern !== undefined ? { pattern: flags.pattern } : {}),
          ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
          maxSize: Number.MAX_SAFE_INTEGER,
          maxEntries: Number.MAX_SAFE_INTEGER,
        })
        return { removed: report.matched, sharedRemoved: report.sharedRemoved }
      },
      sharedTierOption(flags, command),
    )
    const fromRedis = sharedRemoved === undefined ? '' : `; ${count(sharedRemoved)} ${sharedRemoved === 1 ? 'key' : 'keys'} from Redis`
    ctx.print(
      () => `removed ${count(removed)} ${removed === 1 ? 'entry' : 'entries'}${fromRedis}`,
      () => ({ removed, ...(sharedRemoved === undefined ? {} : { sharedRemoved }) }),
    )
  })
}
