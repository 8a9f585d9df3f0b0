/**
 * What each serializer keeps, and that a value reads back the same whichever tier answers:
 * the memory tier of the writing instance, or the entry file read by a new instance (as a
 * restart or another process would). Values a serializer cannot keep faithfully and that it
 * would otherwise change silently (nested functions and symbols, lone surrogates where UTF-8
 * is written, nesting too deep to read back) are rejected at `set`, with nothing written.
 */
import assert from 'node:assert/strict'
import vm from 'node:vm'
import { describe, test } from 'node:test'
import { Larder, LarderError, type LarderOptions } from '../src/index.ts'
import { entryFiles, tempDir } from './helpers.ts'

class Point {
  constructor(
    public x = 1,
    public y = 2,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y)
  }
}

function shared(): unknown {
  const s = { v: 1 }
  return { a: s, b: s }
}

/** Values of every kind an application caches, each built fresh per call. */
const VALUES: [name: string, make: () => unknown][] = [
  ['ORM rows', () => [{ id: 1, name: 'Ada', createdAt: '2024-01-01T00:00:00.000Z', active: true, score: 1.5 }]],
  ['a Date', () => ({ at: new Date(1_700_000_000_000) })],
  ['a Map and a Set', () => ({ m: new Map([['a', 1]]), s: new Set([1, 2]) })],
  ['NaN, Infinity and -0', () => ({ n: Number.NaN, i: Number.POSITIVE_INFINITY, z: -0 })],
  ['undefined properties and slots', () => ({ a: undefined, list: [1, undefined, 3] })],
  ['a typed array', () => ({ t: new Float64Array([1.5, -2]) })],
  ['a nested Buffer', () => ({ b: Buffer.from([1, 2, 3]) })],
  ['a top-level Uint8Array', () => new Uint8Array([1, 2, 3])],
  ['a class instance', () => new Point(3, 4)],
  ['a RegExp', () => ({ r: /ab+c/gi })],
  ['a shared reference', shared],
  ['an array with a named property', () => ({ list: Object.assign([1, 2], { extra: 'x' }) })],
  ['a string', () => 'héllo ✓'],
  ['a number', () => 42.5],
  ['null', () => null],
]

const SERIALIZERS: LarderOptions['serializer'][] = [
  'json',
  'v8',
  'msgpack',
  'raw',
  {
    serialize: (v: unknown) => JSON.stringify(v),
    deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
  },
]

function nameOf(serializer: LarderOptions['serializer']): string {
  return typeof serializer === 'string' ? serializer : 'custom'
}

describe('the memory tier returns what the disk returns', () => {
  for (const serializer of SERIALIZERS) {
    test(`${nameOf(serializer)}: get from memory, get from disk and getOrSet agree on every value`, async () => {
      const dir = tempDir()
      const writer = await Larder.open({ dir, serializer, memory: true })
      const stored: string[] = []
      for (const [name, make] of VALUES) {
        try {
          await writer.set(`set:${name}`, make())
          stored.push(name)
        } catch (error) {
          assert.ok(error instanceof LarderError, `${name}: ${String(error)}`)
          continue
        }
        const loaded = await writer.getOrSet(`load:${name}`, make)
        assert.deepStrictEqual(loaded, await writer.get(`load:${name}`), `${name}: getOrSet's result is what get returns next`)
      }
      assert.ok(stored.length >= 2, `${nameOf(serializer)} stored ${stored.join(', ')}`)
      const reader = await Larder.open({ dir, serializer }) // a new instance reads the files
      for (const name of stored) {
        for (const prefix of ['set', 'load']) {
          const fromMemory = await writer.get(`${prefix}:${name}`)
          const fromDisk = await reader.get(`${prefix}:${name}`)
          assert.deepStrictEqual(fromMemory, fromDisk, `${nameOf(serializer)} ${prefix} ${name}`)
        }
      }
      const stats = await writer.stats()
      assert.equal(stats.memoryHits, stored.length * 3, 'the writer answered from memory')
      await Promise.all([writer.close(), reader.close()])
    })
  }

  test('changing a value after set changes nothing in the cache', async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: true })
    const value = { list: [1, 2] }
    const bytes = Buffer.from('abc')
    await cache.set('obj', value)
    await cache.set('bytes', bytes)
    value.list.push(3)
    bytes[0] = 0x7a
    assert.deepStrictEqual(await cache.get('obj'), { list: [1, 2] })
    assert.deepStrictEqual(await cache.get('bytes'), Buffer.from('abc'))
    await cache.close()
  })

  test('a custom serializer that hands back the bytes it is given: changing them after set changes nothing in the cache', async () => {
    const dir = tempDir()
    const serializer = { serialize: (v: unknown) => v as Uint8Array, deserialize: (b: Buffer) => b }
    const cache = await Larder.open({ dir, serializer, memory: true })
    const stored = Buffer.from('abc')
    const loaded = Buffer.from('def')
    await cache.set('set', stored)
    const answered = await cache.getOrSet('load', () => loaded)
    stored[0] = 0x7a
    loaded[0] = 0x7a
    assert.deepStrictEqual(answered, Buffer.from('def'))
    // the memory tier held the caller's own buffer: it served "zbc" while the file held "abc"
    assert.deepStrictEqual(await cache.get('set'), Buffer.from('abc'))
    assert.deepStrictEqual(await cache.get('load'), Buffer.from('def'))
    await cache.close()
  })

  test('a Uint8Array from another realm (a vm context, as in Jest) is bytes to every built-in serializer and to setStream', async () => {
    const foreign = (): Uint8Array => vm.runInNewContext('new Uint8Array([104, 105])') as Uint8Array
    assert.ok(!(foreign() instanceof Uint8Array))
    const dir = tempDir()
    for (const serializer of ['json', 'v8', 'msgpack', 'raw'] as const) {
      const writer = await Larder.open({ dir, serializer, namespace: serializer, memory: true })
      await writer.set('k', foreign())
      await writer.setStream('whole', foreign())
      await writer.setStream('chunks', [foreign(), foreign()])
      assert.deepStrictEqual(await writer.get('k'), Buffer.from('hi'), serializer)
      await writer.close()
      const reader = await Larder.open({ dir, serializer, namespace: serializer })
      assert.deepStrictEqual(await reader.get('k'), Buffer.from('hi'), serializer)
      assert.deepStrictEqual(await reader.get('whole'), Buffer.from('hi'), serializer)
      assert.deepStrictEqual(await reader.get('chunks'), Buffer.from('hihi'), serializer)
      await reader.close()
    }
  })
})

describe('values a serializer would change silently are rejected', () => {
  const nested: [name: string, make: () => unknown][] = [
    [
      'a method',
      () => ({
        id: 1,
        compute() {
          return 2
        },
      }),
    ],
    ['a function in an array', () => [1, () => 2]],
    ['a deeply nested function', () => ({ a: { b: [{ fn: Math.max }] } })],
    ['a symbol', () => ({ s: Symbol('x') })],
    ['a symbol in an array', () => [Symbol.iterator]],
  ]
  for (const serializer of ['json', 'msgpack', 'v8'] as const) {
    test(`${serializer}: nested functions and symbols → ERR_SERIALIZE, nothing written`, async () => {
      const dir = tempDir()
      const cache = await Larder.open({ dir, serializer, memory: true })
      for (const [name, make] of nested) {
        await assert.rejects(cache.set('k', make()), (e: LarderError) => e.code === 'ERR_SERIALIZE' && e.field === 'value', name)
        await assert.rejects(cache.getOrSet('g', make), (e: LarderError) => e.code === 'ERR_SERIALIZE', name)
      }
      if (serializer === 'msgpack') {
        await assert.rejects(cache.set('k', new Map([['f', () => 1]])), { code: 'ERR_SERIALIZE' })
        // An Error's cause is written, though not among its keys: a function there is refused too.
        await assert.rejects(cache.set('k', new Error('e', { cause: () => 1 })), { code: 'ERR_SERIALIZE' })
      }
      if (serializer !== 'v8') {
        // A boxed symbol has no keys: JSON and msgpack would write {}.
        await assert.rejects(cache.set('k', Object(Symbol('s')) as object), /boxed Symbol/)
        await assert.rejects(cache.set('k', { deep: [Object(Symbol('s')) as object] }), /boxed Symbol/)
        // one made in another realm (a vm context, as in Jest) too: JSON wrote it as {}
        await assert.rejects(cache.set('k', { deep: [vm.runInNewContext("Object(Symbol('s'))") as object] }), /boxed Symbol/)
      }
      assert.equal(await cache.get('k'), undefined)
      assert.equal(entryFiles(dir).length, 0)
      await cache.close()
    })
  }

  test('json: the refusal sees what JSON.stringify sees (toJSON results, Dates, Buffers, typed arrays), and names the place', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, memory: true })
    const refused: [name: string, value: unknown, place: RegExp][] = [
      ['a method', { id: 1, f() {} }, /function at property "f"/],
      ['a function at index 2', [1, 2, () => 3], /function at index 2/],
      ['a symbol deep down', { a: [{ b: { c: Symbol('x') } }] }, /symbol at property "c"/],
      ['a function as the value', () => 1, /function as the value/],
      ['a toJSON whose result holds a function', { when: { toJSON: () => ({ f: () => 1 }) } }, /function at property "f"/],
      [
        'a toJSON inherited from a class',
        [
          { ok: 1 },
          new (class {
            toJSON() {
              return [Symbol('s')]
            }
          })(),
        ],
        /symbol at index 0/,
      ],
      // JSON writes an ArrayBuffer as {}: every byte lost (a SQLite driver's blob column).
      ['an ArrayBuffer as the value', new ArrayBuffer(2), /ArrayBuffer or DataView as the value/],
      ['an ArrayBuffer in a row', [[1, new Uint8Array([104, 105]).buffer]], /ArrayBuffer or DataView at index 1/],
      ['an ArrayBuffer at a property', { blob: new ArrayBuffer(1) }, /ArrayBuffer or DataView at property "blob"/],
      ['an ArrayBuffer in what a toJSON returns', { v: { toJSON: () => ({ raw: new ArrayBuffer(1) }) } }, /at property "raw"/],
      ['a DataView (JSON writes {} too)', { view: new DataView(new ArrayBuffer(2)) }, /ArrayBuffer or DataView at property "view"/],
      [
        'an ArrayBuffer from another realm (a vm context, as in Jest)',
        { blob: vm.runInNewContext('new ArrayBuffer(2)') as unknown },
        /at property "blob"/,
      ],
    ]
    for (const [name, value, place] of refused) {
      await assert.rejects(cache.set('k', value), (e: LarderError) => e.code === 'ERR_SERIALIZE' && place.test(e.message), name)
    }
    assert.equal(entryFiles(dir).length, 0)
    // What JSON drops or converts by its own rules is kept as JSON gives it: a toJSON whose
    // result is plain, a Date, a nested Buffer, a typed array, undefined properties, a getter.
    const stored = {
      money: { toJSON: () => '12.50 EUR' },
      at: new Date(0),
      bytes: { b: Buffer.from([1, 2]) },
      floats: new Float32Array([0.5]),
      gone: undefined,
      get computed() {
        return { n: 1 }
      },
    }
    await cache.set('k', stored)
    const expected = {
      money: '12.50 EUR',
      at: '1970-01-01T00:00:00.000Z',
      bytes: { b: { type: 'Buffer', data: [1, 2] } },
      floats: { 0: 0.5 },
      computed: { n: 1 },
    }
    assert.deepStrictEqual(await cache.get('k'), expected)
    await cache.close()
    const reader = await Larder.open({ dir })
    assert.deepStrictEqual(await reader.get('k'), expected)
    await reader.close()
  })

  test('msgpack and raw reject strings with lone surrogates (ERR_INVALID_VALUE); json and v8 keep them exactly', async () => {
    const cut = '😀 café'.slice(0, 1) // half of the emoji's surrogate pair
    const dir = tempDir()
    for (const serializer of ['msgpack', 'raw'] as const) {
      const cache = await Larder.open({ dir, serializer, namespace: serializer })
      await assert.rejects(
        cache.set('k', `caf${cut}`),
        (e: LarderError) => e.code === 'ERR_INVALID_VALUE' && e.field === 'value' && /surrogate/.test(e.message),
      )
      if (serializer === 'msgpack') {
        for (const value of [{ s: `caf${cut}` }, { [`k${cut}`]: 1 }, new Map([[`k${cut}`, 1]]), [new Set([cut])]]) {
          await assert.rejects(cache.set('k', value), { code: 'ERR_INVALID_VALUE' })
        }
        await cache.set('fine', { s: '😀 café', [`k😀`]: new Map([['ü', 'ß']]) })
      }
      await cache.close()
    }
    assert.equal(entryFiles(dir).length, 1)
    for (const serializer of ['json', 'v8'] as const) {
      const writer = await Larder.open({ dir, serializer, namespace: serializer })
      await writer.set('k', { s: `caf${cut}`, list: [cut] })
      await writer.close()
      const reader = await Larder.open({ dir, serializer, namespace: serializer })
      assert.deepStrictEqual(await reader.get('k'), { s: `caf${cut}`, list: [cut] })
      await reader.close()
    }
  })
})

describe('what msgpack would change without a word', () => {
  test('an own "__proto__" key and boxed primitives are refused (ERR_SERIALIZE naming them), nothing written; json and v8 keep the key', async () => {
    const dir = tempDir()
    const proto = JSON.parse('{"a":1,"__proto__":{"x":1}}') as Record<string, unknown>
    const msgpack = await Larder.open({ dir, serializer: 'msgpack', namespace: 'msgpack' })
    for (const [value, named] of [
      [proto, /"__proto__"/],
      [{ deep: [proto] }, /"__proto__"/],
      [Object(1), /boxed Number/],
      [{ s: Object('s') as object }, /boxed String/],
      [[Object(true)], /boxed Boolean/],
      [new Map([['n', Object(1n)]]), /boxed BigInt/],
    ] as const) {
      await assert.rejects(
        msgpack.set('k', value),
        (e: LarderError) => e.code === 'ERR_SERIALIZE' && e.field === 'value' && named.test(e.message),
      )
    }
    await msgpack.set('fine', { __proto_: 1, n: 1, s: 's' })
    assert.deepStrictEqual(await msgpack.get('fine'), { __proto_: 1, n: 1, s: 's' })
    await msgpack.close()
    assert.equal(entryFiles(dir).length, 1)
    for (const serializer of ['json', 'v8'] as const) {
      const cache = await Larder.open({ dir, serializer, namespace: serializer })
      await cache.set('k', proto)
      const back = (await cache.get('k')) as Record<string, unknown>
      assert.deepStrictEqual(Object.keys(back), ['a', '__proto__'])
      assert.equal(Object.getPrototypeOf(back), Object.prototype)
      await cache.close()
    }
  })

  test("an Error's message or name and a RegExp's source with a lone surrogate, and an AggregateError, are refused; other Errors read back as written", async () => {
    const cut = '😀'.slice(0, 1)
    const named = new Error('m')
    named.name = `My${cut}Error`
    const dir = tempDir()
    const msgpack = await Larder.open({ dir, serializer: 'msgpack', memory: true })
    for (const [at, [value, code]] of [
      [new Error(`caf${cut}`), 'ERR_INVALID_VALUE'],
      [{ deep: [new TypeError(`caf${cut}`)] }, 'ERR_INVALID_VALUE'],
      [named, 'ERR_INVALID_VALUE'],
      [new RegExp(`a${cut}`), 'ERR_INVALID_VALUE'],
      [new Map([['r', new RegExp(`a${cut}`)]]), 'ERR_INVALID_VALUE'],
      // msgpackr reads one back as `new AggregateError(message, { cause })`: its message
      // "[object Object]", its errors the message's characters
      [new AggregateError([new Error('inner')], 'outer'), 'ERR_SERIALIZE'],
      [{ e: new Error('e', { cause: new AggregateError([], 'a') }) }, 'ERR_SERIALIZE'],
    ].entries()) {
      await assert.rejects(msgpack.set('k', value), (e: LarderError) => e.code === code && e.field === 'value', `value ${at}`)
    }
    const error = new RangeError('café 😀', { cause: 'why' })
    await msgpack.set('fine', { error, r: /a😀/u })
    await msgpack.close()
    assert.deepStrictEqual(entryFiles(dir).length, 1)
    const reader = await Larder.open({ dir, serializer: 'msgpack' })
    const back = (await reader.get('fine')) as { error: RangeError; r: RegExp }
    assert.ok(back.error instanceof RangeError)
    assert.equal(back.error.message, 'café 😀')
    assert.equal(back.error.cause, 'why')
    assert.equal(back.r.source, 'a😀')
    await reader.close()
  })

  test('a Map, Set, Date, RegExp, Error or typed array from another realm (a vm context, as in Jest), and a subclass of Map, are refused, not stored as a plain object', async () => {
    const dir = tempDir()
    const msgpack = await Larder.open({ dir, serializer: 'msgpack', memory: true })
    for (const made of [
      "new Map([['a', 1]])",
      'new Set([1])',
      'new Date(0)',
      '/a+/g',
      "new Error('e')",
      'new Float64Array([1.5])',
      'new DataView(new ArrayBuffer(1))',
      'new ArrayBuffer(1)',
      'Object(1)',
    ]) {
      const foreign = vm.runInNewContext(made) as object
      for (const value of [foreign, { nested: [foreign] }]) {
        await assert.rejects(msgpack.set('k', value), (e: LarderError) => e.code === 'ERR_SERIALIZE' && e.field === 'value', made)
      }
    }
    // msgpackr knows a Map by its constructor: a subclass's entries were written as {}
    class Registry extends Map<string, number> {}
    await assert.rejects(msgpack.set('k', new Registry([['a', 1]])), { code: 'ERR_SERIALIZE', field: 'value' })
    // msgpackr reads those by this realm's constructors; a plain object or an array of any realm it writes as it is
    const plain = vm.runInNewContext("({ list: [1, 'a'], at: { n: null } })") as object
    await msgpack.set('fine', plain)
    await msgpack.close()
    assert.equal(entryFiles(dir).length, 1)
    const reader = await Larder.open({ dir, serializer: 'msgpack' })
    assert.deepEqual(await reader.get('fine'), { list: [1, 'a'], at: { n: null } })
    await reader.close()
  })
})

test("an array's own properties other than its indexes: json and msgpack drop them (as README says), v8 keeps them", async () => {
  for (const [serializer, kept] of [
    ['json', false],
    ['msgpack', false],
    ['v8', true],
  ] as const) {
    const dir = tempDir()
    const writer = await Larder.open({ dir, serializer })
    await writer.set('k', { list: Object.assign([1, 2], { extra: 'x' }) })
    const reader = await Larder.open({ dir, serializer, memory: false })
    for (const cache of [writer, reader]) {
      const { list } = (await cache.get('k')) as { list: number[] & { extra?: string } }
      assert.deepEqual([...list], [1, 2])
      assert.equal(list.extra, kept ? 'x' : undefined, serializer)
    }
    await Promise.all([writer.close(), reader.close()])
  }
})

describe('nesting depth', () => {
  function nest(depth: number): Record<string, unknown> {
    const root: Record<string, unknown> = {}
    let at = root
    for (let i = 0; i < depth; i++) {
      const next: Record<string, unknown> = {}
      at.c = next
      at = next
    }
    return root
  }

  /** How deep a value made by nest() is (node's deep-equal recurses, so it cannot compare these). */
  function depthOf(value: unknown): number {
    let depth = 0
    let at = value as Record<string, unknown>
    while (typeof at.c === 'object' && at.c !== null) {
      assert.deepStrictEqual(Object.keys(at), ['c'])
      at = at.c as Record<string, unknown>
      depth++
    }
    assert.deepStrictEqual(at, {})
    return depth
  }

  test('v8 and msgpack reject at set what they could not read back; 1,000 levels are fine', async () => {
    for (const serializer of ['v8', 'msgpack'] as const) {
      const dir = tempDir()
      const cache = await Larder.open({ dir, serializer })
      for (const depth of [1200, 3000]) {
        await assert.rejects(
          cache.set('deep', nest(depth)),
          (e: LarderError) => e.code === 'ERR_SERIALIZE' && /nested/.test(e.message),
          `${serializer} ${depth}`,
        )
      }
      assert.equal(entryFiles(dir).length, 0, `${serializer}: nothing written`)
      await cache.set('ok', nest(1000))
      await cache.close()
      const reader = await Larder.open({ dir, serializer })
      assert.equal(depthOf(await reader.get('ok')), 1000)
      assert.equal((await reader.stats()).corrupt, 0)
      await reader.close()
    }
  })

  test('json reads back what it stores at any depth it accepts', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.set('deep', nest(3000))
    await cache.close()
    const reader = await Larder.open({ dir })
    assert.equal(depthOf(await reader.get('deep')), 3000)
    assert.equal((await reader.stats()).corrupt, 0)
    await reader.close()
  })
})
