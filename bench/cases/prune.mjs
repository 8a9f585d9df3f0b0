// W7: clean-up of a cache of n ~1 KiB entries, each implementation with its own tool, asked to
// leave half: larder prune({ maxEntries: n/2 }) (LRU eviction in worker threads); cacache
// verify() with a `filter` that drops half the index entries (it also re-hashes every content
// file and garbage-collects); bentocache's file-driver prune(), which removes expired files, with
// half the entries written with a 1 s ttl; and the limit, raw-fs unlinking the unwanted half
// by name (it knows every key; nothing is scanned). Timed: the clean-up call alone, on a new instance,
// with perf_hooks.monitorEventLoopDelay recording how long the main thread was blocked.
import fsp from 'node:fs/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { smallKey, smallValue } from '../data.mjs'
import { inFlight, seconds, settle } from '../measure.mjs'
import { openStore } from './open.mjs'

const SHORT_TTL = 1000

/**
 * Writes the n entries W7 prunes, untimed. run.mjs does this once per implementation into a
 * template directory and each run prunes a copy: writing 100,000 entries through cacache takes
 * minutes, and it is not what W7 measures.
 */
export async function pruneSetup(args) {
  const { n, impl } = args
  const values = Array.from({ length: 64 }, (_, i) => smallValue(i))
  const writer = await openStore(args, { maintenance: false })
  const started = performance.now()
  await inFlight(n, 16, (i) =>
    impl === 'bentocache'
      ? writer.set(smallKey(i), values[i % 64], i % 2 ? SHORT_TTL : undefined)
      : writer.set(smallKey(i), values[i % 64]),
  )
  await writer.check?.()
  await writer.close()
  return { metrics: { seconds: seconds(started) }, info: {} }
}

export async function prune(args) {
  const { n, impl } = args
  const half = Math.floor(n / 2)
  // run.mjs fills `dir` with a copy of a template written by pruneSetup; by hand, write it here.
  if (!args.prepared) await pruneSetup(args)
  if (impl === 'bentocache')
    await sleep(SHORT_TTL + 200) // let the short-lived half expire
  else await sleep(300) // larder flushes its running totals within 250 ms
  const info = {}

  const store = await openStore(args, { maintenance: false })
  const keep = new Set(Array.from({ length: half }, (_, i) => smallKey(2 * i)))
  settle()
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  const started = performance.now()
  // Each takes what its tool understands: larder a budget, cacache a filter, bentocache neither.
  const keys = impl === 'raw-fs' ? Array.from({ length: n }, (_, i) => smallKey(i)) : undefined
  const report = await store.prune({ maxEntries: n - half, keep: (entry) => keep.has(entry.key), keys })
  const elapsed = seconds(started)
  delay.disable()
  info.seconds = elapsed
  if (impl === 'larder') {
    info.evicted = report.evicted
    info.remaining = report.remainingEntries
  } else if (impl === 'cacache') {
    info.evicted = report.rejectedEntries
    info.remaining = report.totalEntries
  } else {
    info.remaining = await countFiles(args.dir)
    info.evicted = n - info.remaining
  }
  if (info.remaining !== n - half) throw new Error(`${impl} left ${info.remaining} entries, expected ${n - half}`)
  await store.close()
  // raw-fs unlinks synchronously on the main thread: the loop is blocked the whole time, which
  // the histogram cannot sample (it would read 0), so its delay is the whole run.
  const blocked = impl === 'raw-fs' ? elapsed * 1000 : undefined
  return {
    metrics: { seconds: elapsed, loopDelayP99Ms: blocked ?? delay.percentile(99) / 1e6, loopDelayMaxMs: blocked ?? delay.max / 1e6 },
    info,
  }
}

async function countFiles(dir) {
  let count = 0
  for (const entry of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) count++
  return count
}
