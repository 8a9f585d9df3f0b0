import fs from 'node:fs'
import { PassThrough, type Readable } from 'node:stream'
import type { FileHandle } from 'node:fs/promises'
import { isLarderError } from '../errors.js'
import { hasher } from '../format/checksum.js'
import { Compression } from '../format/compression.js'
import { CorruptEntryError, decodeHead, decodeTrailer, FLAG_FRAMED, TRAILER_BYTES, type EntryHead } from '../format/entry-format.js'
import { decodeFrame, decodeFrameHeader, FRAME_HEADER_BYTES, type Frame } from '../format/frames.js'
import { disk, errorCode } from './disk.js'

const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW
const HEAD_READ = 64 * 1024
const CHUNK = 256 * 1024
/** Frames decompressing at once, as in the writer. */
const FRAMES_IN_FLIGHT = 3

/** An entry file opened for streaming: its head is parsed, its payload not yet read. */
export interface OpenedEntry {
  head: EntryHead
  headBytes: Buffer
  handle: FileHandle
  size: number
  ino: number
  mtimeMs: number
}

/**
 * Opens an entry and parses its head without reading the payload. `undefined` when there is
 * no file. Throws `CorruptEntryError` (after closing) when the head is not a valid entry's.
 * The head is not yet covered by a verified checksum: callers may use it to decide to skip
 * the entry, but whatever they serve is verified by the checksum at the end of the stream.
 */
export async function openEntry(file: string): Promise<OpenedEntry | undefined> {
  let handle: FileHandle
  try {
    handle = await disk.open(file, READ_FLAGS)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) throw new CorruptEntryError('not a regular file')
    let bytes = Buffer.allocUnsafe(Math.min(HEAD_READ, stat.size))
    let { bytesRead } = await handle.read(bytes, 0, bytes.length, 0)
    let head = decodeHead(bytes.subarray(0, bytesRead), stat.size)
    if (head === undefined) {
      // Key and tags are longer than the first read: decodeHead has bounded them by the size.
      const need = bytes.readUInt32LE(24) + bytes.readUInt32LE(28) + 32
      bytes = Buffer.allocUnsafe(need)
      bytesRead = (await handle.read(bytes, 0, need, 0)).bytesRead
      head = decodeHead(bytes.subarray(0, bytesRead), stat.size)
      if (head === undefined) throw new CorruptEntryError('file shorter than its metadata')
    }
    return { head, headBytes: bytes.subarray(0, head.payloadOffset), handle, size: stat.size, ino: stat.ino, mtimeMs: stat.mtimeMs }
  } catch (error) {
    await handle.close().catch(() => {})
    throw error
  }
}

/**
 * The entry's value as a stream, with bounded memory. Every byte is hashed as it is read;
 * when the payload ends, the trailer is checked and, on a mismatch, the stream errors with
 * `ERR_CORRUPT` instead of ending: a consumer that sees 'end' has the whole, intact value.
 * `onCorrupt` runs once if the entry turns out damaged (the caller counts and removes it).
 */
export function createEntryStream(entry: OpenedEntry, onCorrupt: (error: CorruptEntryError) => void): Readable {
  const { head, handle, size } = entry
  const payloadEnd = size - TRAILER_BYTES
  const hash = hasher().create64(0n)
  hash.update(entry.headBytes)

  /** Reads and hashes the trailer; throws unless every byte before it matched. */
  async function checkTrailer(): Promise<void> {
    const trailer = Buffer.allocUnsafe(TRAILER_BYTES)
    await handle.read(trailer, 0, TRAILER_BYTES, payloadEnd)
    const fields = decodeTrailer(trailer, size, head.payloadOffset)
    hash.update(trailer.subarray(0, TRAILER_BYTES - 8))
    if (hash.digest() !== fields.checksum) throw new CorruptEntryError('checksum mismatch')
  }

  /** A plain payload: file bytes as they are, hashed as they pass. */
  async function* plain(): AsyncGenerator<Buffer> {
    if (payloadEnd > head.payloadOffset) {
      const raw = handle.createReadStream({ start: head.payloadOffset, end: payloadEnd - 1, highWaterMark: CHUNK, autoClose: false })
      for await (const chunk of raw as AsyncIterable<Buffer>) {
        hash.update(chunk)
        yield chunk
      }
    }
    await checkTrailer()
  }

  /** A framed payload: frames read in order and hashed, then checked against the trailer. */
  async function* frames(): AsyncGenerator<Frame> {
    let at = head.payloadOffset
    const frameHead = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
    while (at < payloadEnd) {
      if (payloadEnd - at < FRAME_HEADER_BYTES) throw new CorruptEntryError('truncated frame header')
      await readFully(handle, frameHead, at)
      const { compressed, rawLength, storedLength } = decodeFrameHeader(frameHead, payloadEnd - at - FRAME_HEADER_BYTES)
      const stored = Buffer.allocUnsafe(storedLength)
      await readFully(handle, stored, at + FRAME_HEADER_BYTES)
      hash.update(frameHead)
      hash.update(stored)
      at += FRAME_HEADER_BYTES + storedLength
      yield { compressed, rawLength, stored }
    }
    await checkTrailer()
  }

  /** Frames decoded FRAMES_IN_FLIGHT at a time in zlib's pool, yielded in order. */
  async function* unframed(): AsyncGenerator<Buffer> {
    const pending: Promise<Buffer>[] = []
    for await (const frame of frames()) {
      const block = decodeFrame(frame, head.compression)
      block.catch(() => {}) // awaited in order below; never an unhandled rejection meanwhile
      pending.push(block)
      if (pending.length >= FRAMES_IN_FLIGHT) yield await pending.shift()!
    }
    while (pending.length > 0) yield await pending.shift()!
  }

  async function* verified(): AsyncGenerator<Buffer> {
    try {
      if ((head.flags & FLAG_FRAMED) !== 0) yield* unframed()
      else if (head.compression === Compression.None) yield* plain()
      else throw new CorruptEntryError('compressed stream entry without frames')
      verifiedToTheEnd = true
    } finally {
      await handle.close().catch(() => {})
    }
  }
  // Set once every payload byte has been read and the checksum matched.
  let verifiedToTheEnd = false

  // The consumer's stream is fed by hand rather than piped, so the error it sees is ours
  // (ERR_CORRUPT), and so it never sees 'end' before the checksum has passed.
  const out = new PassThrough({ highWaterMark: CHUNK })
  const pump = async (): Promise<void> => {
    const source = verified()
    try {
      for await (const chunk of source) {
        if (out.destroyed) return // the consumer gave up; leaving the loop closes the file
        if (!out.write(chunk)) await drained(out)
      }
      if (!verifiedToTheEnd) throw new CorruptEntryError('payload ended before its checksum was checked')
      out.end()
    } catch (error) {
      const corrupt = asCorrupt(error)
      if (corrupt !== undefined) onCorrupt(corrupt)
      out.destroy((corrupt ?? error) as Error)
    }
  }
  void pump()
  return out
}

async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done)
    if (bytesRead === 0) throw new CorruptEntryError('file ends inside a frame')
    done += bytesRead
  }
}

function drained(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}

/** Bytes that fail to decompress are as corrupt as bytes that fail the checksum. */
function asCorrupt(error: unknown): CorruptEntryError | undefined {
  if (error instanceof CorruptEntryError) return error
  const code = errorCode(error)
  if (isLarderError(error) || code === undefined || !/^Z_|^ERR_(ZLIB|BROTLI|ZSTD)|^ERR__?ZSTD/.test(code)) return undefined
  return new CorruptEntryError(`payload does not decompress (${(error as Error).message})`)
}
