import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FileHandle } from 'node:fs/promises'
import { LarderError } from '../errors.js'
import { hasher } from '../format/checksum.js'
import { Compression, createCompressStream, PROBE_BYTES, worthCompressing } from '../format/compression.js'
import { encodeHead, encodeTags, encodeTrailerFields, TRAILER_BYTES, type EntryMeta } from '../format/entry-format.js'
import { disk, errorCode } from './disk.js'

export type StreamSource = AsyncIterable<Uint8Array | string> | Readable

/** Marks an error raised by the caller's source, so it is not counted against the disk. */
export class SourceError extends Error {
  constructor(readonly original: unknown) {
    super('source failed')
  }
}

export interface StreamWriteOptions {
  compression: Compression
  level: number
  /** Streams shorter than this are stored uncompressed. */
  threshold: number
  durable: boolean
  /** Called with the temp path as soon as it exists, and with undefined when it is gone. */
  trackTemp(file: string, live: boolean): void
}

export interface StreamWriteResult {
  compression: Compression
  storedLength: number
  logicalLength: number
  fileBytes: number
}

let tempCounter = 0

function toChunk(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'string') return Buffer.from(value)
  throw new SourceError(new LarderError('ERR_INVALID_VALUE', `Invalid source: stream chunks must be Uint8Array or string, got ${typeof value}`, { field: 'source' }))
}

/**
 * Streams a source into a new entry file with bounded memory: the head of the stream decides
 * whether compression pays off, then bytes flow source → zlib → checksum → temp file, and
 * the temp file is renamed over the entry only once it is complete. A crash at any moment
 * leaves the old entry or the new one, plus at worst a stray temp file for maintenance.
 * Temp names are `<hash>.<pid>-<n>.tmp`, so maintenance can tell whether its writer lives.
 */
export async function writeEntryStream(
  file: string,
  meta: Omit<EntryMeta, 'compression'>,
  source: StreamSource,
  options: StreamWriteOptions,
): Promise<StreamWriteResult> {
  const iterator = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
  const next = async (): Promise<IteratorResult<unknown>> => {
    try {
      return await iterator.next()
    } catch (error) {
      throw new SourceError(error)
    }
  }

  // Probe: read the first PROBE_BYTES and judge compressibility from them.
  const prefix: Buffer[] = []
  let logicalLength = 0
  let ended = false
  while (logicalLength < PROBE_BYTES) {
    const step = await next()
    if (step.done) {
      ended = true
      break
    }
    const chunk = toChunk(step.value)
    prefix.push(chunk)
    logicalLength += chunk.length
  }
  let compression = options.compression
  if (compression !== Compression.None) {
    const sample = Buffer.concat(prefix)
    if (sample.length < options.threshold || !worthCompressing(sample.subarray(0, PROBE_BYTES))) compression = Compression.None
  }

  async function* body(): AsyncGenerator<Buffer> {
    yield* prefix
    prefix.length = 0
    if (ended) return
    for (;;) {
      const step = await next()
      if (step.done) return
      const chunk = toChunk(step.value)
      logicalLength += chunk.length
      yield chunk
    }
  }

  const keyBytes = Buffer.from(meta.key)
  const head = encodeHead({ ...meta, compression }, keyBytes, encodeTags(meta.tags))
  const temp = `${file}.${process.pid}-${++tempCounter}.tmp`
  let handle: FileHandle
  try {
    handle = await disk.open(temp, 'wx', 0o644)
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
    await disk.mkdir(path.dirname(file), { recursive: true })
    handle = await disk.open(temp, 'wx', 0o644)
  }
  options.trackTemp(temp, true)

  const hash = hasher().create64(0n)
  let storedLength = 0
  const write = async (bytes: Buffer): Promise<void> => {
    let done = 0
    while (done < bytes.length) done += (await handle.write(bytes, done, bytes.length - done)).bytesWritten
  }
  try {
    hash.update(head)
    await write(head)
    const sink = async (chunks: AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of chunks) {
        hash.update(chunk)
        storedLength += chunk.length
        await write(chunk)
      }
    }
    if (compression === Compression.None) await sink(body())
    else await pipeline(Readable.from(body(), { objectMode: false }), createCompressStream(compression, options.level), sink)

    const trailer = Buffer.allocUnsafe(TRAILER_BYTES)
    encodeTrailerFields(storedLength, logicalLength).copy(trailer, 0)
    hash.update(trailer.subarray(0, TRAILER_BYTES - 8))
    trailer.writeBigUInt64LE(hash.digest(), TRAILER_BYTES - 8)
    await write(trailer)
    if (options.durable) await handle.sync()
    await handle.close()
    await disk.rename(temp, file)
    options.trackTemp(temp, false)
  } catch (error) {
    await handle.close().catch(() => {})
    await disk.unlink(temp).catch(() => {})
    options.trackTemp(temp, false)
    // Stop pulling from the caller's source; a Readable is destroyed to release its resources.
    await iterator.return?.().catch(() => {})
    // pipeline wraps nothing, but a SourceError may arrive as the cause of a stream error.
    throw error
  }
  return { compression, storedLength, logicalLength, fileBytes: head.length + storedLength + TRAILER_BYTES }
}
