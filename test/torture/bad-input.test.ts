/**
 * Hostile input to every public method and option, table-driven, beyond test/bad-input.test.ts
 * (which covers set/open basics): each call rejects with a LarderError of the right code and
 * writes nothing. Path-like keys and namespaces are valid (keys are hashed) and must round-trip
 * without a byte written outside the cache directory.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Larder, LarderError } from '../../src/index.ts'
import { listFiles, tempDir } from '../helpers.ts'
import { record } from './scale.ts'

const HUGE = 'k'.repeat(10 * 1024 * 1024)
const hostileKeys: [string, unknown][] = [
  ['an empty key', ''],
  ['a 10 MB key', HUGE],
  ['a key with NUL', 'a\0b'],
  ['a lone surrogate', '\uDC00'],
  ['a number', 7],
  ['NaN', Number.NaN],
  ['null', null],
  ['a Symbol', Symbol('k')],
  ['an object with toString', { toString: () => 'k' }],
  ['an array', ['k']],
  ['a String object', new String('k')],
  ['a Buffer', Buffer.from('k')],
  ['8 KiB + 1 of UTF-8', 'é'.repeat(4097)],
]
const keyMethods: [string, (c: Larder, k: never) => Promise<unknown>][] = [
  ['get', (c, k) => c.get(k)],
  ['has', (c, k) => c.has(k)],
  ['delete', (c, k) => c.delete(k)],
  ['getStream', (c, k) => c.getStream(k)],
  ['setStream', (c, k) => c.setStream(k, Buffer.from('x'))],
  ['getOrSet', (c, k) => c.getOrSet(k, () => 1)],
  ['increment', (c, k) => c.increment(k)],
  ['decrement', (c, k) => c.decrement(k)],
  ['getMany', (c, k) => c.getMany(['ok', k])],
  ['deleteMany', (c, k) => c.deleteMany([k])],
  ['setMany', (c, k) => c.setMany([{ key: k, value: 1 }])],
  ['set', (c, k) => c.set(k, 1)],
]

type Case = [label: string, run: (c: Larder) => Promise<unknown>, code: string]
const circular: Record<string, unknown> = {}
circular.self = circular
const cases: Case[] = [
  ...keyMethods.flatMap(([m, run]) =>
    hostileKeys.map(([label, k]): Case => [`${m} with ${label}`, (c) => run(c, k as never), 'ERR_INVALID_KEY']),
  ),
  // values
  ['set of a Symbol', (c) => c.set('k', Symbol('v')), 'ERR_SERIALIZE'],
  ['set of an object holding a BigInt', (c) => c.set('k', { n: 1n }), 'ERR_SERIALIZE'],
  [
    'set of an object whose toJSON throws',
    (c) =>
      c.set('k', {
        toJSON: () => {
          throw new Error('no')
        },
      }),
    'ERR_SERIALIZE',
  ],
  ['getOrSet whose loader returns a circular value', (c) => c.getOrSet('k', () => circular), 'ERR_SERIALIZE'],
  ['setMany of a non-array', (c) => c.setMany({ key: 'k', value: 1 } as never), 'ERR_INVALID_VALUE'],
  ['setMany with a null item', (c) => c.setMany([null as never]), 'ERR_INVALID_VALUE'],
  ['setMany with an unknown item field', (c) => c.setMany([{ key: 'k', value: 1, tll: 5 } as never]), 'ERR_INVALID_OPTION'],
  ['setStream of a string', (c) => c.setStream('k', 'text' as never), 'ERR_INVALID_VALUE'],
  ['setStream of null', (c) => c.setStream('k', null as never), 'ERR_INVALID_VALUE'],
  ['setStream of a plain object', (c) => c.setStream('k', { length: 3 } as never), 'ERR_INVALID_VALUE'],
  // ttl and tags, on every writing method
  ['setStream with ttl -1', (c) => c.setStream('k', Buffer.from('x'), { ttl: -1 }), 'ERR_INVALID_TTL'],
  ['getOrSet with ttl NaN', (c) => c.getOrSet('k', () => 1, { ttl: Number.NaN }), 'ERR_INVALID_TTL'],
  ['setMany with ttl "forever"', (c) => c.setMany([{ key: 'k', value: 1, ttl: 'forever' }]), 'ERR_INVALID_TTL'],
  ['set with ttl "-5m"', (c) => c.set('k', 1, { ttl: '-5m' }), 'ERR_INVALID_TTL'],
  ['set with ttl as an object', (c) => c.set('k', 1, { ttl: {} as never }), 'ERR_INVALID_TTL'],
  ['set with 10,000 tags', (c) => c.set('k', 1, { tags: Array.from({ length: 10_000 }, (_, i) => `t${i}`) }), 'ERR_INVALID_VALUE'],
  ['set with a 10 MB tag', (c) => c.set('k', 1, { tags: [HUGE] }), 'ERR_INVALID_VALUE'],
  ['set with a NUL in a tag', (c) => c.set('k', 1, { tags: ['a\0b'] }), 'ERR_INVALID_VALUE'],
  ['set with a number tag', (c) => c.set('k', 1, { tags: [5 as never] }), 'ERR_INVALID_VALUE'],
  ['setStream with a bad tag', (c) => c.setStream('k', Buffer.from('x'), { tags: [''] }), 'ERR_INVALID_VALUE'],
  ['getOrSet with an unknown option', (c) => c.getOrSet('k', () => 1, { ttl: 5, stale: 1 } as never), 'ERR_INVALID_OPTION'],
  ['set with options that are a string', (c) => c.set('k', 1, 'ttl=5' as never), 'ERR_INVALID_OPTION'],
  ['invalidateTags with a NUL tag', (c) => c.invalidateTags(['a\0']), 'ERR_INVALID_VALUE'],
  ['invalidateTags of null', (c) => c.invalidateTags(null as never), 'ERR_INVALID_VALUE'],
  ['increment by Infinity', (c) => c.increment('k', Number.POSITIVE_INFINITY), 'ERR_INVALID_VALUE'],
  ['increment by a BigInt', (c) => c.increment('k', 1n as never), 'ERR_INVALID_VALUE'],
  // maintenance calls
  ['prune with maxSize NaN', (c) => c.prune({ maxSize: Number.NaN }), 'ERR_INVALID_VALUE'],
  ['prune with maxSize -1', (c) => c.prune({ maxSize: -1 }), 'ERR_INVALID_VALUE'],
  ['prune with maxSize "lots"', (c) => c.prune({ maxSize: 'lots' }), 'ERR_INVALID_VALUE'],
  ['prune with maxEntries 1.5', (c) => c.prune({ maxEntries: 1.5 }), 'ERR_INVALID_VALUE'],
  ['prune with maxEntries -3', (c) => c.prune({ maxEntries: -3 }), 'ERR_INVALID_VALUE'],
  ['prune with maxAge "soon"', (c) => c.prune({ maxAge: 'soon' }), 'ERR_INVALID_TTL'],
  ['prune with olderThan an invalid Date', (c) => c.prune({ olderThan: new Date('nope') }), 'ERR_INVALID_VALUE'],
  ['prune with olderThan a string', (c) => c.prune({ olderThan: '2020' as never }), 'ERR_INVALID_VALUE'],
  ['prune with an empty pattern', (c) => c.prune({ pattern: '' }), 'ERR_INVALID_VALUE'],
  ['prune with a pattern that is a RegExp', (c) => c.prune({ pattern: /x/ as never }), 'ERR_INVALID_VALUE'],
  ['prune with tags not an array', (c) => c.prune({ tags: 't' as never }), 'ERR_INVALID_VALUE'],
  ['prune with a signal that is not an AbortSignal', (c) => c.prune({ signal: {} as never }), 'ERR_INVALID_VALUE'],
  ['prune with onProgress not a function', (c) => c.prune({ onProgress: 5 as never }), 'ERR_INVALID_VALUE'],
  ['prune with an unknown option', (c) => c.prune({ maxsize: 5 } as never), 'ERR_INVALID_OPTION'],
  ['prune with options null', (c) => c.prune(null as never), 'ERR_INVALID_OPTION'],
  ['verify with repair "yes"', (c) => c.verify({ repair: 'yes' as never }), 'ERR_INVALID_VALUE'],
  ['verify with an unknown option', (c) => c.verify({ fix: true } as never), 'ERR_INVALID_OPTION'],
  ['verify with an aborted signal', (c) => c.verify({ signal: AbortSignal.abort() }), 'ERR_ABORTED'],
  ['prune with an aborted signal', (c) => c.prune({ signal: AbortSignal.abort() }), 'ERR_ABORTED'],
]

// options are an object, except the case that passes an array
const optionCases: [string, Record<string, unknown> | unknown[]][] = [
  ['dir as a number', { dir: 5 }],
  ['dir with NUL', { dir: '/tmp/a\0b' }],
  ['namespace as a number', { namespace: 5 }],
  ['a 10 MB namespace', { namespace: HUGE }],
  ['compressThreshold NaN', { compressThreshold: Number.NaN }],
  ['compressThreshold -1', { compressThreshold: -1 }],
  ['compressionLevel 1.5', { compressionLevel: 1.5 }],
  ['durable "yes"', { durable: 'yes' }],
  ['streamCompression "some"', { streamCompression: 'some' }],
  ['memory "yes"', { memory: 'yes' }],
  ['memory.ttl -1', { memory: { ttl: -1 } }],
  ['memory.maxSize "big"', { memory: { maxSize: 'big' } }],
  ['maintenance "never"', { maintenance: 'never' }],
  ['maintenance.workers 0', { maintenance: { workers: 0 } }],
  ['maintenance.lowWater 2', { maintenance: { lowWater: 2 } }],
  ['maintenance.tempMaxAge "x"', { maintenance: { tempMaxAge: 'x' } }],
  ['an unknown maintenance option', { maintenance: { every: 5 } }],
  ['breaker.resetTimeout NaN', { breaker: { resetTimeout: Number.NaN } }],
  ['breaker.timeout -1', { breaker: { timeout: -1 } }],
  ['breaker null', { breaker: null }],
  ['maxEntries Infinity', { maxEntries: Number.POSITIVE_INFINITY }],
  ['maxSize -5', { maxSize: -5 }],
  ['defaultTtl NaN', { defaultTtl: Number.NaN }],
  ['serializer with a throwing getter', { serializer: 42 }],
  ['options as an array', []],
  ['__proto__ pollution', JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>],
]

describe('hostile input to every method and option', () => {
  // Every case counts as tried when it starts and as survived only when all its checks pass.
  let tried = 0
  let survived = 0
  for (const [label, run, code] of cases) {
    test(`${label} rejects with ${code} and writes nothing`, async () => {
      tried++
      const dir = tempDir('larder-torture-bad')
      const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
      const before = listFiles(dir).filter((f) => !f.includes('/meta/'))
      await assert.rejects(run(cache), (error: unknown) => {
        assert.ok(error instanceof LarderError, `not a LarderError: ${String(error)}`)
        assert.equal(error.code, code, `${label}: ${error.message}`)
        return true
      })
      assert.deepEqual(
        listFiles(dir).filter((f) => !f.includes('/meta/')),
        before,
        'files written',
      )
      await cache.close()
      survived++
    })
  }

  for (const [label, options] of optionCases) {
    test(`open with ${label} rejects with ERR_INVALID_OPTION and creates nothing`, async () => {
      tried++
      const dir = path.join(tempDir('larder-torture-bad-open'), 'cache')
      const given = Array.isArray(options) ? options : { dir, ...options }
      await assert.rejects(Larder.open(given as never), (error: unknown) => {
        assert.ok(error instanceof LarderError, `not a LarderError: ${String(error)}`)
        assert.equal(error.code, 'ERR_INVALID_OPTION', error.message)
        return true
      })
      assert.equal(fs.existsSync(dir), false)
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype polluted')
      survived++
    })
  }

  test('path-like keys and namespaces are valid: they round-trip and nothing is written outside the directory', async () => {
    tried++
    const parent = tempDir('larder-torture-paths')
    const dir = path.join(parent, 'cache')
    const keys = [
      '../../etc/passwd',
      '../outside',
      '/etc/shadow',
      'C:\\Windows\\system32',
      '..',
      '.',
      'a/../../b',
      '%2e%2e%2f',
      '\\\\server\\share',
      'v1/default/00/0000000000000000',
      'ключ/🙂',
    ]
    for (const namespace of ['', '../..', '/tmp', '..\\..']) {
      const cache = await Larder.open({ dir, namespace, maintenance: { interval: 0 } })
      for (const key of keys) {
        await cache.set(key, { key, namespace })
        await cache.setStream(`${key}#s`, [Buffer.from(key)])
      }
      for (const key of keys) {
        assert.deepEqual(await cache.get(key), { key, namespace }, `${key} in namespace ${namespace}`)
        assert.deepEqual(await cache.get(`${key}#s`), Buffer.from(key))
      }
      await cache.close()
    }
    assert.deepEqual(fs.readdirSync(parent), ['cache'], 'something was written beside the cache directory')
    const written = listFiles(dir)
    assert.ok(written.every((f) => !f.startsWith('..') && !path.isAbsolute(f)))
    survived++
  })

  test('summary', (t) => {
    record(t, {
      area: 'bad input',
      what: 'hostile arguments and options (all methods)',
      tried,
      unit: 'cases',
      survived,
      note: 'each a LarderError with the right code, nothing written; path-like keys round-trip inside the dir',
    })
    assert.equal(tried, cases.length + optionCases.length + 1, 'every case ran')
  })
})
