/**
 * The payload of a buffered entry (`set`): the serialized bytes, compressed when that pays.
 * Streamed entries (`setStream`) use frames instead (frames.ts); both are read back here.
 */
import type { ResolvedOptions } from '../options.js'
import {
  canExpandTo,
  Compression,
  compressAsync,
  compressionIds,
  compressSync,
  decompressAsync,
  decompressSync,
  KEEP_COMPRESSED_RATIO,
  PROBE_BYTES,
  SYNC_CODEC_LIMIT,
  worthCompressing,
} from './compression.js'
import type { KeyObject } from 'node:crypto'
import { namespaceIdOf, keyOf } from '../crypto/entry-keys.js'
import { activeKeyOf, type Keyring } from '../crypto/keys.js'
import { FrameCipher, freshNonce, open, seal, TAG_BYTES } from '../crypto/seal.js'
import {
  CorruptEntryError,
  encodeEntry,
  encodeEntryAround,
  encodeHead,
  encodeTags,
  encodeTrailerFields,
  FLAG_FRAMED,
  FLAG_SEALED,
  type DecodedEntry,
  type EntryMeta,
} from './entry-format.js'
import { decodeFramedPayload, FRAME_HEADER_BYTES } from './frames.js'

/** Values up to this size are decompressed synchronously (see compression.ts). */
const SYNC_DECOMPRESS_LIMIT = 1024 * 1024

export interface EncodedPayload {
  compression: Compression
  payload: Buffer
}

/**
 * Compresses `bytes` with the cache's codec when it is at least `compressThreshold` long and
 * the result saves at least a tenth; otherwise returns them as they are. Big values are
 * probed first, so an already-compressed artifact costs one 64 KiB trial (sampled across the
 * value), not a full pass.
 */
export function encodePayload(
  bytes: Buffer,
  options: Pick<ResolvedOptions, 'compression' | 'compressionLevel' | 'compressThreshold'>,
): EncodedPayload | Promise<EncodedPayload> {
  const id = compressionIds[options.compression]
  if (id === Compression.None || bytes.length < options.compressThreshold) return { compression: Compression.None, payload: bytes }
  if (bytes.length > 2 * PROBE_BYTES && !worthCompressing(bytes, PROBE_BYTES)) return { compression: Compression.None, payload: bytes }
  const level = options.compressionLevel
  // Up to the synchronous codec's limit, answered at once (not a promise): see encodeEntryBytes.
  if (bytes.length <= SYNC_CODEC_LIMIT) return keptIfSmaller(id, bytes, compressSync(id, level, bytes))
  return compressAsync(id, level, bytes).then((compressed) => keptIfSmaller(id, bytes, compressed))
}

/** The compressed payload if it saves enough, else the bytes as they are. */
function keptIfSmaller(id: Compression, bytes: Buffer, compressed: Buffer): EncodedPayload {
  if (compressed.length >= bytes.length * KEEP_COMPRESSED_RATIO) return { compression: Compression.None, payload: bytes }
  return { compression: id, payload: compressed }
}

/** What an entry says of its payload: enough to judge the length it claims. */
export interface PayloadLengths {
  flags: number
  compression: Compression
  storedLength: number
  logicalLength: number
}

/**
 * Why the logical length an entry claims cannot be true of its stored payload, or undefined.
 * Such an entry is corrupt whatever its checksum says (a checksum is no signature: anyone who
 * can write the directory can make one), and it is judged so before anything is allocated for
 * the length it claims. A plain payload is the value itself. A compressed one cannot expand
 * beyond its codec's format limit, and is never much larger than the value (every codec's
 * worst case adds well under 1/1024 plus a header; the writer keeps compression only when it
 * saves a tenth). A framed one holds at least one byte per 8-byte frame header, and each frame
 * obeys the same rules (frames.ts checks them one by one as they are read).
 */
export function impossibleLength(entry: PayloadLengths): string | undefined {
  const { compression, logicalLength: logical } = entry
  let stored = entry.storedLength
  const sealed = (entry.flags & FLAG_SEALED) !== 0
  if ((entry.flags & FLAG_FRAMED) !== 0) {
    // A sealed frame carries a tag besides its header; an empty sealed stream is one frame.
    const perFrame = FRAME_HEADER_BYTES + (sealed ? TAG_BYTES : 0)
    const expandable = canExpandTo(compression, stored, logical) || logical <= stored
    if (!expandable) return `frames of ${stored} bytes cannot hold ${logical} bytes`
    if (stored > logical * (1 + perFrame) + (sealed ? perFrame : 0)) return `${stored} bytes of frames for ${logical} bytes of value`
    return undefined
  }
  if (sealed) {
    if (stored < TAG_BYTES) return `a sealed payload of ${stored} bytes has no room for its tag`
    stored -= TAG_BYTES
  }
  if (compression === Compression.None) return stored === logical ? undefined : `a plain payload of ${stored} bytes claims ${logical}`
  if (!canExpandTo(compression, stored, logical)) return `${stored} compressed bytes cannot inflate to ${logical}`
  if (stored > logical + Math.floor(logical / 1024) + 1024) return `${stored} compressed bytes for a value of ${logical}`
  return undefined
}

/**
 * The serialized bytes of a verified entry: its payload decompressed (or its frames joined),
 * exactly `logicalLength` of them or a CorruptEntryError. Callers bound `logicalLength` first
 * (see impossibleLength and `maxValueSize`): it is what gets allocated.
 */
export function decodePayload(entry: DecodedEntry, keys: Pick<ResolvedOptions, 'encryption'>): Promise<Buffer> {
  try {
    return Promise.resolve(decodePayloadAtOnce(entry, keys))
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)))
  }
}

/** decodePayload, answered at once (not a promise) when the payload decodes inline (plain,
 *  or compressed within the synchronous limits): a small Redis read then waits for nothing
 *  more. A sealed payload is opened once either way. May throw. */
export function decodePayloadAtOnce(entry: DecodedEntry, keys: Pick<ResolvedOptions, 'encryption'>): Buffer | Promise<Buffer> {
  const { compression, logicalLength } = entry
  const key = keyOf(entry, keys.encryption)
  if ((entry.flags & FLAG_FRAMED) !== 0) {
    const opener = key === undefined ? undefined : new FrameCipher(key, entry.nonce!, entry.headBytes)
    return decodeFramedPayload(entry.payload, compression, logicalLength, opener)
  }
  const payload = openedPayload(entry, key)
  if (decodesInline(compression, payload.length, logicalLength)) return decodedInline(payload, compression, logicalLength)
  return decompressAsync(compression, payload, logicalLength).then(
    (bytes) => ofLogicalLength(bytes, logicalLength),
    (error: unknown) => {
      throw new CorruptEntryError(`payload does not decompress (${(error as Error).message})`)
    },
  )
}

/**
 * decodePayload on this thread, without a promise (a small get's hot path, FileTier): the same
 * bytes or CorruptEntryError, or undefined for a payload it would hand to the thread pool
 * (frames, or a compressed payload over the synchronous limits).
 */
export function decodePayloadSync(entry: DecodedEntry, keys: Pick<ResolvedOptions, 'encryption'>): Buffer | undefined {
  const { compression, logicalLength } = entry
  const key = keyOf(entry, keys.encryption)
  if ((entry.flags & FLAG_FRAMED) !== 0) return undefined
  const payload = openedPayload(entry, key)
  if (!decodesInline(compression, payload.length, logicalLength)) return undefined
  return decodedInline(payload, compression, logicalLength)
}

/** Whether an unframed payload is decoded on this thread: plain, or small enough to inflate
 *  synchronously (see compression.ts). */
function decodesInline(compression: number, stored: number, logicalLength: number): boolean {
  return (compression as Compression) === Compression.None || (stored <= SYNC_CODEC_LIMIT && logicalLength <= SYNC_DECOMPRESS_LIMIT)
}

function decodedInline(payload: Buffer, compression: number, logicalLength: number): Buffer {
  if ((compression as Compression) === Compression.None) return ofLogicalLength(payload, logicalLength)
  let bytes: Buffer
  try {
    bytes = decompressSync(compression, payload, logicalLength)
  } catch (error) {
    throw new CorruptEntryError(`payload does not decompress (${(error as Error).message})`)
  }
  return ofLogicalLength(bytes, logicalLength)
}

function ofLogicalLength(bytes: Buffer, logicalLength: number): Buffer {
  if (bytes.length !== logicalLength)
    throw new CorruptEntryError(`payload decodes to ${bytes.length} bytes, not the ${logicalLength} its trailer records`)
  return bytes
}

/** The whole entry file for a buffered value: its payload compressed when it pays, sealed
 *  under the active key with `encryption` (crypto/seal.ts), header, trailer and checksum
 *  (entry-format.ts). The same bytes go to a file and to Redis. Answered at once (not a
 *  promise) unless the value is compressed in the thread pool (over SYNC_CODEC_LIMIT): a
 *  small set through Redis then spends no turn of the microtask queue on it. May throw. */
export function encodeEntryBytes(
  key: string,
  entry: EntryTimesAndValue,
  options: Pick<ResolvedOptions, 'compression' | 'compressionLevel' | 'compressThreshold' | 'namespace' | 'encryption'>,
): Buffer | Promise<Buffer> {
  const encoded = encodePayload(entry.serialized.bytes, options)
  return encoded instanceof Promise
    ? encoded.then((payload) => entryBytesOf(key, entry, options, payload))
    : entryBytesOf(key, entry, options, encoded)
}

/** An entry's file bytes with its value stored as it is, uncompressed (compress-later's first
 *  write; a maintenance worker compresses it). Never sealed: compress-later is off with
 *  encryption. */
export function encodePlainEntryBytes(key: string, entry: EntryTimesAndValue, options: Pick<ResolvedOptions, 'namespace'>): Buffer {
  return entryBytesOf(
    key,
    entry,
    { namespace: options.namespace, encryption: undefined },
    { compression: Compression.None, payload: entry.serialized.bytes },
  )
}

function entryBytesOf(
  key: string,
  entry: EntryTimesAndValue,
  options: Pick<ResolvedOptions, 'namespace' | 'encryption'>,
  { compression, payload }: EncodedPayload,
): Buffer {
  const { createdAt, expiresAt, tags, grace, serialized } = entry
  const meta = {
    key,
    codec: serialized.codec,
    compression,
    createdAt,
    expiresAt,
    tags,
    grace,
    namespaceId: namespaceIdOf(options.namespace),
  }
  return encodeUnframedEntry(meta, payload, serialized.bytes.length, options.encryption)
}

/** An unframed entry file from its metadata (with a namespace id) and stored payload (as
 *  compressed), sealed under `keyring`'s active key when there is one (then the head and the
 *  trailer's fields are its authenticated data). */
export function encodeUnframedEntry(meta: EntryMeta, payload: Buffer, logicalLength: number, keyring: Keyring | undefined): Buffer {
  const keyBytes = Buffer.from(meta.key)
  const tagBytes = encodeTags(meta.tags)
  if (keyring === undefined) {
    return encodeEntry(meta, keyBytes, tagBytes, payload, logicalLength, 0)
  }
  const nonce = freshNonce()
  const head = encodeHead({ ...meta, flags: FLAG_SEALED, keyId: keyring.activeId, nonce }, keyBytes, tagBytes)
  const trailerFields = encodeTrailerFields(payload.length + TAG_BYTES, logicalLength, meta.grace)
  return encodeEntryAround(head, seal(activeKeyOf(keyring), nonce, [head, trailerFields], payload), trailerFields)
}

/** The stored payload of an unframed entry, opened when sealed (as compressed, not decoded):
 *  authenticated with its head and trailer fields, the very bytes the checksum passed. */
export function openedPayload(entry: DecodedEntry, key: KeyObject | undefined): Buffer {
  if (key === undefined) return entry.payload
  return open(key, entry.nonce!, [entry.headBytes, entry.trailerFields], entry.payload)
}

interface EntryTimesAndValue {
  serialized: { codec: number; bytes: Buffer }
  createdAt: number
  expiresAt: number
  tags: readonly string[]
  grace: number
}
