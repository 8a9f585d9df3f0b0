/**
 * The oldest key of a Map or Set (first in insertion order) for a bounded one that lets its
 * oldest go, in O(1) amortized time.
 *
 * `map.keys().next()` starts at the head of V8's table each time and walks every slot a
 * delete left there until the table is rebuilt: a Map held at 10,000 entries by deleting its
 * oldest after each insert spent ~20 µs an insert (200,000 inserts: 4.2 s, against 0.4 s),
 * which stalled the main thread for seconds when an open read a fleet's tag stamps. One
 * iterator per collection, kept, walks each slot once: each key it gave was deleted by its
 * caller, so every live entry is ahead of it, and the next it gives is the oldest.
 *
 * The caller must delete the key it is given before asking again (or it is never given again).
 */
const kept = new WeakMap<object, Iterator<unknown>>()

export function oldestKey<K>(collection: Map<K, unknown> | Set<K>): K | undefined {
  let keys = kept.get(collection) as Iterator<K> | undefined
  let next = keys?.next()
  if (next === undefined || next.done === true) {
    // None kept yet, or it ran to the end (a done iterator never sees later entries).
    keys = collection.keys()
    kept.set(collection, keys)
    next = keys.next()
  }
  return next.done === true ? undefined : next.value
}
