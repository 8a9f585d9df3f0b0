import v8 from 'node:v8'
import { Packr } from 'msgpackr'
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
}

// Dates, Maps, Sets, BigInts, typed arrays and shared references survive msgpack. Objects
// are written as self-describing records (no structures shared between entries, so any
// process can read any entry), which lets Maps come back as Maps.
const packr = new Packr({ structuredClone: true, mapsAsObjects: false, useRecords: true, moreTypes: true })

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function serializeError(cause: unknown, what: string): LarderError {
  const reason = cause instanceof Error ? cause.message : String(cause)
  return new LarderError('ERR_SERIALIZE', `Cannot serialize value with the ${what} serializer: ${reason}`, { field: 'value', cause })
}

/** Turns a value into bytes. Throws `ERR_INVALID_VALUE` / `ERR_SERIALIZE`; writes nothing. */
export function serialize(value: unknown, serializer: SerializerName | CustomSerializer): Serialized {
  if (value === undefined) {
    throw new LarderError('ERR_INVALID_VALUE', 'Invalid value: undefined cannot be cached (use delete() to remove a key)', { field: 'value' })
  }
  // Bytes are stored as bytes by every built-in serializer: JSON would inflate them ~4×.
  if (value instanceof Uint8Array && typeof serializer === 'string') return { codec: Codec.Bytes, bytes: toBuffer(value) }
  if (typeof serializer === 'object') {
    let out: Uint8Array | string
    try {
      out = serializer.serialize(value)
    } catch (cause) {
      throw serializeError(cause, 'custom')
    }
    if (typeof out === 'string') return { codec: Codec.Custom, bytes: Buffer.from(out) }
    if (out instanceof Uint8Array) return { codec: Codec.Custom, bytes: toBuffer(out) }
    throw serializeError(new TypeError('serialize() must return a Uint8Array or a string'), 'custom')
  }
  switch (serializer) {
    case 'json': {
      let text: string | undefined
      try {
        text = JSON.stringify(value)
      } catch (cause) {
        throw serializeError(cause, 'json')
      }
      if (text === undefined) throw serializeError(new TypeError(`a ${typeof value} has no JSON form`), 'json')
      return { codec: Codec.Json, bytes: Buffer.from(text) }
    }
    case 'raw':
      if (typeof value === 'string') return { codec: Codec.Text, bytes: Buffer.from(value) }
      throw new LarderError('ERR_INVALID_VALUE', `Invalid value: the raw serializer stores Buffer, Uint8Array or string, got ${typeof value}`, { field: 'value' })
    case 'v8':
      try {
        return { codec: Codec.V8, bytes: v8.serialize(value) }
      } catch (cause) {
        throw serializeError(cause, 'v8')
      }
    case 'msgpack':
      try {
        return { codec: Codec.Msgpack, bytes: packr.pack(value) }
      } catch (cause) {
        throw serializeError(cause, 'msgpack')
      }
  }
}

/** Turns stored bytes back into a value, by the codec the entry records. */
export function deserialize(codec: number, bytes: Buffer, serializer: SerializerName | CustomSerializer): unknown {
  switch (codec) {
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
      return packr.unpack(bytes)
    case Codec.Custom:
      if (typeof serializer !== 'object') {
        throw new LarderError('ERR_DESERIALIZE', 'Entry was written with a custom serializer; open the cache with that serializer to read it', { field: 'serializer' })
      }
      return serializer.deserialize(bytes)
    default:
      throw new LarderError('ERR_CORRUPT', `Unknown codec ${codec}`)
  }
}
