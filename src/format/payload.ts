/**
 * The payload of a buffered entry (`set`): the serialized bytes, compressed when that pays.
 * Streamed entries (`setStream`) use frames instead (frames.ts); both are read back here.
 */
import type { ResolvedOptions } from '../options.js'
import {
  Compression, compressAsync, compressionIds, compressSync, decompressAsync, decompressSync,
  KEEP_COMPRESSED_RATIO, PROBE_BYTES, SYNC_CODEC_LIMIT, worthCompressing,
} from './compression.js'
import { FLAG_FRAMED, type DecodedEntry } from './entry-format.js'
import { decodeFramedPayload } from './frames.js'

/** Values up to this size are decompressed synchronously (see compression.ts). */
const SYNC_DECOMPRESS_LIMIT = 1024 * 1024

export interface EncodedPayload {
  compression: Compression
  payload: Buffer
}

/**
 * Compresses `bytes` with the cache's codec when it is at least `compressThreshold` long and
 * the result saves at least a tenth; otherwise returns them as they are. Big values are
 * probed first, so an already-compressed artifact costs one 64 KiB trial, not a full pass.
 */
export async function encodePayload(bytes: Buffer, options: Pick<ResolvedOptions, 'compression' | 'compressionLevel' | 'compressThreshold'>): Promise<EncodedPayload> {
  const id = compressionIds[options.compression]
  if (id === Compression.None || bytes.length < options.compressThreshold) return { compression: Compression.None, payload: bytes }
  if (bytes.length > 2 * PROBE_BYTES && !worthCompressing(bytes.subarray(0, PROBE_BYTES))) return { compression: Compression.None, payload: bytes }
  const level = options.compressionLevel
  const compressed = bytes.length <= SYNC_CODEC_LIMIT ? compressSync(id, level, bytes) : await compressAsync(id, level, bytes)
  if (compressed.length >= bytes.length * KEEP_COMPRESSED_RATIO) return { compression: Compression.None, payload: bytes }
  return { compression: id, payload: compressed }
}

/** The serialized bytes of a verified entry: its payload decompressed (or its frames joined). */
export async function decodePayload(entry: DecodedEntry): Promise<Buffer> {
  const { payload, compression, logicalLength } = entry
  if ((entry.flags & FLAG_FRAMED) !== 0) return decodeFramedPayload(payload, compression, logicalLength)
  if (compression === Compression.None) return payload
  return payload.length <= SYNC_CODEC_LIMIT && logicalLength <= SYNC_DECOMPRESS_LIMIT
    ? decompressSync(compression, payload, logicalLength)
    : decompressAsync(compression, payload, logicalLength)
}
