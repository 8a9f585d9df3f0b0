// Maintenance at scale, larder alone (the side-by-side with cacache.verify() and bentocache's
// prune is W7 in run.mjs). For N entries (default 100,000, ~1 KiB JSON each):
//   - stats(): how long it answers (running totals, no scan), median of 200 calls;
//   - prune({ maxEntries: N/2 }): wall time, while the main thread keeps serving get()s and
//     perf_hooks.monitorEventLoopDelay records its p99;
//   - verify(): wall time (every byte checksummed).
// Each step in this one process, after the data set is written by the same process; repeat
// with --runs to get a median. Usage (after npm run build):
//   node bench/maintenance.mjs [--entries 100000] [--runs 3]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { smallKey, smallValue } from './data.mjs'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`)
  return at === -1 ? fallback : Number(args[at + 1])
}
const entries = option('entries', 100_000)
const runs = option('runs', 3)
const { Larder } = await import(new URL('../dist/index.js', import.meta.url).href)

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const results = []
for (let run = 0; run < runs; run++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-bench-maint-'))
  const cache = await Larder.open({ dir, maintenance: false })
  const values = Array.from({ length: 64 }, (_, i) => smallValue(i))
  for (let i = 0; i < entries; i++) await cache.set(smallKey(i), values[i % 64])
  await new Promise((resolve) => setTimeout(resolve, 300)) // let the totals flush

  const statTimes = []
  for (let i = 0; i < 200; i++) {
    const t = performance.now()
    const s = await cache.stats()
    statTimes.push(performance.now() - t)
    if (s.entries !== entries) throw new Error(`stats says ${s.entries} entries, wrote ${entries}`)
  }

  const delay = monitorEventLoopDelay({ resolution: 5 })
  let served = 0
  let serving = true
  const reader = (async () => {
    for (let i = 0; serving; i++) {
      await cache.get(smallKey((i * 7919) % entries))
      served++
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  delay.enable()
  const t0 = performance.now()
  const report = await cache.prune({ maxEntries: Math.floor(entries / 2) })
  const pruneMs = performance.now() - t0
  delay.disable()
  serving = false
  await reader
  if (report.remainingEntries !== Math.floor(entries / 2)) throw new Error(`prune left ${report.remainingEntries}`)

  const t1 = performance.now()
  const verified = await cache.verify()
  const verifyMs = performance.now() - t1
  if (verified.corrupt !== 0 || verified.entries !== report.remainingEntries) throw new Error('verify disagrees with prune')
  await cache.close()
  fs.rmSync(dir, { recursive: true, force: true })

  const row = {
    statsMsMedian: median(statTimes),
    pruneMs,
    evicted: report.evicted,
    evictedPerSec: report.evicted / (pruneMs / 1000),
    scannedPerSec: report.scanned / (pruneMs / 1000),
    loopDelayP99Ms: delay.percentile(99) / 1e6,
    getsServedDuringPrune: served,
    verifyMs,
    verifiedPerSec: verified.scanned / (verifyMs / 1000),
  }
  results.push(row)
  console.error(`run ${run + 1}/${runs}: ${JSON.stringify(row)}`)
}

const fields = Object.keys(results[0])
console.log(`\n### larder maintenance, ${entries.toLocaleString('en-US')} entries (~1 KiB), median of ${runs} (min–max)\n`)
console.log('| metric | median | min–max |\n|---|---:|---|')
for (const f of fields) {
  const xs = results.map((r) => r[f])
  const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2))
  console.log(`| ${f} | ${fmt(median(xs))} | ${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))} |`)
}
