import { Command, Option } from 'commander'
import type { EntryInfo } from '../../maintenance/listing.js'
import type { MaintenanceProgress } from '../../maintenance/maintainer.js'
import { choice, collectTag, countArgument } from '../arguments.js'
import { CliContext } from '../context.js'
import { EntryTableStream, entryTable } from '../entry-table.js'
import { TopEntries } from '../top-entries.js'
import { entryBatches } from '../../facade/adapter-hooks.js'
import { interruptSignal, ProgressBar } from '../progress.js'

const SORTS = ['key', 'size', 'age'] as const
type Sort = (typeof SORTS)[number]

const byKey = (a: EntryInfo, b: EntryInfo): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)

/** Each order ends in the key, so that entries of one size or age print in the same order
 *  whichever partitions the listing met them in (and `--limit` keeps the same ones). */
const ORDER: Record<Sort, (a: EntryInfo, b: EntryInfo) => number> = {
  key: byKey,
  size: (a, b) => b.size - a.size || byKey(a, b), // largest first
  age: (a, b) => a.createdAt - b.createdAt || byKey(a, b), // oldest first
}

export function lsCommand(): Command {
  return new Command('ls')
    .description('list entries: key, size, age, expiry, tags (read from entry heads in worker threads)')
    .option('--prefix <prefix>', 'keys starting with this')
    .option('--pattern <glob>', "keys matching this glob, e.g. 'user:*'")
    .addOption(new Option('--tag <tag>', 'entries carrying this tag (repeatable)').argParser(collectTag))
    .addOption(
      new Option(
        '--sort <order>',
        'key, size (largest first) or age (oldest first), over the whole listing; without it (and without --limit or --json), entries print as they are listed, in key order within each chunk of about 1,000',
      ).argParser(choice(SORTS)),
    )
    .addOption(new Option('--limit <n>', 'show at most n entries').argParser(countArgument))
    .action(async (flags: { prefix?: string; pattern?: string; tag?: string[]; sort?: Sort; limit?: number }, command: Command) => {
      const ctx = new CliContext(command)
      const bar = new ProgressBar(ctx.interactive)
      const interrupt = interruptSignal()
      // Once the table prints as the listing comes, the bar (on the same terminal) is put away.
      let printing = false
      const listing = {
        ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
        ...(flags.pattern !== undefined ? { pattern: flags.pattern } : {}),
        ...(flags.tag !== undefined ? { tags: flags.tag } : {}),
        signal: interrupt.signal,
        onProgress: (p: MaintenanceProgress) => {
          if (!printing) bar.update(p)
        },
      }
      const order = ORDER[flags.sort ?? 'key']
      // Without a sort over the whole listing, a limit or a JSON document (one array, which a
      // failure midway must be able to replace: Command line, --json), nothing needs the whole
      // listing at once: it is printed a chunk at a time, in the memory of a chunk.
      const streamed = flags.sort === undefined && flags.limit === undefined && !ctx.json
      let listed: { entries: EntryInfo[]; total: number } | undefined
      try {
        listed = await ctx.withCache('read', async (cache) => {
          if (streamed) {
            const table = new EntryTableStream(async (text) => {
              if (!printing) bar.stop()
              printing = true
              await ctx.write(text)
            }, order)
            for await (const batch of cache[entryBatches](listing)) await table.add(batch)
            await table.end()
            return undefined
          }
          if (flags.limit === undefined) {
            const all = await cache.entries(listing)
            return { entries: all.sort(order), total: all.length }
          }
          // With a limit, the listing comes a batch of partitions at a time and only the first
          // `limit` in order are kept: memory holds those and a batch, not the cache's listing.
          const top = new TopEntries(flags.limit, order)
          for await (const batch of cache[entryBatches](listing)) top.add(batch)
          return { entries: top.entries, total: top.total }
        })
      } finally {
        bar.stop()
        interrupt.release()
      }
      if (listed === undefined) return
      const { entries, total } = listed
      ctx.print(
        () => entryTable(entries, total),
        () => entries,
      )
    })
}
