import { inspect, isDeepStrictEqual, type InspectOptionsStylized } from 'node:util'
import type { OptionSource } from '../config/layered-options.js'
import { getPath, isPlainObject, mergeOptions, type OptionTree } from '../config/option-paths.js'
import { OPTION_ROWS, type OptionRow } from '../config/option-table.js'
import { LarderError } from '../errors.js'
import { recordBudget } from '../maintenance/budget-record.js'
import { resolveOptions, withoutCredentials, type ResolvedOptions } from '../options.js'
import type { CacheParts } from './cache-parts.js'

/** One option `configure()` changed (the `'configure'` event carries the list). A secret's
 *  values read `'(hidden)'`. */
export interface ConfigChange {
  /** The option's path, as in the option table: `'memory.maxEntries'`. */
  field: string
  from: unknown
  to: unknown
}

/** What configure() works on: the parts, the live options they read, what the cache was
 *  opened with, and where each value came from. */
export interface ReconfigureState {
  parts: CacheParts
  /** The object every part reads its changeable options from; changed in place. */
  live: ResolvedOptions
  input: OptionTree
  sources: Record<string, OptionSource>
  /** The fields of a group configure() turned off (`maintenance: false` over `{ interval }`),
   *  kept for when it is turned on again. */
  parked?: Map<string, OptionTree>
}

/** The groups that turn on and off (`maintenance`, `memory`, `memoryPressure`). */
const SWITCHES = OPTION_ROWS.filter((row) => row.env === 'switch').map((row) => row.path)

/**
 * `cache.configure(partial)`: the partial is merged over the options the cache runs with and
 * the whole validated again by resolveOptions, so a bad partial (a bad value, an option that
 * cannot change live, a strategy without Redis) throws before anything changed. Then, in one
 * synchronous step, the changed fields are replaced in the live options object and the parts
 * that copied a value at construction are told: the memory tier takes its new bounds (shrinking
 * at once), the disk breaker its thresholds, automatic maintenance its interval and budget (a
 * run starts if the cache is now over budget), and the budget record is rewritten for the CLI.
 * Everything else (ttl, codec, level, threshold, durability, write strategy, eviction policy,
 * low water) is read from the live object at each use, so it applies to the next write, prune
 * or stream: entries already written keep their codec.
 *
 * An option given as `undefined` returns to its default (`{ maxSize: undefined }`: no budget).
 * An option the table marks not live (`dir`, `namespace`, `serializer`, the Redis connection…)
 * is refused when the partial would change it, naming it; given with its current value, it is
 * accepted and changes nothing (a reloaded config file repeats every option).
 */
export function reconfigure(state: ReconfigureState, partial: unknown): ConfigChange[] {
  if (!isPlainObject(partial)) {
    throw new LarderError('ERR_INVALID_OPTION', 'Invalid configure() argument: expected an object of options', { field: 'options' })
  }
  for (const name of ['profile', 'config'])
    if (partial[name] !== undefined) throw notLive(name, 'a profile and the config sources are chosen when the cache opens')
  const parked = new Map(state.parked)
  const input = mergeOptions(state.input, unparked(state.input, partial, parked), true)
  const next = resolveOptions(input)
  const { live } = state
  const changed = OPTION_ROWS.filter((row) => row.path !== 'profile' && !isDeepStrictEqual(valueOf(next, row), valueOf(live, row)))
  const refused = changed.find((row) => !row.live)
  if (refused !== undefined) throw notLive(refused.path, 'close the cache and open it again with the new value')
  if (changed.length === 0) return []

  const changes = changed.map((row) => ({ field: row.path, from: shown(row, valueOf(live, row)), to: shown(row, valueOf(next, row)) }))
  const touched = new Set(changed.map((row) => row.path.split('.')[0]!))
  const target = live as unknown as Record<string, unknown>
  for (const name of touched) target[name] = (next as unknown as Record<string, unknown>)[name]
  state.input = input
  state.parked = parked
  for (const row of changed) state.sources[row.path] = 'configure'
  applyToParts(state.parts, live, touched)
  return changes
}

/**
 * `partial` with each group it turns on again given the fields it had when configure() turned
 * it off: `true` keeps what lies below it, as in the merge of sources (so `{ maintenance: false
 * }` then `{ maintenance: true }` brings back the interval set before, not the defaults), and
 * fields given with it merge over those. `parked` is updated: a group turned off keeps its
 * fields there; one turned on again, or given as undefined (its default), lets them go.
 */
function unparked(input: OptionTree, partial: OptionTree, parked: Map<string, OptionTree>): OptionTree {
  let result = partial
  for (const name of SWITCHES) {
    if (!Object.hasOwn(partial, name)) continue
    const value = partial[name]
    const before = input[name]
    if (value === false) {
      if (isPlainObject(before)) parked.set(name, before)
      continue
    }
    const kept = parked.get(name)
    parked.delete(name)
    if (kept === undefined || before !== false) continue
    if (value === true) result = { ...result, [name]: kept }
    else if (isPlainObject(value)) result = { ...result, [name]: mergeOptions(kept, value, true, `${name}.`) }
  }
  return result
}

/** Tells the parts that copied a value at construction. */
function applyToParts(parts: CacheParts, live: ResolvedOptions, touched: Set<string>): void {
  if ((touched.has('memory') || touched.has('evictionPolicy')) && live.memory !== false)
    parts.memory?.resize({ ...live.memory, eviction: live.evictionPolicy === 'random' ? 'random' : 'lru' })
  if (touched.has('maintenance')) parts.sharedPrune?.reconfigured()
  const disk = parts.disk
  if (disk === undefined) return
  if (touched.has('breaker')) disk.breaker.reconfigure(live.breaker)
  const budget = touched.has('maxSize') || touched.has('maxEntries') || touched.has('evictionPolicy')
  if (budget && !live.readOnly) {
    const { maxSize, maxEntries, evictionPolicy } = live
    try {
      disk.bookkeeping(() => recordBudget(disk.layout, { maxSize, maxEntries, evictionPolicy }))
    } catch {
      // a failing disk (counted by the breaker): the record is rewritten at the next open
    }
  }
  if (budget || touched.has('maintenance')) disk.autoPrune.reconfigured()
}

/** An option's value as the table sees it: the memory tier and maintenance as on or off. */
export function valueOf(options: Readonly<ResolvedOptions>, row: OptionRow): unknown {
  if (row.path === 'memory') return options.memory !== false
  if (row.path === 'maintenance') return options.maintenance.auto
  // The keyring is a class, not a tree of options: compared by its ids and keys.
  if (row.path === 'encryption.keys') return options.encryption?.identity()
  if (row.path === 'encryption.activeKey') return options.encryption?.activeKey
  return getPath(options, row.path)
}

function shown(row: OptionRow, value: unknown): unknown {
  return row.secret === true ? '(hidden)' : value
}

function notLive(field: string, why: string): LarderError {
  return new LarderError('ERR_INVALID_OPTION', `Invalid option "${field}": cannot change while the cache runs (${why})`, { field })
}

/** What `cache.options` shows: a deep copy of the live options that a caller cannot use to
 *  change them (plain data copied and frozen; behaviour, a custom serializer or a Redis
 *  client, is the caller's own object, shared as given). */
export function optionsSnapshot(live: ResolvedOptions): Readonly<ResolvedOptions> {
  const copy = (value: unknown, name: string): unknown => {
    if (!isPlainObject(value) || name === 'serializer') return value
    const copied = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copy(v, k)]))
    if (name === 'redis' && typeof copied.url === 'string') showsNoCredentials(copied)
    return Object.freeze(copied)
  }
  return copy(live, '') as ResolvedOptions
}

/** `redis` as logged (JSON.stringify, util.inspect, console.log): its URL without the user and
 *  password, which a host that logs its configuration would otherwise print. `options.redis.url`
 *  itself stays the URL the cache connects with. */
function showsNoCredentials(redis: Record<string, unknown>): void {
  const shown = (): Record<string, unknown> => ({ ...redis, url: withoutCredentials(redis.url as string) })
  Object.defineProperty(redis, 'toJSON', { value: shown })
  Object.defineProperty(redis, inspect.custom, {
    value: (_depth: number, options: InspectOptionsStylized, show: typeof inspect) => show(shown(), options),
  })
}
