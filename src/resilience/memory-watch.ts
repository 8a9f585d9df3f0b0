import { isMainThread, resourceLimits } from 'node:worker_threads'
import os from 'node:os'
import v8 from 'node:v8'

/** One reading of the process's memory. */
export interface MemoryReading {
  /** Bytes of V8's old generation in use (every heap space but the young generation's: live
   *  objects and garbage not yet collected). What runs out when a process dies of OOM. */
  heapUsed: number
  /** Its limit: `--max-old-space-size` (in `process.execArgv` or `NODE_OPTIONS`) when given,
   *  else V8's `heap_size_limit`. Not `heap_size_limit` alone: it adds the young generation
   *  (48 MiB on Node 20, 192 MiB on Node 24), which on a small heap would put the high-water
   *  mark past the point of OOM. */
  heapLimit: number
  /** Resident set size of the process. */
  rss: number
  /** The process's cgroup memory limit (`process.constrainedMemory()`), or the machine's
   *  memory when there is none or it is larger. */
  rssLimit: number
}

/** An open cache watching memory: how often it wants a reading, and what to do with one. */
export interface MemoryWatcher {
  interval: number
  reading(reading: MemoryReading): void
}

/** Memory admitted to memory tiers that takes a reading without waiting for the timer. */
export const ADMITTED_PER_READING = 2 * 1024 * 1024

const watchers = new Set<MemoryWatcher>()
let timer: NodeJS.Timeout | undefined
let timerInterval = 0
let admitted = 0
let rssLimit: number | undefined
let oldSpaceLimit: number | undefined

/**
 * Every open cache of the process watches memory through this one module: a single unref'd
 * timer (never keeping the process alive), at the shortest interval any watcher asks for, takes
 * a reading and hands it to each watcher, which judges it by its own thresholds. Many caches in
 * one process must not each poll, and a reading costs a `getHeapStatistics()` and an RSS read.
 * Returns the function that stops watching (the last watcher gone stops the timer).
 */
export function watchMemory(watcher: MemoryWatcher): () => void {
  watchers.add(watcher)
  reschedule()
  return () => {
    if (watchers.delete(watcher)) reschedule()
  }
}

/**
 * Bytes just admitted to a memory tier. A loop of writes that never waits for I/O (a memory-only
 * cache) gives the timer no turn, so every ADMITTED_PER_READING admitted takes a reading at once.
 */
export function admittedToMemory(bytes: number): void {
  admitted += bytes
  if (admitted >= ADMITTED_PER_READING && watchers.size > 0) takeReading()
}

/** The process's memory now. */
export function readMemory(): MemoryReading {
  let heapUsed = 0
  for (const space of v8.getHeapSpaceStatistics())
    if (space.space_name !== 'new_space' && space.space_name !== 'new_large_object_space') heapUsed += space.space_used_size
  rssLimit ??= machineLimit()
  oldSpaceLimit ??= workerOldSpaceLimit() ?? maxOldSpaceFlag() ?? v8.getHeapStatistics().heap_size_limit
  return { heapUsed, heapLimit: oldSpaceLimit, rss: process.memoryUsage.rss(), rssLimit }
}

/** A worker thread's own old-generation limit (`resourceLimits.maxOldGenerationSizeMb`, as a
 *  pool of workers sets it), in bytes: the process's flags are not the worker's heap, and its
 *  heap_size_limit adds the young generation (past the point of OOM on a small heap). */
function workerOldSpaceLimit(): number | undefined {
  if (isMainThread) return undefined
  const megabytes = resourceLimits.maxOldGenerationSizeMb
  return megabytes !== undefined && megabytes > 0 ? megabytes * 1024 * 1024 : undefined
}

/** `--max-old-space-size` in bytes, as the process was started with it (the last one given
 *  wins, NODE_OPTIONS before the command line, as Node applies them). */
function maxOldSpaceFlag(): number | undefined {
  const args = [...(process.env.NODE_OPTIONS ?? '').split(/\s+/), ...process.execArgv]
  let megabytes: number | undefined
  for (let i = 0; i < args.length; i++) {
    const match = /^--max[-_]old[-_]space[-_]size(?:=(.*))?$/.exec(args[i]!)
    if (match === null) continue
    const value = Number(match[1] ?? args[i + 1])
    if (Number.isFinite(value) && value > 0) megabytes = value
  }
  return megabytes === undefined ? undefined : megabytes * 1024 * 1024
}

/** The cgroup limit when there is one below the machine's memory (read once: reading it costs
 *  file reads, and a process's limit is set before it starts). */
function machineLimit(): number {
  const total = os.totalmem()
  const constrained = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0
  return constrained > 0 && constrained < total ? constrained : total
}

function takeReading(): void {
  admitted = 0
  const reading = readMemory()
  for (const watcher of watchers) {
    try {
      watcher.reading(reading)
    } catch (error) {
      // A cache hears its 'pressure' listeners' throws as 'error' (cache-parts.ts); whatever
      // else a reading throws reaches the host, but must not keep the other caches from theirs.
      process.nextTick(() => {
        throw error
      })
    }
  }
}

function reschedule(): void {
  const interval = Math.min(...[...watchers].map((w) => w.interval))
  if (watchers.size === 0) {
    clearInterval(timer)
    timer = undefined
    return
  }
  if (timer !== undefined && interval === timerInterval) return
  clearInterval(timer)
  timerInterval = interval
  timer = setInterval(takeReading, interval)
  timer.unref()
}
