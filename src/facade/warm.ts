import { Slots } from '../batch-slots.js'
import type { KeyOrder } from '../key-order.js'
import type { ResolvedOptions } from '../options.js'
import type { Counters } from '../stats/counters.js'
import type { CreationClock } from '../store/creation-clock.js'
import type { MemoryTier } from '../tiers/memory-tier.js'
import type { StackRead, TierStack } from '../tiers/tier-stack.js'
import type { Loads } from './loads.js'
import type { OrderedWrites } from './ordered-writes.js'

/** What `warm()` did. */
export interface WarmReport {
  /** Keys that are local (memory or file tier) now: found there, promoted, or loaded. */
  warmed: number
  /** Keys promoted from the shared tier (Redis). */
  fromShared: number
  /** Keys the loader gave a value for, stored. */
  loaded: number
  /** Keys neither found nor loaded (the loader failed, or had nothing for them, or the cache
   *  was closed before they were stored). */
  failed: number
  /** Keys changed (set, deleted, cleared, their tags invalidated, by any process) while the
   *  loader ran: what it gave for them is older than that change, and was not stored. */
  superseded: number
}

/** Keys handed to one loader call. */
const LOADER_BATCH = 100

export interface WarmParts {
  /** The tiers a key is read through (a Redis hit is promoted into the local ones), below memory. */
  stack: TierStack
  /** Asked first: with `dir: false` (and no Redis) it is the one tier, which `stack` never reads. */
  memory: MemoryTier | undefined
  /** A key is read once the changes of it called before warm() have taken effect, as get reads. */
  order: KeyOrder
  /** Where a loaded value is stored, as set() stores it, in call order. */
  writes: OrderedWrites
  /** Each key's load, stamped when the loader is called and superseded by a change of the key
   *  (getOrSet's rule): a value loaded before a change is never stored over it. */
  loads: Loads<unknown>
  clock: CreationClock
  options: ResolvedOptions
  /** The memory tier's hit is counted there (its miss is, by the lookup below it). */
  counters: Counters
}

/**
 * Makes each key local: read through the tiers (a Redis hit is promoted), at most
 * `concurrency` at once; the keys found nowhere go to `loader(keys)`, LOADER_BATCH at a time,
 * which returns their values (an array in key order, a Map, or an object by key; `undefined`
 * for none), and those are stored.
 */
export async function warm(
  { stack, memory, order, writes, loads, clock, options, counters }: WarmParts,
  { keys, loader, concurrency }: { keys: readonly string[]; loader: ((keys: string[]) => unknown) | undefined; concurrency: number },
): Promise<WarmReport> {
  const report: WarmReport = { warmed: 0, fromShared: 0, loaded: 0, failed: 0, superseded: 0 }
  // After the changes of the key called before warm(), as get() reads: a delete still removing
  // the file was read past, and what it removed went back into memory.
  const read = (key: string): Promise<StackRead> =>
    order.afterChanges(key, async () => {
      const held = memory?.get(key)
      if (held?.found !== true) return stack.lookup(key, 0)
      counters.tiers.memory!.hits++
      return held
    })
  const missing: string[] = []
  const slots = new Slots(concurrency)
  await Promise.all(
    [...new Set(keys)].map((key) =>
      slots.run(async () => {
        const found = await read(key)
        if (found.found && !found.stale) {
          report.warmed++
          if (found.tier === 'redis') report.fromShared++
        } else missing.push(key)
      }),
    ),
  )
  for (let i = 0; i < missing.length; i += LOADER_BATCH) {
    const batch = missing.slice(i, i + LOADER_BATCH)
    const flights = batch.map((key) => loads.beginBatched(key, clock.createdAt([])))
    let values: unknown
    try {
      // A batch begun once close() began is not loaded: nothing it gave would be stored.
      values = loader === undefined || flights[0]!.closed === true ? undefined : await loader(batch)
    } catch {
      values = undefined
    }
    await Promise.all(
      batch.map((key, at) =>
        slots.run(async () => {
          const flight = flights[at]!
          try {
            const value = valueOf(values, key, at)
            if (value === undefined) {
              report.failed++
              return
            }
            const write = writes.prepare(value, undefined, [], 0, 'value', flight.createdAt)
            // flight.superseded again after the await: a change called while mayStore's
            // answer was on its way is queued first, and this older value would undo it.
            if (!(await loads.mayStore(key, flight)) || flight.superseded) {
              if (flight.closed === true) report.failed++
              else report.superseded++
              return
            }
            await writes.change(key, () => writes.write(key, write))
            report.loaded++
            // cache-aside stores in Redis only; its local tiers fill on a read, made here, so
            // that a key warmed is local as the report says
            if (options.writeStrategy !== 'cache-aside' || (await read(key)).found) report.warmed++
          } catch {
            report.failed++
          } finally {
            loads.endBatched(key, flight)
          }
        }),
      ),
    )
  }
  return report
}

function valueOf(values: unknown, key: string, at: number): unknown {
  if (Array.isArray(values)) return values[at]
  if (values instanceof Map) return values.get(key)
  if (values !== null && typeof values === 'object')
    return Object.hasOwn(values, key) ? (values as Record<string, unknown>)[key] : undefined
  return undefined
}
