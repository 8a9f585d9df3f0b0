/**
 * The entry file format, versions 1 and 2. This layout is a contract: files written by one
 * larder must be read by every later one, so a change means a new version byte, never an edit
 * of what a version means. Fixtures of each version live in `fixtures/`. Both versions live in
 * the same tree (`<dir>/v1/`, the tree's own version, see layout.ts): a reader tells them
 * apart by byte 4, and every version it knows stays readable.
 *
 *   offset  size  field
 *   0       4     magic "LRDR"
 *   4       1     format version (1 or 2; new entries are written as 2)
 *   5       1     codec: how the value became bytes (serializers.ts `Codec`)
 *   6       1     compression of the payload (compression.ts `Compression`)
 *   7       1     flags: bit 0 FRAMED (payload is a sequence of frames, see frames.ts);
 *                 bit 1 SEALED (v2 only: the payload is encrypted, crypto/seal.ts); others 0
 *   8       8     createdAt: float64 LE, milliseconds since the epoch (sub-millisecond)
 *   16      8     expiresAt: float64 LE, milliseconds since the epoch; 0 = never
 *   24      4     key length in bytes, uint32 LE
 *   28      4     tags length in bytes, uint32 LE
 *   -- v2 only --
 *   32      8     namespace id: xxhash64 (seed 0) of the namespace name's UTF-8, uint64 LE
 *   40      8     key fingerprint: which encryption key sealed the payload (crypto/keys.ts
 *                 `keyFingerprint`: HMAC of the id under the key; entries written before it
 *                 carry sha256 of the id alone, still read), uint64 LE; 0 when not SEALED
 *   48      12    nonce of AES-256-GCM (the base nonce of a framed payload); zeros when not SEALED
 *   60      4     reserved, 0
 *   -- both --
 *   H       k     key, UTF-8 (H = 32 in v1, 64 in v2)
 *   H+k     t     tags, UTF-8, each tag followed by a NUL byte
 *   ...     p     payload: the serialized value, compressed or not (sealed: then encrypted)
 *   end-32  8     stored payload length (p), uint64 LE
 *   end-24  8     logical length (the serialized value before compression), uint64 LE
 *   end-16  4     trailer magic "LRDE"
 *   end-12  4     grace: whole seconds (uint32 LE, rounded up) an expired entry stays on disk
 *                 for stale-if-error reads (`getOrSet`'s `grace`); 0 = none
 *   end-8   8     xxhash64, seed 0, of every byte before it, uint64 LE
 *
 * Version 2 adds the namespace id, checked on every read (an entry copied from another
 * namespace's directory under this one is corrupt, not served), and what encryption needs.
 * A larder that knows only v1 reads a v2 entry as corrupt (and removes it): processes sharing
 * a directory are upgraded together.
 *
 * The grace field was "reserved (0)" when v1 was first written. It stays within v1 because
 * it changes no reader's verdict: readers that predate it never looked at those four bytes
 * (they check the lengths, the trailer magic and the checksum, which covers the field), so
 * they read an entry with a grace as a plain entry that expired at expiresAt (and may remove
 * it then); entries written before it have 0, no grace. `fixtures/v1-grace/` holds entries
 * with a grace, and the tests read them both ways.
 *
 * Why a trailer: a streamed entry learns its lengths only at the end, so they go after the
 * payload, and the file can still be written front to back in one pass with the checksum
 * computed as it goes. The checksum covers header, metadata, payload and trailer fields,
 * so verification needs no decompression (nor any key) and any flipped bit anywhere is caught.
 */
import { LarderError } from '../errors.js'
import { MAX_KEY_BYTES, MAX_TAG_BYTES, MAX_TAGS } from '../options.js'
import { checksum } from './checksum.js'

export const MAGIC = 0x5244524c // "LRDR" read as uint32 LE
export const TRAILER_MAGIC = 0x4544524c // "LRDE"
/** The version of the directory tree (`<dir>/v1/`): entries of every format version live in it. */
export const TREE_VERSION = 1
/** The version new entries are written in. */
export const FORMAT_VERSION = 2
/** The fixed header of v1 (and the first 32 bytes of v2's, which both share). */
export const HEADER_BYTES = 32
/** The fixed header of v2. */
export const V2_HEADER_BYTES = 64
export const NONCE_BYTES = 12
/** Header flag: the payload is framed (streamed entries with compression or encryption). */
export const FLAG_FRAMED = 1
/** Header flag (v2): the payload is encrypted (crypto/seal.ts). */
export const FLAG_SEALED = 2
export const TRAILER_BYTES = 32
/** The longest tags block a valid entry can have; bounds what a reader will allocate. */
export const MAX_TAGS_BYTES = MAX_TAGS * (MAX_TAG_BYTES + 1)

export interface EntryMeta {
  key: string
  codec: number
  compression: number
  createdAt: number
  expiresAt: number
  tags: readonly string[]
  /** Header flags (FLAG_FRAMED); 0 when absent. */
  flags?: number
  /** How long (ms) an expired entry is kept for stale-if-error reads; 0 or absent = none. */
  grace?: number
  /** The namespace id (v2); undefined writes a v1 entry (fixture scripts only). */
  namespaceId?: bigint
  /** Sealed entries (FLAG_SEALED): the key's fingerprint and the nonce. */
  keyId?: bigint
  nonce?: Buffer
}

/** What the fixed header and metadata say, before the payload is read (the grace is in the
 *  trailer). */
export interface EntryHead extends Omit<EntryMeta, 'grace'> {
  flags: number
  /** 1 or 2 (byte 4). */
  version: number
  /** Offset of the first payload byte. */
  payloadOffset: number
}

export interface EntryTrailer {
  storedLength: number
  logicalLength: number
  /** ms an expired entry is kept (whole seconds on disk); 0 = none. */
  grace: number
  checksum: bigint
}

/** The most the grace field holds: 2³² − 1 seconds (136 years), i.e. for ever. */
const MAX_GRACE_SECONDS = 0xffffffff

/** Why a file is not a valid entry; each reads as a miss and is removed. */
export class CorruptEntryError extends LarderError {
  /** The inode of the file judged, when the judge knows it: only that file may be removed
   *  (another process may have renamed a fresh entry into its place since). */
  readonly ino: number | undefined

  constructor(reason: string, ino?: number) {
    super('ERR_CORRUPT', `Corrupt cache entry: ${reason}`)
    this.ino = ino
  }

  /** This judgement, made of the file with inode `ino`. */
  of(ino: number): CorruptEntryError {
    return this.ino === ino ? this : new CorruptEntryError(this.message.slice('Corrupt cache entry: '.length), ino)
  }
}

export function encodeTags(tags: readonly string[]): Buffer {
  if (tags.length === 0) return EMPTY
  return Buffer.from(tags.map((t) => t + '\0').join(''))
}

const EMPTY = Buffer.alloc(0)

/** Header and metadata bytes: everything before the payload. */
export function encodeHead(meta: EntryMeta, keyBytes: Buffer, tagBytes: Buffer): Buffer {
  const head = Buffer.allocUnsafe(headBytes(meta, keyBytes, tagBytes))
  writeHead(head, meta, keyBytes, tagBytes, meta.flags ?? 0)
  return head
}

function headBytes(meta: EntryMeta, keyBytes: Buffer, tagBytes: Buffer): number {
  return (meta.namespaceId !== undefined ? V2_HEADER_BYTES : HEADER_BYTES) + keyBytes.length + tagBytes.length
}

/** Writes the head at the start of `into` (`flags` in place of meta.flags), every byte of it:
 *  `into` may be uninitialised memory (allocUnsafe), so what no field sets (a v2 header's key
 *  id and nonce when unsealed) is zeroed here. */
function writeHead(into: Buffer, meta: EntryMeta, keyBytes: Buffer, tagBytes: Buffer, flags: number): void {
  const v2 = meta.namespaceId !== undefined
  const fixed = v2 ? V2_HEADER_BYTES : HEADER_BYTES
  into.fill(0, 0, fixed)
  into.writeUInt32LE(MAGIC, 0)
  into[4] = v2 ? FORMAT_VERSION : 1
  into[5] = meta.codec
  into[6] = meta.compression
  into[7] = flags
  into.writeDoubleLE(meta.createdAt, 8)
  into.writeDoubleLE(meta.expiresAt, 16)
  into.writeUInt32LE(keyBytes.length, 24)
  into.writeUInt32LE(tagBytes.length, 28)
  if (meta.namespaceId !== undefined) {
    writeId64(into, meta.namespaceId, 32)
    if (meta.keyId !== undefined) into.writeBigUInt64LE(meta.keyId, 40)
    meta.nonce?.copy(into, 48, 0, NONCE_BYTES)
  }
  keyBytes.copy(into, fixed)
  tagBytes.copy(into, fixed + keyBytes.length)
}

/** Bytes of the head (fixed header, key and tags) of an entry whose first 32 bytes are
 *  `bytes`: what to read when decodeHead asked for more. */
export function headLength(bytes: Buffer): number {
  return (bytes[4] === 1 ? HEADER_BYTES : V2_HEADER_BYTES) + bytes.readUInt32LE(24) + bytes.readUInt32LE(28)
}

/** The trailer without its checksum (24 bytes): lengths, trailer magic and grace (ms,
 *  stored in whole seconds rounded up, so an entry is never kept for less than asked). */
export function encodeTrailerFields(storedLength: number, logicalLength: number, grace = 0): Buffer {
  const fields = Buffer.allocUnsafe(TRAILER_BYTES - 8)
  writeTrailerFields(fields, 0, storedLength, logicalLength, grace)
  return fields
}

/** Writes the trailer's fields (encodeTrailerFields) at `at`, every byte of them. */
function writeTrailerFields(into: Buffer, at: number, storedLength: number, logicalLength: number, grace = 0): void {
  writeLength64(into, storedLength, at)
  writeLength64(into, logicalLength, at + 8)
  into.writeUInt32LE(TRAILER_MAGIC, at + 16)
  into.writeUInt32LE(grace > 0 ? Math.min(MAX_GRACE_SECONDS, Math.ceil(grace / 1000)) : 0, at + 20)
}

/** A length (a whole number below 2^53) as a uint64 LE, in two 32-bit halves: the bytes
 *  writeBigUInt64LE(BigInt(n)) writes, without making a BigInt per field of every entry. */
function writeLength64(into: Buffer, n: number, at: number): void {
  into.writeUInt32LE(n % 0x1_0000_0000, at)
  into.writeUInt32LE(Math.floor(n / 0x1_0000_0000), at + 4)
}

/** A uint64 LE length read as a number without a BigInt (~40 ns against ~140 for
 *  readBigUInt64LE and its Number()): exact up to Number.MAX_SAFE_INTEGER; past it rounded,
 *  but still past it, so no length an entry can have, as the callers judge it. */
function readLength64(from: Buffer, at: number): number {
  return from.readUInt32LE(at + 4) * 0x1_0000_0000 + from.readUInt32LE(at)
}

/**
 * Ids as 64-bit fields (the namespace id every v2 entry carries) without a BigInt made or
 * converted per entry: nearly every entry a process writes or reads carries the same one, so
 * the last id is kept with its two 32-bit halves (writeBigUInt64LE and readBigUInt64LE cost
 * ~150 ns each; two 32-bit reads or writes ~50).
 */
let lastId = 0n
let lastLow = 0
let lastHigh = 0

function writeId64(into: Buffer, id: bigint, at: number): void {
  if (id !== lastId) {
    lastLow = Number(id & 0xffff_ffffn)
    lastHigh = Number(id >> 32n)
    lastId = id
  }
  into.writeUInt32LE(lastLow, at)
  into.writeUInt32LE(lastHigh, at + 4)
}

function readId64(from: Buffer, at: number): bigint {
  const low = from.readUInt32LE(at)
  const high = from.readUInt32LE(at + 4)
  if (low === lastLow && high === lastHigh) return lastId
  lastId = from.readBigUInt64LE(at)
  lastLow = low
  lastHigh = high
  return lastId
}

/**
 * A whole entry file, checksum included, written straight into one buffer (`flags` in place of
 * meta.flags): the same bytes as encodeEntryAround(encodeHead(…), payload, encodeTrailerFields(…)),
 * with one allocation and one copy of the payload instead of three buffers made and copied
 * again. It is every small set's encoding (W8's write-through set: the largest item of
 * larder's own work per set, issue 10).
 */
export function encodeEntry(
  meta: EntryMeta,
  keyBytes: Buffer,
  tagBytes: Buffer,
  payload: Buffer,
  logicalLength: number,
  flags = meta.flags ?? 0,
): Buffer {
  const head = headBytes(meta, keyBytes, tagBytes)
  const total = head + payload.length + TRAILER_BYTES
  const file = Buffer.allocUnsafe(total)
  writeHead(file, meta, keyBytes, tagBytes, flags)
  payload.copy(file, head)
  writeTrailerFields(file, head + payload.length, payload.length, logicalLength, meta.grace)
  file.writeBigUInt64LE(checksum(file.subarray(0, total - 8)), total - 8)
  return file
}

/** A whole entry file from its head, payload and trailer fields (encodeTrailerFields), with
 *  the checksum appended. */
export function encodeEntryAround(head: Buffer, payload: Buffer, trailerFields: Buffer): Buffer {
  const total = head.length + payload.length + TRAILER_BYTES
  const file = Buffer.allocUnsafe(total)
  head.copy(file, 0)
  payload.copy(file, head.length)
  trailerFields.copy(file, head.length + payload.length)
  file.writeBigUInt64LE(checksum(file.subarray(0, total - 8)), total - 8)
  return file
}

/** The creation time an entry's first bytes give (unchecked: a hint, judged with the rest
 *  when the entry is decoded), or undefined when they are no entry's. */
export function createdAtOf(bytes: Buffer): number | undefined {
  return bytes.length >= 16 && bytes.readUInt32LE(0) === MAGIC ? bytes.readDoubleLE(8) : undefined
}

/**
 * Parses and sanity-checks the header and metadata from the first bytes of a file.
 * Every length is checked against `fileSize` before anything is allocated from it, so a
 * lying header can neither over-read nor make us allocate unbounded memory.
 * Returns `undefined` when `bytes` is too short to hold the metadata (read more, then retry).
 */
export function decodeHead(bytes: Buffer, fileSize: number): EntryHead | undefined {
  if (fileSize < HEADER_BYTES + TRAILER_BYTES) throw new CorruptEntryError(`file of ${fileSize} bytes is shorter than an empty entry`)
  if (bytes.length < HEADER_BYTES) return undefined
  if (bytes.readUInt32LE(0) !== MAGIC) throw new CorruptEntryError('bad magic (not a larder entry)')
  const version = bytes[4]!
  if (version !== 1 && version !== 2) throw new CorruptEntryError(`format version ${version} is not 1 or 2`)
  const flags = bytes[7]!
  if ((flags & ~(version === 1 ? FLAG_FRAMED : FLAG_FRAMED | FLAG_SEALED)) !== 0) throw new CorruptEntryError(`unknown flags ${flags}`)
  const fixed = version === 1 ? HEADER_BYTES : V2_HEADER_BYTES
  if (fileSize < fixed + TRAILER_BYTES) throw new CorruptEntryError(`file of ${fileSize} bytes is shorter than an empty entry`)
  if (bytes.length < fixed) return undefined
  const keyLength = bytes.readUInt32LE(24)
  const tagsLength = bytes.readUInt32LE(28)
  if (keyLength === 0 || keyLength > MAX_KEY_BYTES) throw new CorruptEntryError(`key length ${keyLength} out of range`)
  if (tagsLength > MAX_TAGS_BYTES) throw new CorruptEntryError(`tags length ${tagsLength} out of range`)
  const payloadOffset = fixed + keyLength + tagsLength
  if (payloadOffset + TRAILER_BYTES > fileSize) throw new CorruptEntryError('metadata runs past the end of the file')
  if (bytes.length < payloadOffset) return undefined
  const createdAt = bytes.readDoubleLE(8)
  const expiresAt = bytes.readDoubleLE(16)
  if (!Number.isFinite(createdAt) || !Number.isFinite(expiresAt) || createdAt < 0 || expiresAt < 0) {
    throw new CorruptEntryError('timestamps out of range')
  }
  const key = bytes.toString('utf8', fixed, fixed + keyLength)
  const tags = tagsLength === 0 ? [] : decodeTags(bytes, fixed + keyLength, payloadOffset)
  const head: EntryHead = { key, codec: bytes[5]!, compression: bytes[6]!, flags, version, createdAt, expiresAt, tags, payloadOffset }
  if (version === 2) {
    head.namespaceId = readId64(bytes, 32)
    // SEALED and a key fingerprint go together (a fingerprint is never 0), so a flipped flag
    // bit is corrupt rather than "sealed under a key we lack" (which would keep the file).
    const keyed = bytes.readUInt32LE(40) !== 0 || bytes.readUInt32LE(44) !== 0
    if (((flags & FLAG_SEALED) !== 0) !== keyed) throw new CorruptEntryError('SEALED flag and key fingerprint disagree')
    if (keyed) {
      head.keyId = bytes.readBigUInt64LE(40)
      head.nonce = Buffer.from(bytes.subarray(48, 48 + NONCE_BYTES))
    }
  }
  return head
}

/**
 * The tags block: each tag followed by a NUL, at most MAX_TAGS of them, none empty. Counted
 * before anything is split out: every tag costs a stamp lookup on each read of the entry, so
 * a forged block of thousands of one-letter tags must be refused, not parsed.
 */
function decodeTags(bytes: Buffer, start: number, end: number): string[] {
  if (bytes[end - 1] !== 0) throw new CorruptEntryError('tags block does not end with NUL')
  let count = 0
  for (let at = start; at < end; at++) {
    const nul = bytes.indexOf(0, at)
    if (nul === at) throw new CorruptEntryError('empty tag')
    if (++count > MAX_TAGS) throw new CorruptEntryError(`more than ${MAX_TAGS} tags`)
    at = nul
  }
  return bytes.toString('utf8', start, end - 1).split('\0')
}

/** Parses the 32-byte trailer and checks it agrees with the file's size. `checksum`: its
 *  last 8 bytes, when the caller has read them already (decodeEntry compared them). */
export function decodeTrailer(trailer: Buffer, fileSize: number, payloadOffset: number, checksum?: bigint): EntryTrailer {
  if (trailer.length !== TRAILER_BYTES || trailer.readUInt32LE(16) !== TRAILER_MAGIC) throw new CorruptEntryError('bad trailer')
  const storedLength = readLength64(trailer, 0)
  const logicalLength = readLength64(trailer, 8)
  if (storedLength !== fileSize - payloadOffset - TRAILER_BYTES)
    throw new CorruptEntryError('payload length does not match the file size (truncated or extended)')
  if (logicalLength > Number.MAX_SAFE_INTEGER) throw new CorruptEntryError('logical length out of range')
  return {
    storedLength,
    logicalLength,
    grace: trailer.readUInt32LE(20) * 1000,
    checksum: checksum ?? trailer.readBigUInt64LE(24),
  }
}

export interface DecodedEntry extends EntryHead, EntryTrailer {
  /** The stored payload bytes (a view into the file buffer). */
  payload: Buffer
  /** Everything before the payload (a view): with `trailerFields`, a sealed payload's
   *  authenticated data. */
  headBytes: Buffer
  /** The trailer's fields as stored, without the checksum (a view, 24 bytes). */
  trailerFields: Buffer
}

/**
 * Verifies and parses a whole entry file held in memory. The checksum is checked first,
 * so nothing below it ever looks at unverified bytes except to bound its own reads.
 */
export function decodeEntry(file: Buffer): DecodedEntry {
  const size = file.length
  if (size < HEADER_BYTES + TRAILER_BYTES) throw new CorruptEntryError(`file of ${size} bytes is shorter than an empty entry`)
  const stored = file.readBigUInt64LE(size - 8)
  if (checksum(file.subarray(0, size - 8)) !== stored) {
    // Name the likelier cause: a foreign file rather than a damaged entry.
    throw new CorruptEntryError(file.readUInt32LE(0) === MAGIC ? 'checksum mismatch' : 'bad magic (not a larder entry)')
  }
  const head = decodeHead(file, size)!
  const trailer = decodeTrailer(file.subarray(size - TRAILER_BYTES), size, head.payloadOffset, stored)
  // One literal of known shape rather than spreads of both (a read's hot path: spreads build
  // dictionary-mode objects, slower to make and to read).
  return {
    key: head.key,
    codec: head.codec,
    compression: head.compression,
    flags: head.flags,
    version: head.version,
    namespaceId: head.namespaceId,
    keyId: head.keyId,
    nonce: head.nonce,
    createdAt: head.createdAt,
    expiresAt: head.expiresAt,
    tags: head.tags,
    payloadOffset: head.payloadOffset,
    storedLength: trailer.storedLength,
    logicalLength: trailer.logicalLength,
    grace: trailer.grace,
    checksum: trailer.checksum,
    payload: file.subarray(head.payloadOffset, size - TRAILER_BYTES),
    headBytes: file.subarray(0, head.payloadOffset),
    trailerFields: file.subarray(size - TRAILER_BYTES, size - 8),
  }
}
