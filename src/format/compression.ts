import zlib from 'node:zlib'
import type { Transform } from 'node:stream'
import { promisify } from 'node:util'
import type { CompressionName } from '../options.js'
import { deflateRawInPieces, PIECE_BYTES } from './deflate-pieces.js'
import { settleHeapTrim } from './heap-trim.js'

/**
 * Compression ids as stored in entry headers (on-disk contract: never reuse a number).
 * 'deflate' is raw DEFLATE without zlib's wrapper: the entry checksum already covers the
 * bytes, so zlib's adler32 would be a second checksum of the same data.
 */
export const enum Compression {
  None = 0,
  Gzip = 1,
  Deflate = 2,
  Brotli = 3,
  Zstd = 4,
}

export const compressionIds: Record<CompressionName, Compression> = {
  none: Compression.None,
  gzip: Compression.Gzip,
  deflate: Compression.Deflate,
  brotli: Compression.Brotli,
  zstd: Compression.Zstd,
}

/** Values up to this size are (de)compressed with the synchronous zlib call: for small
 *  buffers it is ~10× cheaper than a round trip through the thread pool. Larger ones go to
 *  the pool so the main thread stays responsive. */
export const SYNC_CODEC_LIMIT = 128 * 1024

type ZstdZlib = typeof zlib & {
  zstdCompressSync(b: Uint8Array, o?: object): Buffer
  zstdDecompressSync(b: Uint8Array, o?: object): Buffer
  // zlib's callback functions do not use `this`: typed as plain functions for promisify
  zstdCompress: (b: Uint8Array, o: object, cb: (e: Error | null, r: Buffer) => void) => void
  zstdDecompress: (b: Uint8Array, o: object, cb: (e: Error | null, r: Buffer) => void) => void
  createZstdDecompress(o?: object): Transform
  constants: typeof zlib.constants & { ZSTD_c_compressionLevel: number }
}
const z = zlib as ZstdZlib

/** zlib works in `chunkSize` steps of output; each step of an async call is a thread-pool
 *  round trip plus a main-thread callback, and the default 16 KiB makes a 1 MiB frame cost ~64
 *  of them. One step per input instead, up to a frame (memory: one such buffer per operation
 *  in flight), never a 1 MiB buffer for a 64 KiB value. */
const MAX_CHUNK = 1024 * 1024

function chunkFor(inputBytes: number): number {
  return Math.min(MAX_CHUNK, Math.max(1024, inputBytes))
}

/** Brotli's window (log2 bytes) for an input of `bytes`: just large enough to reach back over
 *  all of it, since a larger one finds nothing more. Its default (4 MiB) would make every
 *  reader of a 64 KiB value or a 1 MiB frame allocate a ring buffer sized for 4 MiB. */
function brotliWindow(bytes: number): number {
  const { BROTLI_MIN_WINDOW_BITS, BROTLI_MAX_WINDOW_BITS } = zlib.constants
  return Math.min(BROTLI_MAX_WINDOW_BITS, Math.max(BROTLI_MIN_WINDOW_BITS, Math.ceil(Math.log2(bytes + 1))))
}

function options(id: Compression, level: number, inputBytes: number): object {
  const chunkSize = chunkFor(inputBytes)
  switch (id) {
    case Compression.Brotli: {
      const { BROTLI_PARAM_QUALITY, BROTLI_PARAM_LGWIN, BROTLI_PARAM_SIZE_HINT } = zlib.constants
      const params = { [BROTLI_PARAM_QUALITY]: level, [BROTLI_PARAM_LGWIN]: brotliWindow(inputBytes), [BROTLI_PARAM_SIZE_HINT]: inputBytes }
      return { params, chunkSize }
    }
    case Compression.Zstd:
      return { params: { [z.constants.ZSTD_c_compressionLevel]: level }, chunkSize }
    default:
      return { level, chunkSize }
  }
}

/** Raw DEFLATE of a buffered value from this size is coded piece by piece as pays
 *  (deflate-pieces.ts); a smaller one is one piece anyway. */
const PIECES_FROM = PIECE_BYTES

export function compressSync(id: Compression, level: number, input: Buffer): Buffer {
  if (id === Compression.None) return input
  settleHeapTrim() // each call below mallocs and frees its codec's state: see heap-trim.ts
  const o = options(id, level, input.length)
  switch (id) {
    case Compression.Gzip:
      return zlib.gzipSync(input, o)
    case Compression.Deflate:
      return input.length >= PIECES_FROM ? deflateRawInPieces(input, level) : zlib.deflateRawSync(input, o)
    case Compression.Brotli:
      return zlib.brotliCompressSync(input, o)
    case Compression.Zstd:
      return z.zstdCompressSync(input, o)
    default:
      return input
  }
}

const gzipAsync = promisify(zlib.gzip)
const deflateRawAsync = promisify(zlib.deflateRaw)
const brotliAsync = promisify(zlib.brotliCompress)
const gunzipAsync = promisify(zlib.gunzip)
const inflateRawAsync = promisify(zlib.inflateRaw)
const brotliDecompressAsync = promisify(zlib.brotliDecompress)

export async function compressAsync(id: Compression, level: number, input: Buffer): Promise<Buffer> {
  const o = options(id, level, input.length)
  switch (id) {
    case Compression.Gzip:
      return gzipAsync(input, o)
    case Compression.Deflate:
      return deflateRawAsync(input, o)
    case Compression.Brotli:
      return brotliAsync(input, o)
    case Compression.Zstd:
      return promisify(z.zstdCompress)(input, o)
    default:
      return input
  }
}

/**
 * Decompresses at most `maxOutput` bytes: a lying header cannot make us inflate a bomb.
 * The output buffer is sized for the whole value (callers pass the entry's logical length,
 * already bounded): zlib's default 16 KiB chunks cost a 64 KiB value four buffers and a
 * concatenating copy, ~25 % of the inflate and much of a read's garbage (issue 14's profile
 * of W4-get). One byte more than the value lets the codec report its end in the same chunk.
 */
export function decompressSync(id: Compression, input: Buffer, maxOutput: number): Buffer {
  const o = { maxOutputLength: Math.max(1, maxOutput), chunkSize: Math.max(64, maxOutput + 1) }
  switch (id) {
    case Compression.None:
      return input
    case Compression.Gzip:
      return zlib.gunzipSync(input, o)
    case Compression.Deflate:
      return zlib.inflateRawSync(input, o)
    case Compression.Brotli:
      return zlib.brotliDecompressSync(input, o)
    case Compression.Zstd:
      return z.zstdDecompressSync(input, o)
    default:
      throw new Error(`unknown compression ${id as number}`)
  }
}

export async function decompressAsync(id: Compression, input: Buffer, maxOutput: number): Promise<Buffer> {
  const o = { maxOutputLength: Math.max(1, maxOutput), chunkSize: Math.min(MAX_CHUNK, Math.max(64 * 1024, maxOutput)) }
  switch (id) {
    case Compression.None:
      return input
    case Compression.Gzip:
      return gunzipAsync(input, o)
    case Compression.Deflate:
      return inflateRawAsync(input, o)
    case Compression.Brotli:
      return brotliDecompressAsync(input, o)
    case Compression.Zstd:
      return promisify(z.zstdDecompress)(input, o)
    default:
      throw new Error(`unknown compression ${id as number}`)
  }
}

/**
 * The most bytes one stored byte can decompress to, by the codec's own format: a claimed
 * length above `stored × this` cannot be true, so the entry is corrupt, whatever its checksum
 * says. These are the formats' limits, not typical ratios, so no real value is ever refused:
 * DEFLATE (and gzip around it) codes a 258-byte match in no fewer than 2 bits (1032:1);
 * zstd's densest block is an RLE block, 4 bytes for at most 128 KiB (32768:1); a brotli
 * meta-block holds at most 16 MiB and its header alone takes more than a byte. Brotli's limit
 * is too high to bound anything useful: `maxValueSize` is what bounds a brotli value.
 */
const MAX_EXPANSION: Record<Compression, number> = {
  [Compression.None]: 1,
  [Compression.Gzip]: 1032,
  [Compression.Deflate]: 1032,
  [Compression.Brotli]: 16 * 1024 * 1024,
  [Compression.Zstd]: 32768,
}

/** Whether `stored` bytes of `id` could decompress to `logical` bytes (unknown codecs: no). */
export function canExpandTo(id: Compression, stored: number, logical: number): boolean {
  const most = MAX_EXPANSION[id] as number | undefined
  return most !== undefined && logical <= stored * most
}

/** The codec's decompressor as a stream, for payloads decoded a piece at a time (getStream). */
export function decompressStream(id: Compression): Transform {
  const o = { chunkSize: 256 * 1024 }
  switch (id) {
    case Compression.Gzip:
      return zlib.createGunzip(o)
    case Compression.Deflate:
      return zlib.createInflateRaw(o)
    case Compression.Brotli:
      return zlib.createBrotliDecompress(o)
    case Compression.Zstd:
      if (typeof z.createZstdDecompress !== 'function') throw new Error('this Node.js has no zstd (22.15 or later does)')
      return z.createZstdDecompress(o)
    default:
      throw new Error(`unknown compression ${id as number}`)
  }
}

/** Bytes of a large value sampled to judge whether it is worth compressing. */
export const PROBE_BYTES = 64 * 1024
/** Compressed output is kept only if it is smaller than this share of the input, and a
 *  sample that shrinks by less says the rest is not worth a pass: already-compressed data
 *  (tar.gz, images, zstd) would cost compression time, and every read a decompression, for
 *  no space. The one rule for buffered values, stream frames and the probe. */
export const KEEP_COMPRESSED_RATIO = 0.9

/** Pieces a sample is taken in, spread over the bytes judged (sampleOf). */
const SAMPLE_PIECES = 4

/** Compresses a sample of `bytes` (`sampleBytes` of them, sampleOf) with fast DEFLATE and says
 *  whether compression pays off. */
export function worthCompressing(bytes: Buffer, sampleBytes: number): boolean {
  if (bytes.length === 0) return false
  const sample = sampleOf(bytes, sampleBytes)
  const probe = zlib.deflateRawSync(sample, { level: 1 })
  return probe.length < sample.length * KEEP_COMPRESSED_RATIO
}

/**
 * `sampleBytes` of `bytes` in SAMPLE_PIECES pieces, from its start to its end, laid end to end
 * (all of `bytes` when shorter). Spread, not the head: a value or block that begins with bytes
 * that do not compress (an embedded image, a tarball's compressed member) and goes on with text
 * was judged by its head alone and stored raw whole (64 KiB of random bytes before 900 KB of
 * JSON: 973 KB on disk instead of 154 KB). The same cost, one DEFLATE of `sampleBytes`, and
 * its ratio is the whole's as far as the pieces can tell.
 */
function sampleOf(bytes: Buffer, sampleBytes: number): Buffer {
  if (bytes.length <= sampleBytes) return bytes
  const piece = Math.ceil(sampleBytes / SAMPLE_PIECES)
  const stride = (bytes.length - piece) / (SAMPLE_PIECES - 1)
  return Buffer.concat(
    Array.from({ length: SAMPLE_PIECES }, (_, i) => {
      const at = Math.floor(i * stride)
      return bytes.subarray(at, at + piece)
    }),
  )
}
