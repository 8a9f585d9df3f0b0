import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { Larder, LarderError, type ConfigChange } from '../src/index.ts'
import { tempDir } from './helpers.ts'

function refused(field: string, pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof LarderError, String(error))
    assert.equal(error.code, 'ERR_INVALID_OPTION')
    assert.equal(error.field, field)
    assert.match(error.message, pattern)
    return true
  }
}

/** A value big and plain enough to be compressed (over the 4 KiB threshold). */
function bulky(label: string, round: number): string {
  return `${label}:${round}:`.repeat(600)
}

describe('configure(): runtime reconfiguration', () => {
  test('changes defaultTtl for new writes, says what changed (event and result), and records the source', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-live') })
    try {
      const heard: ConfigChange[][] = []
      cache.on('configure', (changes) => heard.push(changes))
      const changes = await cache.configure({ defaultTtl: '1h' })
      assert.deepEqual(changes, [{ field: 'defaultTtl', from: 0, to: 3_600_000 }])
      assert.deepEqual(heard, [changes])
      assert.equal(cache.options.defaultTtl, 3_600_000)
      assert.equal(cache.optionSources.defaultTtl, 'configure')
      // A snapshot: it cannot be used to change the options behind configure()'s back.
      assert.ok(Object.isFrozen(cache.options) && Object.isFrozen(cache.options.maintenance))
      assert.throws(() => {
        ;(cache.options.maintenance as { interval: number }).interval = 1
      }, TypeError)
      await cache.set('k', 1)
      const info = await cache.info('k')
      assert.ok(typeof info?.expiresAt === 'number' && info.expiresAt > Date.now() + 3_500_000, 'the new ttl applies')
      assert.deepEqual(await cache.configure({ defaultTtl: '1h' }), [], 'the same value changes nothing')
      assert.equal(heard.length, 1, 'and emits nothing')
    } finally {
      await cache.close()
    }
  })

  test('refuses what cannot change live, naming the field, and a bad partial changes nothing', async () => {
    const dir = tempDir('larder-live')
    const cache = await Larder.open({ dir, namespace: 'a', memory: true })
    try {
      await assert.rejects(cache.configure({ dir: tempDir('larder-live') }), refused('dir', /cannot change while the cache runs/))
      await assert.rejects(cache.configure({ namespace: 'b' }), refused('namespace', /cannot change while the cache runs/))
      await assert.rejects(cache.configure({ serializer: 'v8' }), refused('serializer', /cannot change while the cache runs/))
      await assert.rejects(cache.configure({ memory: false }), refused('memory', /cannot change while the cache runs/))
      await assert.rejects(cache.configure({ writeStrategy: 'write-back' }), refused('writeStrategy', /needs a shared tier/))
      // Validated as a whole: the good half of a bad partial is not applied either.
      await assert.rejects(cache.configure({ defaultTtl: '1m', maxSize: 'lots' }), refused('maxSize', /not a size/))
      assert.equal(cache.options.defaultTtl, 0)
      assert.equal(cache.optionSources.defaultTtl, 'default')
      // Given with its current value, a fixed option is accepted (a reloaded file repeats it).
      assert.deepEqual(await cache.configure({ dir, namespace: 'a', compression: 'gzip' }), [
        { field: 'compression', from: 'deflate', to: 'gzip' },
      ])
    } finally {
      await cache.close()
    }
  })

  test('the memory tier shrinks at once to new bounds, keeping the most recently used', async () => {
    const cache = await Larder.open({ dir: false, memory: { maxEntries: 100 } })
    try {
      for (let i = 0; i < 100; i++) await cache.set(`k${i}`, i)
      await cache.get('k0') // the most recent now
      await cache.configure({ memory: { maxEntries: 10 } })
      assert.equal((await cache.stats()).memoryEntries, 10)
      assert.equal(await cache.get('k0'), 0, 'the most recently used stays')
      assert.equal(await cache.get('k1'), undefined, 'the least recently used went')
      assert.equal(await cache.get('k99'), 99)
      assert.deepEqual(cache.options.memory, { maxEntries: 10, maxSize: undefined, ttl: 0 })
    } finally {
      await cache.close()
    }
  })

  test('memory bounds merge over those given, judged as at open: maxSize alone over memory: true lifts the default entry bound, and says so', async () => {
    const cache = await Larder.open({ dir: false, memory: true })
    try {
      assert.deepEqual(await cache.configure({ memory: { maxSize: '1MB' } }), [
        { field: 'memory.maxEntries', from: 10_000, to: undefined },
        { field: 'memory.maxSize', from: undefined, to: 1_000_000 },
      ])
      await cache.configure({ memory: { maxEntries: 10_000 } })
      assert.equal(cache.options.memory && cache.options.memory.maxEntries, 10_000)
      assert.equal(cache.options.memory && cache.options.memory.maxSize, 1_000_000, 'kept: given by the earlier call')
    } finally {
      await cache.close()
    }
  })

  test('a lower budget starts a prune that brings the cache within it; undefined removes the budget', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-live'), maintenance: { interval: 0 } })
    try {
      for (let i = 0; i < 40; i++) await cache.set(`k${i}`, i)
      assert.equal((await cache.stats()).entries, 40)
      const pruned = once(cache, 'prune')
      await cache.configure({ maxEntries: 20 })
      await pruned
      assert.ok((await cache.stats()).entries <= 20, 'within the new budget')
      await cache.configure({ maxEntries: undefined })
      assert.equal(cache.options.maxEntries, undefined)
    } finally {
      await cache.close()
    }
  })

  test('compression, level and threshold apply to new writes; entries already written keep their codec', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-live') })
    try {
      await cache.set('before', bulky('before', 0))
      await cache.configure({ compression: 'brotli', compressionLevel: 5 })
      await cache.set('after', bulky('after', 0))
      await cache.configure({ compressThreshold: '1MB' })
      await cache.set('plain', bulky('plain', 0))
      assert.equal((await cache.info('before'))?.compression, 'deflate')
      assert.equal((await cache.info('after'))?.compression, 'brotli')
      assert.equal((await cache.info('plain'))?.compression, 'none')
      assert.equal(await cache.get('before'), bulky('before', 0))
      assert.equal(await cache.get('after'), bulky('after', 0))
    } finally {
      await cache.close()
    }
  })

  test('breaker thresholds, maintenance interval and eviction policy change live', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-live') })
    try {
      const changes = await cache.configure({
        breaker: { errorThresholdPercentage: 90, resetTimeout: '1m', timeout: '5s' },
        maintenance: { interval: '5m' },
        evictionPolicy: 'lfu',
      })
      assert.deepEqual(
        changes.map((c) => c.field),
        ['breaker.errorThresholdPercentage', 'breaker.resetTimeout', 'breaker.timeout', 'evictionPolicy', 'maintenance.interval'],
      )
      assert.equal(cache.options.breaker.timeout, 5000)
      await cache.set('k', 1) // through the breaker with its new timeout
      assert.equal(await cache.get('k'), 1)
      await assert.rejects(cache.configure({ breaker: { volumeThreshold: 50 } }), refused('breaker.volumeThreshold', /cannot change/))
    } finally {
      await cache.close()
    }
  })

  test('maintenance turned off and on again keeps the settings it had (true keeps what is below, as in a merge); fields given with it merge over them', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-live'), maintenance: { interval: '5m', lowWater: 0.8 } })
    try {
      await cache.configure({ maintenance: false })
      assert.equal(cache.options.maintenance.auto, false)
      const on = await cache.configure({ maintenance: true })
      assert.equal(cache.options.maintenance.auto, true)
      assert.equal(cache.options.maintenance.interval, 300_000, 'the interval given before')
      assert.equal(cache.options.maintenance.lowWater, 0.8)
      assert.ok(
        on.some((c) => c.field === 'maintenance.interval' && c.to === 300_000),
        'the change says the interval came back',
      )
      await cache.configure({ maintenance: false })
      await cache.configure({ maintenance: { lowWater: 0.7 } })
      assert.deepEqual(
        [cache.options.maintenance.auto, cache.options.maintenance.interval, cache.options.maintenance.lowWater],
        [true, 300_000, 0.7],
      )
      await cache.configure({ maintenance: false })
      await cache.configure({ maintenance: undefined }) // back to the default: on, default interval
      assert.deepEqual([cache.options.maintenance.auto, cache.options.maintenance.interval], [true, 3_600_000])
    } finally {
      await cache.close()
    }
  })

  test('under concurrent traffic, changing codec, budgets and memory size loses and garbles nothing', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-live'), memory: { maxEntries: 64 }, maintenance: { interval: 0 } })
    try {
      const keys = Array.from({ length: 24 }, (_, i) => `key${i}`)
      const last = new Map<string, string>()
      const wrong: string[] = []
      const settings = [
        { compression: 'gzip' as const, compressionLevel: 6, memory: { maxEntries: 8 } },
        { compression: 'brotli' as const, compressionLevel: 3, memory: { maxEntries: 128 }, maxSize: '100MB' },
        { compression: 'none' as const, compressionLevel: 0, memory: { maxEntries: 4 }, maxEntries: 1000 },
        { compression: 'deflate' as const, compressionLevel: 1, memory: { maxEntries: 32 }, maxSize: undefined, compressThreshold: 100 },
      ]
      for (let round = 0; round < 12; round++) {
        const traffic = keys.flatMap((key) => {
          const value = bulky(key, round)
          last.set(key, value)
          return [
            cache.set(key, value),
            cache.get(key).then((got) => {
              // A read in call order after its set: exactly that value.
              if (got !== value) wrong.push(`${key}@${round}: ${String(got).slice(0, 20)}`)
            }),
          ]
        })
        // configure() lands between the calls already made and those still to come.
        await Promise.all([...traffic, cache.configure(settings[round % settings.length]!)])
      }
      assert.deepEqual(wrong, [])
      for (const key of keys) assert.equal(await cache.get(key), last.get(key), key)
      // And from disk, the memory tier emptied.
      await cache.configure({ memory: { maxEntries: 1 } })
      for (const key of keys) assert.equal(await cache.get(key), last.get(key), `${key} from disk`)
    } finally {
      await cache.close()
    }
  })
})
