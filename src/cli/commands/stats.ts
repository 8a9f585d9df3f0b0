import { Command, Option } from 'commander'
import { countArgument, sizeArgument } from '../arguments.js'
import { budgetAmount, budgetJson, budgetOrigin, CliContext, type Budget } from '../context.js'
import { ago, count, pairs, percent, size, table } from '../format.js'
import { namespaceLabel, namespacesOf, type NamespaceSummary } from '../namespaces.js'
import { interruptSignal, ProgressBar } from '../progress.js'

export function statsCommand(): Command {
  return new Command('stats')
    .description(
      'entries, sizes, age, activity and budget of the cache (reads every entry head in worker threads; --fast reads only the running totals); writes nothing',
    )
    .option('--fast', 'skip the walk: entries and size from the running totals only')
    .addOption(
      new Option('--max-size <size>', 'the budget to measure against (default: the one the application recorded)')
        .env('LARDER_MAX_SIZE')
        .argParser(sizeArgument),
    )
    .addOption(new Option('--max-entries <n>', 'the entry budget to measure against').env('LARDER_MAX_ENTRIES').argParser(countArgument))
    .action(async (options: { fast?: boolean; maxSize?: number; maxEntries?: number }, command: Command) => {
      const ctx = new CliContext(command)
      await ctx.checkConfigAndDir('read')
      const budget = await ctx.budget(options)
      const bar = new ProgressBar(ctx.interactive && options.fast !== true)
      const interrupt = interruptSignal()
      try {
        await ctx.withCache('read', async (cache) => {
          const totals = await cache.stats()
          const activity = await cache.activity()
          const usage = options.fast === true ? undefined : await cache.usage({ signal: interrupt.signal, onProgress: bar.update })
          bar.stop()
          const entries = usage?.entries ?? totals.entries
          const stored = usage?.storedBytes ?? totals.size
          const report = {
            dir: cache.dir as string,
            entries,
            storedBytes: stored,
            logicalBytes: usage?.logicalBytes ?? null,
            compressionRatio: usage !== undefined && usage.storedBytes > 0 ? usage.logicalBytes / usage.storedBytes : null,
            expired: usage?.expired ?? null,
            corrupt: usage?.corrupt ?? null,
            oldestCreatedAt: usage?.oldestCreatedAt ?? null,
            newestCreatedAt: usage?.newestCreatedAt ?? null,
            byAge: usage?.byAge ?? null,
            runningTotals: { entries: totals.entries, bytes: totals.size, scannedAt: totals.scannedAt ?? null },
            activity: {
              runs: activity.runs,
              hits: activity.hits,
              misses: activity.misses,
              hitRate: activity.hitRate,
              sets: activity.sets,
              corrupt: activity.corrupt,
              errors: activity.errors,
              dropped: activity.dropped,
              since: activity.since ?? null,
            },
            lastRun: activity.lastRun ?? null,
            budget: {
              ...budgetJson(budget),
              sizeUsed: budget.maxSize ? stored / budget.maxSize : null,
              entriesUsed: budget.maxEntries ? entries / budget.maxEntries : null,
            },
            durationMs: usage?.durationMs ?? null,
            // Without --namespace, every namespace of the directory (the report above is the
            // default one's): a cache whose entries all sit in named namespaces shows them here.
            ...(ctx.options.namespace === undefined ? { namespaces: await namespacesOf(cache.dir as string) } : {}),
          }
          ctx.print(
            () => human(report, budget),
            () => report,
          )
        })
      } finally {
        bar.stop()
        interrupt.release()
      }
    })
}

type Report = {
  dir: string
  entries: number
  storedBytes: number
  logicalBytes: number | null
  compressionRatio: number | null
  expired: number | null
  corrupt: number | null
  oldestCreatedAt: number | null
  newestCreatedAt: number | null
  byAge: { label: string; entries: number; bytes: number }[] | null
  activity: { runs: number; hits: number; misses: number; hitRate: number; sets: number; since: number | null }
  lastRun: { closedAt: number; breaker: string; pid: number } | null
  namespaces?: NamespaceSummary[]
}

function human(r: Report, budget: Budget): string {
  const rows: [string, string][] = [
    ['cache', r.dir],
    ['entries', count(r.entries)],
    ['size on disk', size(r.storedBytes)],
  ]
  if (r.logicalBytes !== null)
    rows.push([
      'size of values',
      `${size(r.logicalBytes)}${r.compressionRatio !== null ? ` (compression ${r.compressionRatio.toFixed(2)}×)` : ''}`,
    ])
  if (r.oldestCreatedAt !== null) rows.push(['oldest entry', ago(r.oldestCreatedAt)], ['newest entry', ago(r.newestCreatedAt!)])
  if (r.expired) rows.push(['expired', `${count(r.expired)} (removed by the next prune)`])
  if (r.corrupt) rows.push(['damaged files', `${count(r.corrupt)} (run larder verify --repair)`])
  if (budget.maxSize !== undefined) rows.push(['size budget', `${size(budget.maxSize)}, ${percent(r.storedBytes, budget.maxSize)} used`])
  if (budget.maxEntries !== undefined)
    rows.push(['entry budget', `${count(budget.maxEntries)}, ${percent(r.entries, budget.maxEntries)} used`])
  rows.push(['budget', budgetAmount(budget) === '' ? `none (${budgetOrigin(budget)})` : budgetOrigin(budget)])
  const a = r.activity
  if (a.runs > 0) {
    rows.push([
      'hits / misses',
      `${count(a.hits)} / ${count(a.misses)} (hit rate ${percent(a.hits, a.hits + a.misses)}) over ${count(a.runs)} runs since ${ago(a.since!)}`,
    ])
    rows.push(['sets', count(a.sets)])
  } else {
    rows.push(['hits / misses', 'not recorded yet'])
  }
  if (r.lastRun !== null) rows.push(['last run', `breaker ${r.lastRun.breaker}, closed ${ago(r.lastRun.closedAt)} (pid ${r.lastRun.pid})`])
  let out = pairs(rows)
  if (r.byAge !== null && r.entries > 0) {
    const labels: Record<string, string> = { '1h': '< 1 hour', '1d': '< 1 day', '7d': '< 7 days', '30d': '< 30 days', older: 'older' }
    out +=
      '\n\n' +
      table(
        ['age', 'entries', 'size', 'share'],
        r.byAge.map((b) => [labels[b.label] ?? b.label, count(b.entries), size(b.bytes), percent(b.bytes, r.storedBytes)]),
        new Set([1, 2, 3]),
      )
  }
  const others = (r.namespaces ?? []).filter((n) => n.name !== '')
  if (r.namespaces !== undefined && others.length > 0) {
    out += `\n\nnamespaces (the figures above are the default namespace's; --namespace NAME reports one):\n`
    out += table(
      ['namespace', 'entries', 'size'],
      r.namespaces.map((n) => [namespaceLabel(n), count(n.entries), size(n.size)]),
      new Set([1, 2]),
    )
  }
  return out
}
