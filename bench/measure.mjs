// Small helpers every case shares: concurrency, a fixed read order, GC before timing, RSS
// sampling, and the checks that make every read count only if it returned the right value.
import fsp from 'node:fs/promises'
import path from 'node:path'
import { smallValue } from './data.mjs'

/** Runs task(i) for i in [0, n) with `conc` calls in flight. */
export async function inFlight(n, conc, task) {
  let next = 0
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await task(i)
  }
  await Promise.all(Array.from({ length: Math.min(conc, n) }, worker))
}

/** A fixed permutation of [0, n): reads do not arrive in write order. */
export function shuffled(n) {
  const order = Array.from({ length: n }, (_, i) => i)
  let s = 12345
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff
    const j = s % (i + 1)
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return order
}

/** Two full collections, so garbage from preparing the data is not billed to the timed part. */
export function settle() {
  globalThis.gc?.()
  globalThis.gc?.()
}

export const seconds = (since) => (performance.now() - since) / 1000

/** Samples RSS every 20 ms; `stop()` returns the peak growth over the baseline in MiB. */
export function rssSampler() {
  settle()
  const baseline = process.memoryUsage.rss()
  let peak = baseline
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss()
    if (rss > peak) peak = rss
  }, 20)
  return {
    baseline,
    stop() {
      clearInterval(timer)
      peak = Math.max(peak, process.memoryUsage.rss())
      return (peak - baseline) / 2 ** 20
    },
  }
}

/** A read only counts if it returned exactly the rows that were stored for key i. Comparing
 *  the JSON catches a value of another key, a truncated value, or a half-written one. */
export function checkRows(value, i, expected = JSON.stringify(smallValue(i))) {
  const got = value === undefined ? 'undefined' : JSON.stringify(value)
  if (got !== expected) throw new Error(`wrong value for key ${i}: ${String(got).slice(0, 80)}`)
}

/** Bytes in every file below `dir` (file sizes, not blocks): what an implementation left on disk. */
export async function diskBytes(dir) {
  let total = 0
  for (const entry of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await fsp.stat(path.join(entry.parentPath ?? entry.path, entry.name))).size
  }
  return total
}
