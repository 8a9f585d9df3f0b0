/**
 * oldestKey: the oldest key of a bounded Map or Set, for the many that let their oldest go
 * (tag stamps held, heard removals, refused changes, miss times…). Before it each of them
 * asked `map.keys().next()`, which walks from the head of V8's table over every slot a delete
 * left there: held at 10,000 entries, each insert cost ~20 µs, and merging a fleet's 200,000
 * tag stamps stalled the event loop for seconds.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { oldestKey } from '../src/oldest-key.ts'

describe('oldestKey', () => {
  test('gives keys oldest first, sees keys moved to the end and added later, and survives clear()', () => {
    const map = new Map<string, number>()
    for (const key of ['a', 'b', 'c', 'd']) map.set(key, 0)
    map.delete('a')
    map.set('a', 1) // moved to the end: now the newest
    assert.equal(oldestKey(map), 'b')
    map.delete('b')
    assert.equal(oldestKey(map), 'c')
    map.delete('c')
    map.delete('d') // removed by someone else: skipped
    map.set('e', 2)
    assert.equal(oldestKey(map), 'a')
    map.delete('a')
    assert.equal(oldestKey(map), 'e')
    map.delete('e')
    assert.equal(oldestKey(map), undefined, 'empty')
    map.set('f', 3)
    assert.equal(oldestKey(map), 'f', 'added after it ran to the end')
    map.delete('f')
    map.set('g', 4)
    map.clear()
    map.set('h', 5)
    assert.equal(oldestKey(map), 'h')
    const set = new Set([3, 1, 2])
    assert.equal(oldestKey(set), 3)
    set.delete(3)
    assert.equal(oldestKey(set), 1)
  })

  test('a Map held at a bound by it keeps exactly the newest keys', () => {
    const map = new Map<number, number>()
    for (let i = 0; i < 50_000; i++) {
      map.set(i, i)
      if (map.size > 1000) map.delete(oldestKey(map)!)
    }
    assert.equal(map.size, 1000)
    assert.deepEqual(
      [...map.keys()],
      Array.from({ length: 1000 }, (_, i) => 49_000 + i),
    )
  })
})
