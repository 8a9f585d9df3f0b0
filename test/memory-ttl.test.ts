/**
 * `memory.ttl` bounds how long a value is served from the memory tier, also when the event
 * loop does not turn: lru-cache's default keeps the time it last read until a 1 ms timer
 * clears it, so after a synchronous stretch an entry past its ttl was still served from memory.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder } from '../src/index.ts'
import { tempDir } from './helpers.ts'

const caches: Larder[] = []
after(() => Promise.all(caches.map((c) => c.close())))

test('an entry past memory.ttl is not served from memory after a synchronous stretch', async () => {
  const cache = await Larder.open({ dir: tempDir('larder-memory-ttl'), memory: { maxEntries: 10, ttl: 40 }, maintenance: false })
  caches.push(cache)
  const tiers: string[] = []
  cache.on('hit', (_key, tier) => tiers.push(tier))
  for (let attempt = 0; attempt < 5; attempt++) {
    tiers.length = 0
    await cache.set('k', { v: attempt })
    await new Promise(setImmediate) // the set's bookkeeping settled: the next get is answered at once
    const first = cache.get('k') // a memory hit, answered at once: lru-cache reads its clock here
    const until = Date.now() + 120
    while (Date.now() < until); // no turn of the event loop: lru-cache's clock timer cannot fire
    const second = cache.get('k')
    assert.deepEqual(await first, { v: attempt })
    assert.deepEqual(await second, { v: attempt }, 'read again from disk')
    if (tiers[0] !== 'memory') continue // the machine was too slow for the first get to be fresh: try again
    assert.deepEqual(tiers, ['memory', 'disk'], 'the second get, 120 ms later with a 40 ms ttl, is not a memory hit')
    return
  }
  assert.fail('the first get was never a memory hit')
})
