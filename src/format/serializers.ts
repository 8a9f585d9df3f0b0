import { createRequire } from 'node:module'
import v8 from 'node:v8'
import { types } from 'node:util'
import type { Packr } from 'msgpackr'
import { LarderError } from '../errors.js'
import type { CustomSerializer, SerializerName } from '../options.js'

/**
 * How a value became bytes, recorded in each entry's header so an entry is always decoded
 * the way it was encoded, whatever serializer the reading instance is configured with.
 * The numbers are part of the on-disk format: never reuse one.
 */
export const enum Codec {
  Bytes = 0, // Buffer / Uint8Array, returned as a Buffer
  Text = 1, // string stored as UTF-8 by the raw serializer, returned as a string
  Json = 2,
  V8 = 3,
  Msgpack = 4,
  Custom = 5,
  Stream = 6, // written by setStream: opaque bytes, returned as a Buffer by get()
}

export interface Serialized {
  codec: Codec
  bytes: Buffer
  /** The JSON text `bytes` encode (the json serializer's): what the memory tier reads the
   *  value back from, at its first read (tiers/memory-tier.ts). */
  text?: string
}

// Dates, Maps, Sets, BigInts, typed arrays and shared references survive msgpack. Objects
// are written as self-describing records (no structures shared between entries, so any
// process can read any entry), which lets Maps come back as Maps.
// Loaded on the first msgpack value (synchronously: a json cache may read an entry another
// instance wrote as msgpack): msgpackr probes for its native addon when loaded, ~50 ms that a
// cache or a CLI command that never meets msgpack should not pay.
let packr: Packr | undefined
function msgpack(): Packr {
  if (packr !== undefined) return packr
  const { Packr } = createRequire(import.meta.url)('msgpackr') as typeof import('msgpackr')
  return (packr = new Packr({ structuredClone: true, mapsAsObjects: false, useRecords: true, moreTypes: true }))
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * The deepest nesting v8 and msgpack values may have. Both read nested values back by
 * recursion, and an entry they cannot read back would be judged corrupt and deleted on every
 * read. Measured on Node 20's main thread: v8 writes ~4,000 levels but reads back fewer than
 * 2,000 (1,700 did); msgpack's writer stops near 1,500, its reader past 2,000. JSON.parse is
 * iterative, so whatever JSON.stringify accepts reads back, and JSON needs no bound.
 */
export const MAX_DEPTH = 1000

/** Why a value cannot be stored as it is: becomes ERR_SERIALIZE or ERR_INVALID_VALUE. */
class Unfaithful extends Error {
  constructor(
    message: string,
    readonly code: 'ERR_SERIALIZE' | 'ERR_INVALID_VALUE',
  ) {
    super(message)
  }
}

function droppedWithout(what: string, where: string): Unfaithful {
  return new Unfaithful(`a ${what} ${where} would be dropped (it has no stored form)`, 'ERR_SERIALIZE')
}

const LONE_SURROGATE = 'a string with a lone surrogate (half of a UTF-16 pair, e.g. cut by slice()): UTF-8 cannot hold it'

/** Where a value was found, for a message: '' is the value itself, a name a property, a
 *  number an array index, or one of these containers. */
const IN_MAP_KEY = -1
const IN_MAP_VALUE = -2
const IN_SET = -3

function placeOf(where: string | number): string {
  switch (where) {
    case '':
      return 'as the value'
    case IN_MAP_KEY:
      return 'as a Map key'
    case IN_MAP_VALUE:
      return 'as a Map value'
    case IN_SET:
      return 'in a Set'
  }
  return typeof where === 'number' ? `at index ${where}` : `at property ${JSON.stringify(where)}`
}

/** An ArrayBuffer (or a SharedArrayBuffer), or a DataView of one: JSON.stringify writes `{}`,
 *  every byte lost (a SQLite driver's blob column, for one). A Buffer or a typed array keeps
 *  its numbers and is not this. */
function isBareBytes(value: unknown): boolean {
  // util.types, not instanceof: a buffer made in another realm (a vm context, as Jest's
  // environments are) is not an instance of this realm's ArrayBuffer.
  return types.isAnyArrayBuffer(value) || types.isDataView(value)
}

function lostBytes(where: string): Unfaithful {
  return new Unfaithful(
    `an ArrayBuffer or DataView ${where} would be stored as {} by JSON (its bytes lost): use serializer 'v8' or 'msgpack'`,
    'ERR_SERIALIZE',
  )
}

function refuseBytes(where: string | number): never {
  throw lostBytes(placeOf(where))
}

/** JSON.stringify drops nested functions and symbols without a word: refuse them instead. */
function refuseFunctions(this: unknown, key: string, value: unknown): unknown {
  const type = typeof value
  if (type === 'function' || type === 'symbol') throw droppedWithout(type, placeOf(Array.isArray(this) ? Number(key) : key))
  if (type === 'object' && isBareBytes(value)) refuseBytes(key === '' ? '' : Array.isArray(this) ? Number(key) : key)
  return value
}

/** `toJSON`s whose result holds no function or symbol: a Date's string, a Buffer's bytes. */
const PLAIN_TO_JSON = new Set<unknown>([Reflect.get(Date.prototype, 'toJSON'), Reflect.get(Buffer.prototype, 'toJSON')])

/**
 * The JSON text of `value`, refusing (throwing Unfaithful for) any function or symbol it would
 * drop, with the messages `refuseFunctions` gives.
 *
 * Why not `JSON.stringify(value, refuseFunctions)` alone: a replacer takes V8 off its fast
 * serializer and calls back into JS for every property. Stringified without one, then walked
 * for functions and symbols, a ~1 KiB ORM row costs a third of the time (issue 14's profile put
 * `serialize` at 6-8 % of a small set). The walk sees what the serializer saw: it runs only
 * after `JSON.stringify` succeeded (so the graph has no cycle, and ends), and follows the same
 * edges (own enumerable string keys, array indices up to length). What it cannot see is what a
 * `toJSON` returns (a Date's and a Buffer's are known to be plain): a value holding any other
 * `toJSON` is stringified again with the replacer, which sees toJSON's result.
 */
function jsonText(value: unknown): string {
  const type = typeof value
  if (type === 'function' || type === 'symbol') throw droppedWithout(type, placeOf(''))
  if (isBareBytes(value)) throw lostBytes(placeOf(''))
  const text = JSON.stringify(value) as string | undefined
  if (text === undefined) throw new TypeError(`a ${type} has no JSON form`)
  return hasOtherToJSON(value) ? JSON.stringify(value, refuseFunctions) : text
}

/** Walks what JSON.stringify wrote `value` from (see jsonText): throws Unfaithful at a function
 *  or symbol; true at an object with a `toJSON` not known to be plain (then nothing is judged). */
function hasOtherToJSON(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false
  const stack: object[] = [value]
  while (stack.length > 0) {
    const object = stack.pop() as Record<string, unknown>
    if (types.isSymbolObject(object)) throw boxedSymbol() // of any realm: JSON writes one of a vm context as {} too
    const toJSON = object.toJSON
    if (typeof toJSON === 'function') {
      if (PLAIN_TO_JSON.has(toJSON)) continue
      return true
    }
    if (ArrayBuffer.isView(object)) continue // numbers (or BigInts, which stringify refused)
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const child: unknown = object[i]
        if (typeof child === 'object') {
          if (child !== null) stack.push(isBareBytes(child) ? refuseBytes(i) : child)
        } else if (typeof child === 'function' || typeof child === 'symbol') throw droppedWithout(typeof child, placeOf(i))
      }
    } else {
      for (const key of Object.keys(object)) {
        const child = object[key]
        if (typeof child === 'object') {
          if (child !== null) stack.push(isBareBytes(child) ? refuseBytes(key) : child)
        } else if (typeof child === 'function' || typeof child === 'symbol') throw droppedWithout(typeof child, placeOf(key))
      }
    }
  }
  return false
}

interface WalkRules {
  /** Functions and symbols (which the serializer would drop or turn into undefined). */
  callables: boolean
  /** Strings and keys that are not well-formed UTF-16 (the serializer writes UTF-8). */
  surrogates: boolean
  /** What msgpack changes without a word: an own key `__proto__` (msgpackr reads it back as
   *  `__proto_`, so that no value it decodes can set a prototype) and boxed primitives
   *  (`Object(1)` is written as an empty map, `Object('s')` as `{ 0: 's' }`). */
  msgpackShapes: boolean
}

/** A Number, String, Boolean or BigInt object: a primitive in a box (of any realm). */
function isBoxed(value: object): boolean {
  return types.isBoxedPrimitive(value)
}

const TypedArray = Object.getPrototypeOf(Uint8Array) as abstract new () => object

/** The types msgpackr writes as themselves, and how it knows one: a Map by its constructor,
 *  the others (pack.js's extensionClasses) by `instanceof` this realm's class. */
const MSGPACK_TYPES: [name: string, is: (value: object) => boolean, known: (value: object) => boolean][] = [
  ['a Map', types.isMap, (value) => value.constructor === Map],
  ['a Set', types.isSet, (value) => value instanceof Set],
  ['a Date', types.isDate, (value) => value instanceof Date],
  ['a RegExp', types.isRegExp, (value) => value instanceof RegExp],
  ['an Error', types.isNativeError, (value) => value instanceof Error],
  ['a typed array', types.isTypedArray, (value) => value instanceof TypedArray],
  ['a DataView', types.isDataView, (value) => value instanceof DataView],
  ['an ArrayBuffer', types.isAnyArrayBuffer, (value) => value instanceof ArrayBuffer],
]

/** What msgpackr would write as a plain object though it is one of its types: one made in
 *  another realm (a vm context, as Jest's environments are), of a subclass of Map, or given
 *  another prototype. A Map or a Set was stored as {}, a Date as its ISO string, a typed array
 *  as an object of indices. */
function unknownToMsgpack(value: object): string | undefined {
  for (const [name, is, known] of MSGPACK_TYPES) if (is(value)) return known(value) ? undefined : name
  return undefined
}

/** A Symbol in a box (`Object(Symbol())`): it has no own keys, so JSON and msgpack would write
 *  an empty object where the caller stored a symbol. */
function boxedSymbol(): Unfaithful {
  return new Unfaithful('a boxed Symbol (it would be stored as an empty object)', 'ERR_SERIALIZE')
}

/**
 * Walks a value without recursion (so a deep value cannot overflow the stack here) and throws
 * Unfaithful for what a serializer would silently change or could not read back: nesting
 * deeper than MAX_DEPTH, and, as `rules` ask, functions, symbols and lone surrogates. Each
 * object is visited once, so shared references and cycles (which v8 and msgpack keep) end.
 * Objects are visited in the serializers' own order (depth first, properties in order;
 * children are pushed in reverse), so a shared object counts at the depth where they write
 * it whole: the depth their readers recurse to.
 */
function inspect(root: unknown, rules: WalkRules): void {
  const seen = new Set<object>()
  const stack: object[] = []
  const depths: number[] = []
  /** `where`: where the child was found (see placeOf). */
  const visit = (child: unknown, depth: number, where: string | number): void => {
    switch (typeof child) {
      case 'object':
        if (child !== null && !seen.has(child)) {
          stack.push(child)
          depths.push(depth)
        }
        return
      case 'string':
        if (rules.surrogates && !child.isWellFormed()) throw new Unfaithful(LONE_SURROGATE, 'ERR_INVALID_VALUE')
        return
      case 'function':
      case 'symbol':
        if (rules.callables) throw droppedWithout(typeof child, placeOf(where))
    }
  }
  visit(root, 0, '')
  while (stack.length > 0) {
    const value = stack.pop()!
    const depth = depths.pop()!
    if (seen.has(value)) continue
    seen.add(value)
    if (depth > MAX_DEPTH) throw new Unfaithful(`nested deeper than ${MAX_DEPTH} levels (it could not be read back)`, 'ERR_SERIALIZE')
    if (rules.msgpackShapes) {
      const unknown = unknownToMsgpack(value)
      if (unknown !== undefined)
        throw new Unfaithful(
          `${unknown} of another realm (a vm context), class or prototype (msgpack would write it as a plain object)`,
          'ERR_SERIALIZE',
        )
    }
    if (ArrayBuffer.isView(value) || value instanceof Date || value instanceof ArrayBuffer) continue
    if (value instanceof RegExp) {
      // Its source is a string like any other: msgpack writes it as UTF-8.
      if (rules.surrogates && !value.source.isWellFormed()) throw new Unfaithful(LONE_SURROGATE, 'ERR_INVALID_VALUE')
      continue
    }
    if (rules.callables && types.isSymbolObject(value)) throw boxedSymbol()
    if (rules.msgpackShapes && isBoxed(value)) {
      throw new Unfaithful(`a boxed ${value.constructor.name} (msgpack writes it as a map; store the primitive)`, 'ERR_SERIALIZE')
    }
    const next = depth + 1
    if (value instanceof Map) {
      const entries = [...value]
      for (let i = entries.length - 1; i >= 0; i--) {
        visit(entries[i]![1], next, IN_MAP_VALUE)
        visit(entries[i]![0], next, IN_MAP_KEY)
      }
    } else if (value instanceof Set) {
      const members = [...value]
      for (let i = members.length - 1; i >= 0; i--) visit(members[i], next, IN_SET)
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) visit(value[i], next, i)
    } else {
      // An Error's name, message and cause are written (not enumerable, so not among its keys);
      // its other own properties are not (msgpack keeps name, message and cause; v8 its stack too).
      if (value instanceof Error) {
        // msgpackr reads one back as `new AggregateError(message, { cause })`: its message
        // "[object Object]", its errors the characters of the message.
        if (rules.msgpackShapes && value instanceof AggregateError) {
          throw new Unfaithful('an AggregateError (msgpack reads it back with its message taken for its errors)', 'ERR_SERIALIZE')
        }
        visit(value.name, next, 'name')
        visit(value.message, next, 'message')
        if (Object.hasOwn(value, 'cause')) visit(value.cause, next, 'cause')
      }
      const keys = Object.keys(value)
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!
        if (rules.surrogates && !key.isWellFormed()) throw new Unfaithful(LONE_SURROGATE, 'ERR_INVALID_VALUE')
        if (rules.msgpackShapes && key === '__proto__') {
          throw new Unfaithful('an own property named "__proto__" (msgpack reads it back as "__proto_")', 'ERR_SERIALIZE')
        }
        visit((value as Record<string, unknown>)[key], next, key)
      }
    }
  }
}

function serializeError(cause: unknown, what: string, field: string): LarderError {
  if (cause instanceof Unfaithful) {
    return new LarderError(cause.code, `Cannot store ${field} with the ${what} serializer: ${cause.message}`, { field })
  }
  const reason = cause instanceof Error ? cause.message : String(cause)
  return new LarderError('ERR_SERIALIZE', `Cannot serialize ${field} with the ${what} serializer: ${reason}`, { field, cause })
}

/**
 * Turns a value into bytes. Throws `ERR_INVALID_VALUE` / `ERR_SERIALIZE` naming `field`;
 * writes nothing. A value is refused rather than changed silently: nested functions and
 * symbols (json, msgpack; v8 refuses them itself), lone surrogates where UTF-8 is written
 * (msgpack, raw), nesting v8 or msgpack could not read back (over MAX_DEPTH). What each
 * serializer still changes (a Date under json becomes a string…) is what every reader gets,
 * the memory tier included (see `readBack`).
 */
export function serialize(value: unknown, serializer: SerializerName | CustomSerializer, field = 'value'): Serialized {
  if (value === undefined) {
    throw new LarderError('ERR_INVALID_VALUE', `Invalid ${field}: undefined cannot be cached (use delete() to remove a key)`, { field })
  }
  // Bytes are stored as bytes by every built-in serializer: JSON would inflate them ~4×.
  // util.types, not instanceof: bytes made in another realm (a vm context, as Jest's
  // environments are) were written by JSON as an object of indices, and refused by raw.
  if (types.isUint8Array(value) && typeof serializer === 'string') return { codec: Codec.Bytes, bytes: toBuffer(value) }
  if (typeof serializer === 'object') {
    let out: Uint8Array | string
    try {
      out = serializer.serialize(value)
    } catch (cause) {
      throw serializeError(cause, 'custom', field)
    }
    if (typeof out === 'string') return { codec: Codec.Custom, bytes: Buffer.from(out) }
    if (types.isUint8Array(out)) {
      // Bytes handed back as given (an identity pair, for a cache of bytes) are copied: the memory
      // tier held the caller's own buffer, and served what the caller changed after set, not
      // what the file held.
      const given = types.isUint8Array(value) && out.buffer === value.buffer
      return { codec: Codec.Custom, bytes: given ? Buffer.from(out) : toBuffer(out) }
    }
    throw serializeError(new TypeError('serialize() must return a Uint8Array or a string'), 'custom', field)
  }
  try {
    switch (serializer) {
      case 'json': {
        const text = jsonText(value)
        return { codec: Codec.Json, bytes: Buffer.from(text), text }
      }
      case 'raw':
        if (typeof value !== 'string') {
          throw new LarderError(
            'ERR_INVALID_VALUE',
            `Invalid ${field}: the raw serializer stores Buffer, Uint8Array or string, got ${typeof value}`,
            { field },
          )
        }
        if (!value.isWellFormed()) throw new Unfaithful(LONE_SURROGATE, 'ERR_INVALID_VALUE')
        return { codec: Codec.Text, bytes: Buffer.from(value) }
      case 'v8': {
        const bytes = v8.serialize(value)
        // Every level of nesting costs at least 3 bytes (a Set of one Set), so a shorter
        // value cannot be too deep to read back, and most values skip the walk.
        if (bytes.length > 3 * MAX_DEPTH) inspect(value, { callables: false, surrogates: false, msgpackShapes: false })
        return { codec: Codec.V8, bytes }
      }
      case 'msgpack':
        inspect(value, { callables: true, surrogates: true, msgpackShapes: true })
        return { codec: Codec.Msgpack, bytes: msgpack().pack(value) }
    }
  } catch (cause) {
    if (cause instanceof LarderError) throw cause
    throw serializeError(cause, serializer, field)
  }
}

/**
 * The value as every reader of its entry gets it: what `deserialize` makes of `serialized`,
 * and, for bytes, a copy (so a caller reusing its buffer never changes a cached value). The
 * memory tier holds this, so a value reads the same whichever tier answers.
 */
export function readBack(serialized: Serialized, serializer: SerializerName | CustomSerializer): unknown {
  if (serialized.codec === Codec.Bytes) return Buffer.from(serialized.bytes)
  if (serialized.text !== undefined) return JSON.parse(serialized.text) as unknown // the bytes' own text: no decode
  return deserialize(serialized.codec, serialized.bytes, serializer)
}

/** Turns stored bytes back into a value, by the codec the entry records. */
export function deserialize(codec: number, bytes: Buffer, serializer: SerializerName | CustomSerializer): unknown {
  // the byte the entry records, read as a codec id; an unknown one falls to `default`
  switch (codec as Codec) {
    case Codec.Bytes:
    case Codec.Stream:
      return bytes
    case Codec.Text:
      return bytes.toString('utf8')
    case Codec.Json:
      return JSON.parse(bytes.toString('utf8'))
    case Codec.V8:
      return v8.deserialize(bytes)
    case Codec.Msgpack:
      return msgpack().unpack(bytes)
    case Codec.Custom:
      if (typeof serializer !== 'object') {
        throw new LarderError(
          'ERR_DESERIALIZE',
          'Entry was written with a custom serializer; open the cache with that serializer to read it',
          { field: 'serializer' },
        )
      }
      return serializer.deserialize(bytes)
    default:
      throw new LarderError('ERR_CORRUPT', `Unknown codec ${codec}`)
  }
}
