import { Command, Option } from 'commander'
import { removeMatching } from '../../facade/adapter-hooks.js'
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
        // `rm` removes what it was asked to, never other entries: what matches, expired or not
        // (an expired entry that matches is counted: it was removed), and none of what a prune
        // would remove besides (expired entries that do not match, damaged files, stray temp
        // files, what the recorded budget would evict, Redis's dead entries).
        const report = await cache[removeMatching]({
          ...(flags.pattern !== undefined ? { pattern: flags.pattern } : {}),
          ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
        })
        return { removed: report.matched + report.expired, sharedRemoved: report.sharedRemoved }
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
