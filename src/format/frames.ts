/**
 * The framed payload of streamed entries (header flag FRAMED): a sequence of frames, each one
 * block of the stream compressed on its own, or stored raw when it does not compress.
 *
 *   frame = rawLength uint32 LE (bit 31 set = compressed) · storedLength uint32 LE · stored bytes
 *
 * Why frames rather than one zlib stream: one stream compresses on one core, and spends as
 * long on a tarball's already-compressed members as on its text. Independent 1 MiB blocks are
 * judged one by one (random blocks cost a 32 KiB trial across the block, then are stored raw) and compressed
 * several at a time in zlib's thread pool, in both directions, while output keeps its order.
 */
import { TAG_BYTES, type FrameCipher } from '../crypto/seal.js'
import { CorruptEntryError } from './entry-format.js'
import {
  canExpandTo,
  type Compression,
  compressAsync,
  decompressAsync,
  decompressSync,
  KEEP_COMPRESSED_RATIO,
  worthCompressing,
} from './compression.js'

export const FRAME_HEADER_BYTES = 8
/** Stream bytes per frame. */
export const FRAME_BYTES = 1024 * 1024
/** Largest rawLength a reader accepts, so a lying frame header cannot make it allocate more. */
const MAX_FRAME_BYTES = 4 * FRAME_BYTES
const COMPRESSED = 0x8000_0000
/** Bytes of a block (sampled across it) compressed as a trial before the whole block is. */
const SAMPLE_BYTES = 32 * 1024

export interface Frame {
  compressed: boolean
  rawLength: number
  stored: Buffer
}

/** Compresses one block into a frame (header + stored bytes), or stores it raw. */
export async function encodeFrame(block: Buffer, compression: Compression, level: number, threshold: number): Promise<Buffer[]> {
  let stored = block
  let compressed = false
  if (block.length >= threshold && worthCompressing(block, SAMPLE_BYTES)) {
    const out = await compressAsync(compression, level, block)
    if (out.length < block.length * KEEP_COMPRESSED_RATIO) {
      stored = out
      compressed = true
    }
  }
  return frameParts(block.length, compressed, stored)
}
/** Stores one block raw, without trying to compress it. */
encodeFrame.raw = (block: Buffer): Buffer[] => frameParts(block.length, false, block)

function frameParts(rawLength: number, compressed: boolean, stored: Buffer): Buffer[] {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  header.writeUInt32LE((rawLength | (compressed ? COMPRESSED : 0)) >>> 0, 0)
  header.writeUInt32LE(stored.length, 4)
  return [header, stored]
}

/**
 * Parses a frame header; `remaining` is how many payload bytes follow it. A header that lies
 * is refused before anything is read or allocated from it: an empty frame (the writer never
 * makes one), a block over 4 MiB, a length past the payload, a raw frame whose lengths differ,
 * a compressed frame no smaller than its block (the writer stores those raw), or one its
 * codec could not inflate to the length it claims (compression.ts `canExpandTo`).
 */
export function decodeFrameHeader(
  header: Buffer,
  remaining: number,
  compression: Compression,
  sealed = false,
): { compressed: boolean; rawLength: number; storedLength: number } {
  const word = header.readUInt32LE(0)
  const compressed = (word & COMPRESSED) !== 0
  const rawLength = word & ~COMPRESSED
  const storedLength = header.readUInt32LE(4)
  // A sealed frame's stored bytes end with its tag; the rules below are the inner bytes'. Only
  // a sealed frame may be empty (the one frame of an empty stream, authenticated as the last).
  const inner = sealed ? storedLength - TAG_BYTES : storedLength
  if ((rawLength === 0 && !sealed) || inner < 0 || rawLength > MAX_FRAME_BYTES || storedLength > remaining) {
    throw new CorruptEntryError('bad frame header')
  }
  if (compressed ? inner >= rawLength || !canExpandTo(compression, inner, rawLength) : inner !== rawLength) {
    throw new CorruptEntryError('bad frame header')
  }
  return { compressed, rawLength, storedLength }
}

/** The block a frame holds. A frame that does not decompress to its recorded length is corrupt. */
export async function decodeFrame(frame: Frame, compression: Compression): Promise<Buffer> {
  if (!frame.compressed) return frame.stored
  let out: Buffer
  try {
    out = await decompressAsync(compression, frame.stored, frame.rawLength)
  } catch (error) {
    throw new CorruptEntryError(`frame does not decompress (${(error as Error).message})`)
  }
  if (out.length !== frame.rawLength) throw new CorruptEntryError('frame decompresses to the wrong length')
  return out
}

/**
 * All blocks of a framed payload held in memory (the buffered `get` of a small streamed
 * entry), in one buffer of `logicalLength` bytes, which the caller has bounded. Every frame
 * header is checked, and the blocks they claim added up, before a single frame is inflated:
 * frames that claim more (or less) than the entry's logical length make it corrupt at once.
 */
export async function decodeFramedPayload(
  payload: Buffer,
  compression: Compression,
  logicalLength: number,
  opener?: FrameCipher,
): Promise<Buffer> {
  const frames: Frame[] = []
  let total = 0
  for (let at = 0; at < payload.length;) {
    if (payload.length - at < FRAME_HEADER_BYTES) throw new CorruptEntryError('truncated frame header')
    const header = payload.subarray(at, at + FRAME_HEADER_BYTES)
    const { compressed, rawLength, storedLength } = decodeFrameHeader(
      header,
      payload.length - at - FRAME_HEADER_BYTES,
      compression,
      !!opener,
    )
    total += rawLength
    if (total > logicalLength) throw new CorruptEntryError('frames hold more than the logical length')
    at += FRAME_HEADER_BYTES
    let stored = payload.subarray(at, at + storedLength)
    at += storedLength
    if (opener !== undefined) stored = opener.open(header, stored, at === payload.length)
    frames.push({ compressed, rawLength, stored })
  }
  if (opener !== undefined && opener.count === 0) throw new CorruptEntryError('a sealed stream without frames')
  if (total !== logicalLength) throw new CorruptEntryError('frames hold less than the logical length')
  if (logicalLength === 0) return Buffer.alloc(0)
  if (frames.length === 1) return decodeSmallOrPooled(frames[0]!, compression)
  const out = Buffer.allocUnsafe(logicalLength)
  let offset = 0
  for (const frame of frames) offset += (await decodeSmallOrPooled(frame, compression)).copy(out, offset)
  return out
}

/** A frame's block: inflated on the main thread when small (cheaper than a pool round trip). */
async function decodeSmallOrPooled(frame: Frame, compression: Compression): Promise<Buffer> {
  if (!frame.compressed) return frame.stored
  if (frame.rawLength > 64 * 1024) return decodeFrame(frame, compression)
  let block: Buffer
  try {
    block = decompressSync(compression, frame.stored, frame.rawLength)
  } catch (error) {
    throw new CorruptEntryError(`frame does not decompress (${(error as Error).message})`)
  }
  if (block.length !== frame.rawLength) throw new CorruptEntryError('frame decompresses to the wrong length')
  return block
}
