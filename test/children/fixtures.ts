/**
 * Values written by one process and read back by another in the persistence test. Both
 * sides build them from this module, so the comparison never depends on what IPC can carry.
 */
import type { SerializerName } from '../../src/index.ts'
import { artifactChunks, KiB } from './shared.ts'

export interface Fixture {
  serializer: SerializerName
  key: string
  value: unknown
  /** What `get` must return, when it differs from `value` (bytes come back as Buffers). */
  expected?: unknown
}

function bytes(version: number, size: number, kind: 'random' | 'text'): Buffer {
  return Buffer.concat([...artifactChunks({ version, size, kind, chunk: 64 * KiB })])
}

export function persistenceFixtures(): Fixture[] {
  const fixtures: Fixture[] = []
  const add = (serializer: SerializerName, name: string, value: unknown, expected?: unknown): void => {
    fixtures.push(
      expected === undefined
        ? { serializer, key: `${serializer}:${name}`, value }
        : { serializer, key: `${serializer}:${name}`, value, expected },
    )
  }

  // json
  add('json', 'object', { id: 7, name: 'Zoë ✓ 日本', nested: { list: [1, 2.5, -3, null, true, false, 'x'], empty: {} } })
  add('json', 'array', [[], [[]], { a: [{ b: 'c' }] }])
  add('json', 'string', 'plain "quoted" \\ string\n with newline')
  add('json', 'number', -0.000123)
  add('json', 'null', null)
  add('json', 'false', false)
  add('json', 'large-compressible', { rows: Array.from({ length: 3000 }, (_, i) => ({ i, label: `row ${i}`, even: i % 2 === 0 })) })
  add('json', 'buffer', Buffer.from([0, 1, 2, 254, 255]))

  // v8
  const cyclic: { name: string; self?: unknown; list: unknown[] } = { name: 'cyclic', list: [] }
  cyclic.self = cyclic
  cyclic.list.push(cyclic)
  add('v8', 'map-set-date-bigint', {
    map: new Map<unknown, unknown>([
      ['a', 1],
      [2, { deep: new Set(['x', 'y']) }],
    ]),
    date: new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789)),
    big: -(2n ** 100n) + 1n,
    regexp: /ab+c/giu,
    f64: new Float64Array([Math.PI, -Infinity, NaN]),
    i32: new Int32Array([-1, 2 ** 31 - 1]),
    undef: undefined,
    sparse: [1, , 3], // eslint-disable-line no-sparse-arrays
  })
  add('v8', 'cyclic', cyclic)
  add('v8', 'large', { blob: bytes(11, 300 * KiB, 'random'), text: 'z'.repeat(200 * KiB) })
  add('v8', 'uint8array', new Uint8Array([9, 8, 7]), Buffer.from([9, 8, 7]))

  // msgpack
  add('msgpack', 'map-set-date-bigint', {
    map: new Map<unknown, unknown>([
      ['k', [1, 2, 3]],
      ['n', null],
    ]),
    set: new Set([1, 'two', 3]),
    date: new Date(Date.UTC(1999, 11, 31, 23, 59, 59, 999)),
    big: 12345678901234567890n,
    float: 1.25,
    int: -42,
    u8: new Uint8Array([1, 2, 3]),
    nested: { a: [{ b: { c: 'deep' } }] },
  })
  add(
    'msgpack',
    'large',
    Array.from({ length: 5000 }, (_, i) => ({ i, name: `item-${i}`, tags: ['a', 'b'] })),
  )
  add('msgpack', 'string', 'msgpack ✓ string')

  // raw
  add('raw', 'text', 'raw UTF-8 text: ünïcödé 🚀')
  add('raw', 'bytes-small', Buffer.from('00ff10ab', 'hex'))
  add('raw', 'bytes-random-1MiB', bytes(21, 1024 * KiB, 'random'))
  add('raw', 'bytes-text-2MiB', bytes(22, 2048 * KiB, 'text'))
  add('raw', 'uint8array', new Uint8Array([1, 2, 3, 4]), Buffer.from([1, 2, 3, 4]))
  add('raw', 'empty-string', '')
  return fixtures
}

/** The streamed entry the persistence test writes with setStream (mixed, ~3 MiB). */
export const STREAM_FIXTURE = { key: 'stream:artifact', spec: { version: 31, size: 3 * 1024 * KiB + 12345 } }
