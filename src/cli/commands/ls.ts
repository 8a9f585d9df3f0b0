import { Command, Option } from 'commander'
import type { EntryInfo } from '../../maintenance/listing.js'
import { choice, collect, countArgument } from '../arguments.js'
import { CliContext } from '../context.js'
import { TopEntries } from '../top-entries.js'
import { entryBatches } from '../../facade/adapter-hooks.js'
import { count, duration, entries as plural, size, table } from '../format.js'
import { interruptSignal, ProgressBar } from '../progress.js'

const SORTS = ['key', 'size', 'age'] as const
type Sort = (typeof SORTS)[number]

const ORDER: Record<Sort, (a: EntryInfo, b: EntryInfo) => number> = {
  key: (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  size: (a, b) => b.size - a.size, // largest first
  age: (a, b) => a.createdAt - b.createdAt, // oldest first
}

export function lsCommand(): Command {
  return new Command('ls')
    .description('list entries: key, size, age, expiry, tags (read from entry heads in worker threads)')
    .option('--prefix <prefix>', 'keys starting with this')
    .option('--pattern <glob>', "keys matching this glob, e.g. 'user:*'")
    .addOption(new Option('--tag <tag>', 'entries carrying this tag (repeatable)').argParser(collect))
    .addOption(new Option('--sort <order>', 'key, size (largest first) or age (oldest first)').default('key').argParser(choice(SORTS)))
    .addOption(new Option('--limit <n>', 'show at most n entries').argParser(countArgument))
    .action(async (flags: { prefix?: string; pattern?: string; tag?: string[]; sort: Sort; limit?: number }, command: Command) => {
      const ctx = new CliContext(command)
      const bar = new ProgressBar(ctx.interactive)
      const interrupt = interruptSignal()
      const listing = {
        ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
        ...(flags.pattern !== undefined ? { pattern: flags.pattern } : {}),
        ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
        signal: interrupt.signal,
        onProgress: bar.update,
      }
      let listed: { entries: EntryInfo[]; total: number }
      try {
        listed = await ctx.withCache('read', async (cache) => {
          if (flags.limit === undefined) {
            const all = await cache.entries(listing)
            return { entries: all.sort(ORDER[flags.sort]), total: all.length }
          }
          // With a limit, the listing comes a batch of partitions at a time and only the first
          // `limit` in order are kept: memory holds those and a batch, not the cache's listing.
          const top = new TopEntries(flags.limit, ORDER[flags.sort])
          for await (const batch of cache[entryBatches](listing)) top.add(batch)
          return { entries: top.entries, total: top.total }
        })
      } finally {
        bar.stop()
        interrupt.release()
      }
      const { entries, total } = listed
      const now = Date.now()
      ctx.print(
        () => {
          if (total === 0) return 'no entries'
          const rows = entries.map((e) => [
            e.key.length > 60 ? e.key.slice(0, 59) + '…' : e.key,
            size(e.size),
            duration(now - e.createdAt),
            e.expiresAt === null ? 'never' : e.expiresAt <= now ? 'expired' : `in ${duration(e.expiresAt - now)}`,
            e.tags.join(','),
          ])
          const shown = entries.length < total ? `\n${count(entries.length)} of ${plural(total)}` : `\n${plural(total)}`
          return table(['key', 'size', 'age', 'expires', 'tags'], rows, new Set([1, 2])) + shown
        },
        () => entries,
      )
    })
}
