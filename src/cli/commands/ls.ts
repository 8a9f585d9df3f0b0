import { Command, Option } from 'commander'
import type { EntryInfo } from '../../maintenance/listing.js'
import { choice, collect, countArgument } from '../arguments.js'
import { CliContext } from '../context.js'
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
      let entries: EntryInfo[]
      try {
        entries = await ctx.withCache('read', (cache) =>
          cache.entries({
            ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
            ...(flags.pattern !== undefined ? { pattern: flags.pattern } : {}),
            ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
            signal: interrupt.signal,
            onProgress: bar.update,
          }),
        )
      } finally {
        bar.stop()
        interrupt.release()
      }
      const total = entries.length
      entries.sort(ORDER[flags.sort])
      if (flags.limit !== undefined) entries = entries.slice(0, flags.limit)
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
