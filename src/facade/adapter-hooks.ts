/**
 * The keys of `Larder`'s methods for larder's own adapters (src/adapters/), not part of the
 * documented API. Registered symbols (`Symbol.for`), not exports: the adapters reach larder
 * through the package name, possibly a second copy of it (an app's ESM import beside a
 * library's CJS require), and every copy names the same symbols. This file imports nothing,
 * so an adapter's bundle takes none of the core with it.
 */

/** A get answered at once from the memory tier, handed back without wrapping
 *  (src/adapters/cache-source.ts). */
export const memoryAnswer: unique symbol = Symbol.for('larder.memoryAnswer') as never

/** The keys of entries carrying any of some tags that the directory does not list: the memory
 *  tier's and Redis's, less those the directory holds live under the tags (facade/tagged-keys.ts). A host library's listing (Keyv's `iterator()`)
 *  must see what other hosts wrote to Redis, which this host's directory never held, and with
 *  `dir: false` what only memory holds. */
export const taggedKeys: unique symbol = Symbol.for('larder.taggedKeys') as never

/** entries() a batch at a time (facade/operator-calls.ts `entryBatches`): an async iterable
 *  of arrays, each the live entries of a few partitions, listed in worker threads no further
 *  ahead of the caller than the pool has workers, so memory holds a few batches however many
 *  entries there are. Keyv's `iterator()` and `larder ls --limit` list through it. */
export const entryBatches: unique symbol = Symbol.for('larder.entryBatches') as never

/** prune() of the entries a `pattern` or `tags` select and of nothing else (worker.ts
 *  PruneFilters `onlyMatching`): no expired entry that does not match, no damaged file, no
 *  stray temp file, no eviction, no Redis entry but those matching. `larder rm --pattern/--tag`
 *  removes through it, so it removes and counts exactly what it was asked to. */
export const removeMatching: unique symbol = Symbol.for('larder.removeMatching') as never
