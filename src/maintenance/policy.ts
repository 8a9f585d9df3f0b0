import type { EvictionPolicy } from '../options.js'

/** Per-entry numbers in a scan's records: size, mtimeMs, createdAt, ino. */
export const RECORD_FIELDS = 4

export interface PlanInput {
  policy: EvictionPolicy
  hitsDir: string
  /** Survivors of the scan, from every scan task: RECORD_FIELDS numbers per entry. */
  records: Float64Array
  /** Their file names, 16 characters each, concatenated in the same order. */
  names: string
  /** For LFU: hit counts are weighed by their age at `now`, halved every `halfLife` ms. */
  now: number
  halfLife: number
  /** Entries and bytes to keep at most. */
  targetEntries: number
  targetBytes: number
}

export interface PlanOutput {
  /** Victims' names (16 characters each), in eviction order. */
  names: string
  /** size, mtimeMs, ino per victim. */
  facts: Float64Array
  /** What remains if every victim goes. */
  remainingEntries: number
  remainingBytes: number
}

/**
 * Picks the entries to evict until at most `targetEntries` and `targetBytes` remain:
 * least recently used first (mtime, refreshed on hits), fewest hits first (counts decayed
 * by age; ties: least recent), oldest created first, or (`'random'`) in a uniformly random
 * order; before all of them, any entry larger than `targetBytes` by itself. A pure function
 * of its input and, for `'random'`, of `random` (a number in [0, 1)).
 */
export function chooseVictims(input: PlanInput, hits: Map<string, number> | undefined, random: () => number = Math.random): PlanOutput {
  const { records, names } = input
  const count = names.length / 16
  let entries = count
  let bytes = 0
  for (let i = 0; i < count; i++) bytes += records[i * RECORD_FIELDS]!
  if (entries <= input.targetEntries && bytes <= input.targetBytes) {
    return { names: '', facts: new Float64Array(0), remainingEntries: entries, remainingBytes: bytes }
  }
  const order = new Uint32Array(count)
  for (let i = 0; i < count; i++) order[i] = i
  const mtime = (i: number): number => records[i * RECORD_FIELDS + 1]!
  const created = (i: number): number => records[i * RECORD_FIELDS + 2]!
  let compare: ((a: number, b: number) => number) | undefined
  if (input.policy === 'random') shuffle(order, random)
  else if (input.policy === 'fifo') compare = (a, b) => created(a) - created(b)
  else if (input.policy === 'lfu') {
    const counts = new Float64Array(count)
    for (let i = 0; i < count; i++) counts[i] = hits?.get(names.slice(i * 16, i * 16 + 16)) ?? 0
    compare = (a, b) => counts[a]! - counts[b]! || mtime(a) - mtime(b)
  } else compare = (a, b) => mtime(a) - mtime(b)
  if (compare !== undefined) order.sort(compare)
  // An entry larger than the target alone goes first, whatever the policy: no plan that meets
  // the target keeps it, so evicting the others before it would only lose them too (one set
  // of an entry over maxSize used to empty the namespace, itself last). Stable: policy order
  // within each part.
  const huge = order.filter((i) => records[i * RECORD_FIELDS]! > input.targetBytes)
  if (huge.length > 0) {
    const rest = order.filter((i) => records[i * RECORD_FIELDS]! <= input.targetBytes)
    order.set(huge)
    order.set(rest, huge.length)
  }

  const victims: string[] = []
  const facts: number[] = []
  for (let k = 0; k < count && (entries > input.targetEntries || bytes > input.targetBytes); k++) {
    const i = order[k]!
    const size = records[i * RECORD_FIELDS]!
    victims.push(names.slice(i * 16, i * 16 + 16))
    facts.push(size, mtime(i), records[i * RECORD_FIELDS + 3]!)
    entries--
    bytes -= size
  }
  return { names: victims.join(''), facts: Float64Array.from(facts), remainingEntries: entries, remainingBytes: bytes }
}

/** Fisher–Yates: every order of `items` equally likely (given a uniform `random`). */
function shuffle(items: Uint32Array, random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const held = items[i]!
    items[i] = items[j]!
    items[j] = held
  }
}
