import fs from 'node:fs'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FileHandle } from 'node:fs/promises'
import { isLarderError } from '../errors.js'
import { hasher } from '../format/checksum.js'
import { Compression, createDecompressStream } from '../format/compression.js'
import { CorruptEntryError, decodeHead, decodeTrailer, TRAILER_BYTES, type EntryHead } from '../format/entry-format.js'
import { disk, errorCode } from './disk.js'

const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW
const HEAD_READ = 64 * 1024
const CHUNK = 256 * 1024

/** An entry file opened for streaming: its head is parsed, its payload not yet read. */
export interface OpenedEntry {
  head: EntryHead
  headBytes: Buffer
  handle: FileHandle
  size: number
  ino: number
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
    return { head, headBytes: bytes.subarray(0, head.payloadOffset), handle, size: stat.size, ino: stat.ino }
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
  // Set once every payload byte has been read and the checksum matched.
  let verifiedToTheEnd = false
  async function* verified(): AsyncGenerator<Buffer> {
    try {
      const hash = hasher().create64(0n)
      hash.update(entry.headBytes)
      if (payloadEnd > head.payloadOffset) {
        const raw = handle.createReadStream({ start: head.payloadOffset, end: payloadEnd - 1, highWaterMark: CHUNK, autoClose: false })
        for await (const chunk of raw as AsyncIterable<Buffer>) {
          hash.update(chunk)
          yield chunk
        }
      }
      const trailer = Buffer.allocUnsafe(TRAILER_BYTES)
      await handle.read(trailer, 0, TRAILER_BYTES, payloadEnd)
      const fields = decodeTrailer(trailer, size, head.payloadOffset)
      hash.update(trailer.subarray(0, TRAILER_BYTES - 8))
      if (hash.digest() !== fields.checksum) throw new CorruptEntryError('checksum mismatch')
      verifiedToTheEnd = true
    } finally {
      await handle.close().catch(() => {})
    }
  }

  const source = Readable.from(verified(), { objectMode: false })
  let last: Readable = source
  if (head.compression !== Compression.None) {
    const inflate = createDecompressStream(head.compression)
    // pipeline wires errors both ways and tears both down; its own callback is not needed.
    pipeline(source, inflate).catch(() => {})
    last = inflate
  }

  // The consumer's stream is fed by hand rather than piped, so the error it sees is ours
  // (ERR_CORRUPT) and not zlib's, and so it never sees 'end' before the checksum passed.
  const out = new PassThrough({ highWaterMark: CHUNK })
  const pump = async (): Promise<void> => {
    try {
      for await (const chunk of last) {
        if (out.destroyed) return // the consumer gave up; leaving the loop tears down the file
        if (!out.write(chunk)) await drained(out)
      }
      // A damaged payload can make the decompressor meet an end-of-stream marker early and
      // finish while payload bytes remain unread and unchecked: that is corruption, not an end.
      if (!verifiedToTheEnd) throw new CorruptEntryError('compressed data ends before the payload does')
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
