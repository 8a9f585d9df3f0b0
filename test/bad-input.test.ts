import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Larder, LarderError } from '../src/index.ts'
import fs from 'node:fs'
import { entryFiles, listFiles, tempDir } from './helpers.ts'

const circular: Record<string, unknown> = {}
circular.self = circular

type Case = [label: string, run: (cache: Larder) => Promise<unknown>, code: string, field?: string]

const cases: Case[] = [
  ['an empty key', (c) => c.set('', 1), 'ERR_INVALID_KEY', 'key'],
  ['a number key', (c) => c.set(42 as never, 1), 'ERR_INVALID_KEY', 'key'],
  ['an undefined key', (c) => c.get(undefined as never), 'ERR_INVALID_KEY', 'key'],
  ['a key over 8 KiB', (c) => c.set('k'.repeat(8193), 1), 'ERR_INVALID_KEY', 'key'],
  ['a 10 MB key', (c) => c.has('k'.repeat(10_000_000)), 'ERR_INVALID_KEY', 'key'],
  ['a key with NUL', (c) => c.set('a\0b', 1), 'ERR_INVALID_KEY', 'key'],
  ['a key with a lone surrogate', (c) => c.set('a\uD800', 1), 'ERR_INVALID_KEY', 'key'],
  ['an undefined value', (c) => c.set('k', undefined), 'ERR_INVALID_VALUE', 'value'],
  ['a circular value', (c) => c.set('k', circular), 'ERR_SERIALIZE', 'value'],
  ['a function value', (c) => c.set('k', () => 1), 'ERR_SERIALIZE', 'value'],
  ['a BigInt with JSON', (c) => c.set('k', 1n), 'ERR_SERIALIZE', 'value'],
  ['a negative ttl', (c) => c.set('k', 1, { ttl: -1 }), 'ERR_INVALID_TTL', 'ttl'],
  ['a NaN ttl', (c) => c.set('k', 1, { ttl: Number.NaN }), 'ERR_INVALID_TTL', 'ttl'],
  ['an Infinity ttl', (c) => c.set('k', 1, { ttl: Number.POSITIVE_INFINITY }), 'ERR_INVALID_TTL', 'ttl'],
  ['an unparseable ttl', (c) => c.set('k', 1, { ttl: 'soon' }), 'ERR_INVALID_TTL', 'ttl'],
  ['a null ttl', (c) => c.set('k', 1, { ttl: null as never }), 'ERR_INVALID_TTL', 'ttl'],
  ['tags that are not an array', (c) => c.set('k', 1, { tags: 'users' as never }), 'ERR_INVALID_VALUE', 'tags'],
  ['an empty tag', (c) => c.set('k', 1, { tags: [''] }), 'ERR_INVALID_VALUE', 'tags[0]'],
  ['an unknown set option', (c) => c.set('k', 1, { tll: 5 } as never), 'ERR_INVALID_OPTION', 'tll'],
  [
    'setMany with one bad item',
    (c) =>
      c.setMany([
        { key: 'ok', value: 1 },
        { key: '', value: 2 },
      ]),
    'ERR_INVALID_KEY',
    'items[1].key',
  ],
  [
    'setMany with an unserializable item',
    (c) =>
      c.setMany([
        { key: 'ok', value: 1 },
        { key: 'x', value: circular },
      ]),
    'ERR_SERIALIZE',
    'items[1].value',
  ],
  ['getMany of a non-array', (c) => c.getMany('k' as never), 'ERR_INVALID_KEY', 'keys'],
  ['deleteMany with a bad key', (c) => c.deleteMany(['a', 7 as never]), 'ERR_INVALID_KEY', 'keys[1]'],
  ['getOrSet without a loader', (c) => c.getOrSet('k', 'nope' as never), 'ERR_INVALID_VALUE', 'loader'],
  ['getOrSet with a negative grace', (c) => c.getOrSet('k', () => 1, { grace: -5 }), 'ERR_INVALID_TTL', 'grace'],
  ['increment by NaN', (c) => c.increment('k', Number.NaN), 'ERR_INVALID_VALUE', 'delta'],
  ['decrement by a string', (c) => c.decrement('k', '1' as never), 'ERR_INVALID_VALUE', 'delta'],
  ['setStream of a number', (c) => c.setStream('k', 5 as never), 'ERR_INVALID_VALUE', 'source'],
  ['invalidateTags of a string', (c) => c.invalidateTags('users' as never), 'ERR_INVALID_VALUE', 'tags'],
  // Not "no tags" as a left-out option is: invalidating nothing without a word hides the mistake.
  ['invalidateTags of undefined', (c) => c.invalidateTags(undefined as never), 'ERR_INVALID_VALUE', 'tags'],
  // null is no default: refused as warm's loader of null is (it ran with 16 at once).
  ['warm with a null concurrency', (c) => c.warm(['k'], { concurrency: null as never }), 'ERR_INVALID_OPTION', 'concurrency'],
]

describe('bad input', () => {
  for (const [label, run, code, field] of cases) {
    test(`${label} is rejected with ${code} and nothing is written`, async () => {
      const dir = tempDir()
      const cache = await Larder.open({ dir })
      const before = listFiles(dir)
      await assert.rejects(run(cache), (error: unknown) => {
        assert.ok(error instanceof LarderError, `not a LarderError: ${String(error)}`)
        assert.equal(error.code, code)
        if (field !== undefined) assert.equal(error.field, field)
        if (field !== undefined)
          assert.ok(error.message.includes(field.replace(/\[\d+\].*/, '')), `message names the field: ${error.message}`)
        return true
      })
      assert.deepEqual(listFiles(dir), before)
      await cache.close()
    })
  }

  const optionCases: [string, Record<string, unknown>, string][] = [
    ['an unknown option', { dri: '/tmp/x' }, 'dri'],
    ['an empty dir', { dir: '' }, 'dir'],
    ['a bad compression', { compression: 'lz4' }, 'compression'],
    ['an out-of-range level', { compression: 'gzip', compressionLevel: 12 }, 'compressionLevel'],
    ['a bad serializer', { serializer: 'yaml' }, 'serializer'],
    ['a half custom serializer', { serializer: { serialize: () => '' } }, 'serializer'],
    ['a bad defaultTtl', { defaultTtl: '-5m' }, 'defaultTtl'],
    ['a bad memory option', { memory: { maxEntries: 0 } }, 'memory.maxEntries'],
    ['an unknown memory option', { memory: { max: 5 } }, 'memory.max'],
    ['a bad failOpen', { failOpen: 'yes' }, 'failOpen'],
    ['a bad breaker threshold', { breaker: { errorThresholdPercentage: 0 } }, 'breaker.errorThresholdPercentage'],
    ['an unknown breaker option', { breaker: { threshold: 1 } }, 'breaker.threshold'],
    ['a bad maxSize', { maxSize: '5 bananas' }, 'maxSize'],
    ['a bad maxEntries', { maxEntries: -1 }, 'maxEntries'],
    ['a bad evictionPolicy', { evictionPolicy: 'mru' }, 'evictionPolicy'],
    ['a bad namespace', { namespace: 'a\0b' }, 'namespace'],
  ]
  for (const [label, options, field] of optionCases) {
    test(`open with ${label} is rejected with ERR_INVALID_OPTION naming ${field}, creating nothing`, async () => {
      const dir = `${tempDir()}/cache`
      await assert.rejects(Larder.open({ dir, ...options }), (error: unknown) => {
        assert.ok(error instanceof LarderError)
        assert.equal(error.code, 'ERR_INVALID_OPTION')
        assert.equal(error.field, field)
        assert.ok(error.message.includes(field), error.message)
        return true
      })
      assert.equal(listFiles(dir).length, 0)
    })
  }

  test('sizes and durations accept the documented forms', async () => {
    const cache = await Larder.open({ dir: tempDir(), maxSize: '1.5GB', defaultTtl: '15m', memory: { maxSize: '1GiB', ttl: '90s' } })
    assert.equal(cache.options.maxSize, 1_500_000_000)
    assert.equal(cache.options.defaultTtl, 900_000)
    assert.deepEqual(cache.options.memory, { maxEntries: undefined, maxSize: 1024 ** 3, ttl: 90_000 })
    await cache.close()
  })

  test("a duration that becomes a timer is at most 24 days (Node's limit): a month-long interval was taken as 1 ms and pruned without pause", async () => {
    const dir = tempDir()
    const timers: [string, Record<string, unknown>][] = [
      ['maintenance.interval', { maintenance: { interval: '30d' } }],
      ['memoryPressure.interval', { memoryPressure: { interval: '30d' } }],
      ['breaker.resetTimeout', { breaker: { resetTimeout: '25d' } }],
      ['breaker.timeout', { breaker: { timeout: 2 ** 31 } }],
      ['breaker.rollingCountTimeout', { breaker: { rollingCountTimeout: '1y' } }],
    ]
    for (const [field, options] of timers) {
      await assert.rejects(
        Larder.open({ dir, ...options }),
        (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.field === field && /at most 24 days/.test(e.message),
        field,
      )
    }
    assert.equal(listFiles(dir).length, 0, 'nothing written by the refused opens')
    const cache = await Larder.open({ dir, maintenance: { interval: '24d' }, defaultTtl: '365d' })
    assert.equal(cache.options.maintenance.interval, 24 * 86_400_000)
    await assert.rejects(cache.configure({ maintenance: { interval: '30d' } }), (e: LarderError) => e.field === 'maintenance.interval')
    await cache.close()
  })

  test('memory.maxEntries past 10,000,000 is refused (the index is allocated whole), at open and by configure(), which then changes nothing', async () => {
    const dir = tempDir()
    for (const maxEntries of [10_000_001, 2 ** 32, 1e12]) {
      await assert.rejects(
        Larder.open({ dir, memory: { maxEntries } }),
        (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.field === 'memory.maxEntries' && /at most 10,000,000/.test(e.message),
        String(maxEntries),
      )
    }
    assert.equal(listFiles(dir).length, 0, 'nothing written by the refused opens')
    const cache = await Larder.open({ dir, memory: { maxEntries: 100 } })
    await cache.set('a', 1)
    await assert.rejects(cache.configure({ memory: { maxEntries: 1e12 } }), (e: LarderError) => e.field === 'memory.maxEntries')
    assert.deepEqual(cache.options.memory, { maxEntries: 100, maxSize: undefined, ttl: 0 }, 'the refused configure() changed nothing')
    assert.equal(await cache.get('a'), 1)
    await cache.close()
  })

  test("an empty redis.prefix is refused: clear() would unlink another application's `default:…` keys", async () => {
    const dir = tempDir()
    await assert.rejects(
      Larder.open({ dir, redis: { url: 'redis://127.0.0.1:1', prefix: '' } }),
      (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.field === 'redis.prefix' && /must not be empty/.test(e.message),
    )
    assert.equal(listFiles(dir).length, 0, 'nothing written by the refused open')
  })

  test('tags are read once: what is checked is what is stored, whatever a getter or a Proxy answers to a second read', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, memory: true })
    /** ['ok'], whose first element reads `later` from its second read on. */
    const shifty = (later: unknown): string[] => {
      let reads = 0
      return new Proxy(['ok'], {
        get: (target, name, receiver) => (name === '0' && reads++ > 0 ? later : Reflect.get(target, name, receiver)) as unknown,
      })
    }
    // A NUL split one tag into two on disk, an empty one made an entry the file tier could not read back.
    for (const [at, later] of ['a\0b', '', 5, 'x'.repeat(5000)].entries()) {
      const key = `k${at}`
      await cache.set(key, 1, { tags: shifty(later) })
      assert.deepEqual((await cache.info(key))?.tags, ['ok'], `${key}: info`)
    }
    await cache.close()
    const reader = await Larder.open({ dir })
    assert.deepEqual((await reader.entries({ tags: ['ok'] })).map((entry) => entry.key).sort(), ['k0', 'k1', 'k2', 'k3'])
    await reader.close()
  })

  test('options are read once: a getter cannot pass the check with one answer and act on another', async () => {
    const dir = tempDir()
    const writer = await Larder.open({ dir })
    await writer.setMany([
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
    ])
    await writer.close()
    const [file] = entryFiles(dir)
    const bytes = fs.readFileSync(file!)
    bytes[bytes.length - 1]! ^= 0xff // a damaged entry, which a repair would remove
    fs.writeFileSync(file!, bytes)
    /** An option's value that reads `first` for its first `times` reads, then `later`. */
    const shifting = (name: string, first: unknown, later: unknown, times = 1): object => {
      let reads = 0
      return Object.defineProperty({}, name, { enumerable: true, get: () => (reads++ < times ? first : later) })
    }
    // verify: checked as `repair: false` (allowed on a readOnly cache), then read as the default, a repair
    const reader = await Larder.open({ dir, readOnly: true })
    const before = listFiles(dir)
    const report = await reader.verify(shifting('repair', false, undefined, 3))
    assert.equal(report.repaired, false)
    assert.deepEqual(listFiles(dir), before, 'a readOnly cache wrote nothing')
    await reader.close()
    // prune: kept as a truthy string, checked as a boolean: a prune where a dry run was asked
    const cache = await Larder.open({ dir })
    await assert.rejects(cache.prune({ pattern: '*', ...shifting('dryRun', 'yes', true) }), { code: 'ERR_INVALID_VALUE', field: 'dryRun' })
    assert.ok((await cache.entries()).length > 0, 'nothing pruned')
    // getOrSet: kept as 5, checked as left out
    await assert.rejects(
      cache.getOrSet('g', () => 1, shifting('refreshAhead', 5, undefined)),
      { code: 'ERR_INVALID_OPTION', field: 'refreshAhead' },
    )
    await cache.close()
  })

  test('a value whose description would throw (a BigInt, a cycle, an object without a prototype) is still refused with a LarderError naming its field', async () => {
    // String() throws for an object without a prototype, JSON.stringify() for a BigInt or a
    // cycle: the message describing the value threw a bare TypeError in place of the refusal.
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const before = listFiles(dir)
    const odd: [string, unknown][] = [
      ['a BigInt', 10n],
      ['a cycle', circular],
      ['an object without a prototype', Object.create(null)],
    ]
    const calls: [field: string, run: (value: never) => Promise<unknown>][] = [
      ['refreshAhead', (v) => cache.getOrSet('k', () => 1, { refreshAhead: v })],
      ['lock', (v) => cache.getOrSet('k', () => 1, { lock: v })],
      ['tier', (v) => cache.clear({ tier: v })],
      ['delta', (v) => cache.increment('n', v)],
      ['verifyFirst', (v) => cache.getStream('k', { verifyFirst: v })],
      ['dryRun', (v) => cache.prune({ dryRun: v })],
      ['maxEntries', (v) => cache.prune({ maxEntries: v, dryRun: true })],
      ['olderThan', (v) => cache.prune({ olderThan: v, dryRun: true })],
      ['maxAge', (v) => cache.prune({ maxAge: v, dryRun: true })],
      ['repair', (v) => cache.verify({ repair: v })],
      ['evictionPolicy', (v) => Larder.open({ dir: `${dir}/other`, evictionPolicy: v })],
      ['writeStrategy', (v) => Larder.open({ dir: `${dir}/other`, writeStrategy: v })],
      ['compression', (v) => Larder.open({ dir: `${dir}/other`, compression: v })],
      ['failOpen', (v) => Larder.open({ dir: `${dir}/other`, failOpen: v })],
      ['defaultTtl', (v) => Larder.open({ dir: `${dir}/other`, defaultTtl: v })],
      ['memoryPressure.highWater', (v) => Larder.open({ dir: `${dir}/other`, memory: true, memoryPressure: { highWater: v } })],
      ['profile', (v) => Larder.open({ dir: `${dir}/other`, profile: v })],
    ]
    for (const [field, run] of calls)
      for (const [label, value] of odd) {
        await assert.rejects(run(value as never), (error: unknown) => {
          assert.ok(error instanceof LarderError, `${field}, ${label}: not a LarderError: ${String(error)}`)
          assert.equal(error.field, field, `${field}, ${label}`)
          assert.ok(error.message.includes(field), error.message)
          return true
        })
      }
    assert.deepEqual(listFiles(dir), before)
    await cache.close()
  })

  test('every method rejects with ERR_CLOSED after close', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.close()
    await cache.close() // idempotent
    const calls: (() => Promise<unknown>)[] = [
      () => cache.get('k'),
      () => cache.set('k', 1),
      () => cache.has('k'),
      () => cache.delete('k'),
      () => cache.clear(),
      () => cache.getMany(['k']),
      () => cache.setMany([]),
      () => cache.deleteMany(['k']),
      () => cache.getOrSet('k', () => 1),
      () => cache.invalidateTags(['t']),
      () => cache.increment('k'),
      () => cache.decrement('k'),
      () => cache.setStream('k', Buffer.from('x')),
      () => cache.getStream('k'),
      () => cache.stats(),
    ]
    for (const call of calls) await assert.rejects(call(), { code: 'ERR_CLOSED' })
  })
})
