import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Larder } from '../src/index.ts'
import { chooseVictims, RECORD_FIELDS } from '../src/maintenance/policy.ts'
import { footprint } from '../src/tiers/memory-tier.ts'
import { tempDir } from './helpers.ts'

const KEYS = Array.from({ length: 200 }, (_, i) => `k${String(i).padStart(3, '0')}`)
/** The 100 keys LRU and FIFO would keep after 200 writes in order (nothing read). */
const NEWEST = new Set(KEYS.slice(100))

/** The keys of `keys` a cache still answers, each checked to hold its own value. */
async function survivors(cache: Larder, keys: readonly string[]): Promise<Set<string>> {
  const kept = new Set<string>()
  for (const key of keys) {
    const value = await cache.get(key)
    if (value === undefined) continue
    assert.equal(value, `value of ${key}`, 'a surviving entry holds its own value')
    kept.add(key)
  }
  return kept
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((k) => b.has(k))
}

describe("evictionPolicy 'random'", () => {
  it('a full memory tier drops a random entry: the bound holds, and the survivors are not the most recent ones', async () => {
    const runs: Set<string>[] = []
    for (let run = 0; run < 3; run++) {
      const cache = await Larder.open({ dir: false, memory: { maxEntries: 100 }, evictionPolicy: 'random' })
      for (const key of KEYS) await cache.set(key, `value of ${key}`)
      assert.equal((await cache.stats()).memoryEntries, 100)
      const kept = await survivors(cache, KEYS)
      assert.equal(kept.size, 100, 'exactly the evicted entries are gone')
      assert.ok(!sameSet(kept, NEWEST), 'not the survivors of LRU or FIFO')
      assert.ok(
        [...kept].some((k) => !NEWEST.has(k)),
        'some of the first 100 keys survive',
      )
      runs.push(kept)
      await cache.close()
    }
    assert.ok(!sameSet(runs[0]!, runs[1]!) || !sameSet(runs[1]!, runs[2]!), 'runs choose differently')
  })

  it("configure({ evictionPolicy: 'random' }) reaches the memory tier at once, keeping what it holds", async () => {
    const cache = await Larder.open({ dir: false, memory: { maxEntries: 100 } })
    for (const key of KEYS.slice(0, 100)) await cache.set(key, `value of ${key}`)
    await cache.configure({ evictionPolicy: 'random' })
    assert.equal((await cache.stats()).memoryEntries, 100, 'nothing dropped by the change')
    for (const key of KEYS.slice(100)) await cache.set(key, `value of ${key}`)
    const kept = await survivors(cache, KEYS)
    assert.equal(kept.size, 100)
    assert.ok(!sameSet(kept, NEWEST), 'a random victim, not the least recently used')
    await cache.configure({ evictionPolicy: 'lru' })
    await cache.set('last', 'value of last')
    assert.equal((await cache.stats()).memoryEntries, 100, 'back under LRU, still within bounds')
    await cache.close()
  })

  it('a memory tier bounded by bytes keeps its byte budget under random eviction', async () => {
    // Room for exactly 100 of these entries (a 16-byte value under a 4-character key).
    const cache = await Larder.open({
      dir: false,
      memory: { maxSize: 100 * footprint('k000', 16) },
      evictionPolicy: 'random',
      serializer: 'raw',
    })
    for (const key of KEYS) await cache.set(key, Buffer.alloc(16, 1))
    assert.equal((await cache.stats()).memoryEntries, 100)
    let kept = 0
    for (const key of KEYS) if ((await cache.get(key)) !== undefined) kept++
    assert.equal(kept, 100)
    await cache.close()
  })

  it('prune evicts uniformly at random among live entries: the budget holds, expired ones go first, survivors intact', async () => {
    const runs: Set<string>[] = []
    for (let run = 0; run < 2; run++) {
      const dir = tempDir('random-prune')
      const cache = await Larder.open({ dir, maintenance: false, evictionPolicy: 'random', maxEntries: 100 })
      for (const key of KEYS) await cache.set(key, `value of ${key}`)
      await cache.set('expired', 'gone', { ttl: 1 })
      await new Promise((resolve) => setTimeout(resolve, 20)) // past its 1 ms (not read: a read would remove it)
      const report = await cache.prune()
      assert.equal(report.expired, 1, 'the expired entry went as expired, not as a victim')
      assert.equal(report.remainingEntries, 90, 'evicted to the low-water mark of maxEntries')
      assert.equal(report.evicted, 110)
      const kept = await survivors(cache, KEYS)
      assert.equal(kept.size, 90, 'only the evicted entries are gone')
      assert.ok(
        [...kept].some((k) => !NEWEST.has(k)),
        'not the survivors of LRU or FIFO',
      )
      runs.push(kept)
      await cache.close()
    }
    assert.ok(!sameSet(runs[0]!, runs[1]!), 'two runs choose differently')
  })

  it('the plan is a uniform shuffle: with a given random source it is reproducible, and each entry is as likely to go', () => {
    const count = 10
    const records = new Float64Array(count * RECORD_FIELDS)
    for (let i = 0; i < count; i++) records.set([100, i, i, i], i * RECORD_FIELDS)
    const names = Array.from({ length: count }, (_, i) => String(i).padStart(16, '0')).join('')
    const input = { policy: 'random' as const, hitsDir: '', records, names, now: 0, halfLife: 1, targetEntries: 5, targetBytes: Infinity }
    const evictedTimes = new Array<number>(count).fill(0)
    const rounds = 2000
    for (let r = 0; r < rounds; r++) {
      const plan = chooseVictims(input, undefined)
      assert.equal(plan.remainingEntries, 5)
      for (let v = 0; v < plan.names.length; v += 16) evictedTimes[Number(plan.names.slice(v, v + 16))]!++
    }
    // Each entry goes in half the rounds; 2000 rounds put 6 standard deviations within ±135.
    for (const times of evictedTimes) assert.ok(Math.abs(times - rounds / 2) < 135, `evicted ${times} times of ${rounds}`)
    let seed = 1
    const seeded = (): number => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646
    const first = chooseVictims(input, undefined, seeded).names
    seed = 1
    assert.equal(chooseVictims(input, undefined, seeded).names, first)
  })
})
