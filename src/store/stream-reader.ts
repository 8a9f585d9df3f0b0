import { PassThrough, Readable, type Writable } from 'node:stream'
import type { FileHandle } from 'node:fs/promises'
import { isLarderError } from '../errors.js'
import { createDecipheriv, type DecipherGCM, type KeyObject } from 'node:crypto'
import { hasher } from '../format/checksum.js'
import { Compression, decompressStream } from '../format/compression.js'
import {
  CorruptEntryError,
  decodeEntry,
  decodeHead,
  decodeTrailer,
  encodeTrailerFields,
  FLAG_FRAMED,
  headLength,
  TRAILER_BYTES,
  type DecodedEntry,
  type EntryHead,
  type EntryTrailer,
} from '../format/entry-format.js'
import { decodeFrame, decodeFrameHeader, FRAME_HEADER_BYTES, type Frame } from '../format/frames.js'
import { keyOf } from '../crypto/entry-keys.js'
import type { Keyring } from '../crypto/keys.js'
import { FrameCipher, KeyError, TAG_BYTES } from '../crypto/seal.js'
// READ_FLAGS' O_NONBLOCK: a FIFO swapped in since the lstat that sent the read here must not
// hold a thread-pool thread for ever.
import { disk, entryReadFlags, errorCode, refusedNoAtime } from './disk.js'
import { partitionDamaged } from './entry-files.js'

const HEAD_READ = 64 * 1024
const CHUNK = 256 * 1024
/** Bytes of a plain payload read at once (`PlainEntryStream`): one thread-pool round trip and
 *  one chunk for the consumer per MiB. Memory: one block per stream (the last up to two),
 *  with CHUNK as the stream's mark, so no second block is read ahead while one waits. */
const PLAIN_BLOCK = 1024 * 1024
/** Frames decompressing at once, as in the writer. */
const FRAMES_IN_FLIGHT = 3

/** An entry file opened for streaming: its head and trailer parsed, its payload not yet read. */
export interface OpenedEntry {
  head: EntryHead
  headBytes: Buffer
  /** The trailer as read at open, not yet covered by a verified checksum. */
  trailer: EntryTrailer
  handle: FileHandle
  size: number
  ino: number
  mtimeMs: number
}

/**
 * Opens an entry and parses its head and trailer without reading the payload. `undefined`
 * when there is no file (or, in a race, a symlink appeared where the file was: a miss).
 * Throws `CorruptEntryError` carrying the inode judged (after closing) when the file is not a
 * valid entry's. Nothing parsed here is covered by a verified checksum yet: callers may use it
 * to decide to skip, refuse or bound the entry, but whatever they serve is verified.
 */
export async function openEntry(file: string): Promise<OpenedEntry | undefined> {
  let handle: FileHandle
  const flags = entryReadFlags()
  try {
    handle = await disk.open(file, flags)
  } catch (error) {
    if (refusedNoAtime(error, flags)) return openEntry(file)
    const code = errorCode(error)
    if (code === 'ENOENT' || partitionDamaged(error, file)) return undefined
    if (code !== 'ELOOP') throw error
    const judged = symlinkInPlace(file)
    if (judged === undefined) return undefined
    throw judged
  }
  let ino: number | undefined
  try {
    // fstat of an open descriptor: cheaper on the main thread than a thread-pool round trip.
    const stat = disk.fstatSync(handle.fd)
    ino = stat.ino
    if (!stat.isFile()) throw new CorruptEntryError('not a regular file')
    let bytes = Buffer.allocUnsafe(Math.min(HEAD_READ, stat.size))
    let { bytesRead } = await handle.read(bytes, 0, bytes.length, 0)
    let head = decodeHead(bytes.subarray(0, bytesRead), stat.size)
    if (head === undefined) {
      // Key and tags are longer than the first read: decodeHead has bounded them by the size.
      const need = headLength(bytes)
      bytes = Buffer.allocUnsafe(need)
      bytesRead = (await handle.read(bytes, 0, need, 0)).bytesRead
      head = decodeHead(bytes.subarray(0, bytesRead), stat.size)
      if (head === undefined) throw new CorruptEntryError('file shorter than its metadata')
    }
    const trailerBytes = Buffer.allocUnsafe(TRAILER_BYTES)
    await readFully(handle, trailerBytes, stat.size - TRAILER_BYTES)
    const trailer = decodeTrailer(trailerBytes, stat.size, head.payloadOffset)
    return {
      head,
      headBytes: bytes.subarray(0, head.payloadOffset),
      trailer,
      handle,
      size: stat.size,
      ino: stat.ino,
      mtimeMs: stat.mtimeMs,
    }
  } catch (error) {
    await handle.close().catch(() => {})
    throw error instanceof CorruptEntryError && ino !== undefined ? error.of(ino) : error
  }
}

/** ELOOP from an O_NOFOLLOW open: a symlink sits in an entry's place. Judged with its own
 *  inode (lstat), so its removal cannot take a file renamed there since; if it is already
 *  gone or replaced by a regular file, that is not ours to judge now: a miss. */
function symlinkInPlace(file: string): CorruptEntryError | undefined {
  const link = disk.lstatSync(file, { throwIfNoEntry: false })
  return link?.isSymbolicLink() === true ? new CorruptEntryError("a symlink in an entry's place", link.ino) : undefined
}

/**
 * The rest of an opened entry read through its handle and verified whole (checksum first), for
 * `get` of an unframed entry whose size the caller has bounded. Closes the handle.
 */
export async function readOpenedEntry(entry: OpenedEntry): Promise<DecodedEntry> {
  try {
    const file = Buffer.allocUnsafe(entry.size)
    entry.headBytes.copy(file, 0)
    await readFully(entry.handle, file.subarray(entry.head.payloadOffset), entry.head.payloadOffset)
    return decodeEntry(file)
  } catch (error) {
    throw error instanceof CorruptEntryError ? error.of(entry.ino) : error
  } finally {
    await entry.handle.close().catch(() => {})
  }
}

/**
 * Reads an opened entry's stored bytes through (PLAIN_BLOCK at a time) and checks them against
 * its checksum: CorruptEntryError unless every byte is as written. A sealed entry is also
 * authenticated under `keyring`'s key (a KeyError if it fails): its checksum is no secret, so
 * an entry edited and re-checksummed passes it, and a framed one's stream would hand out every
 * frame before the edited one. The handle stays open, for the stream that follows
 * (`getStream`'s `verifyFirst`).
 */
export async function checkOpenedEntry(entry: OpenedEntry, keyring?: Keyring): Promise<void> {
  const { head, handle, size } = entry
  const hash = hasher().create64(0n)
  hash.update(entry.headBytes)
  const payloadEnd = size - TRAILER_BYTES
  try {
    // Without a keyring, the checksum alone (a key missing here is judged by its bytes).
    const key = keyring === undefined ? undefined : keyOf(head, keyring)
    if (key !== undefined && (head.flags & FLAG_FRAMED) !== 0) await authenticateFrames(entry, key, hash)
    else {
      const tag = key === undefined ? undefined : await payloadDecipher(entry, key)
      const tagAt = payloadEnd - TAG_BYTES
      const block = Buffer.allocUnsafe(Math.min(PLAIN_BLOCK, Math.max(0, payloadEnd - head.payloadOffset)))
      for (let at = head.payloadOffset; at < payloadEnd;) {
        const n = Math.min(block.length, payloadEnd - at)
        await readFully(handle, block.subarray(0, n), at)
        hash.update(block.subarray(0, n))
        tag?.update(block.subarray(0, Math.max(0, Math.min(n, tagAt - at))))
        at += n
      }
      if (tag !== undefined) finalOrKeyError(tag)
    }
    // The checksum covers everything before its own 8 bytes, the trailer's last.
    const trailer = Buffer.allocUnsafe(TRAILER_BYTES - 8)
    await readFully(handle, trailer, payloadEnd)
    hash.update(trailer)
    if (hash.digest() !== entry.trailer.checksum) throw new CorruptEntryError('checksum mismatch')
  } catch (error) {
    throw error instanceof CorruptEntryError ? error.of(entry.ino) : error
  }
}

/** A sealed framed payload read frame by frame, hashed, each frame authenticated (its stored
 *  bytes not decoded), and the raw lengths the frames claim held to the trailer's logical one
 *  (which no frame's tag covers). */
async function authenticateFrames(entry: OpenedEntry, key: KeyObject, hash: EntryHash): Promise<void> {
  const { head, handle, size } = entry
  const payloadEnd = size - TRAILER_BYTES
  const opener = new FrameCipher(key, head.nonce!, entry.headBytes)
  const frameHead = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  let claimed = 0
  for (let at = head.payloadOffset; at < payloadEnd;) {
    if (payloadEnd - at < FRAME_HEADER_BYTES) throw new CorruptEntryError('truncated frame header')
    await readFully(handle, frameHead, at)
    const { rawLength, storedLength } = decodeFrameHeader(frameHead, payloadEnd - at - FRAME_HEADER_BYTES, head.compression, true)
    claimed += rawLength
    const bytes = Buffer.allocUnsafe(storedLength)
    await readFully(handle, bytes, at + FRAME_HEADER_BYTES)
    hash.update(frameHead)
    hash.update(bytes)
    at += FRAME_HEADER_BYTES + storedLength
    opener.open(frameHead, bytes, at === payloadEnd)
  }
  if (opener.count === 0 || claimed !== entry.trailer.logicalLength) throw new KeyError(false)
}

/** The GCM decipher of an unframed sealed payload, its tag (the payload's last 16 bytes) set:
 *  fed every ciphertext byte, its final() tells whether the payload is authentic. */
async function payloadDecipher(entry: OpenedEntry, key: KeyObject): Promise<DecipherGCM> {
  const { head, handle, size } = entry
  const tagAt = size - TRAILER_BYTES - TAG_BYTES
  if (tagAt < head.payloadOffset) throw new CorruptEntryError('sealed payload shorter than its tag')
  const tag = Buffer.allocUnsafe(TAG_BYTES)
  await readFully(handle, tag, tagAt)
  const { storedLength, logicalLength, grace } = entry.trailer
  const decipher = createDecipheriv('aes-256-gcm', key, head.nonce!, { authTagLength: TAG_BYTES })
  decipher.setAAD(Buffer.concat([entry.headBytes, encodeTrailerFields(storedLength, logicalLength, grace)]))
  decipher.setAuthTag(tag)
  return decipher
}

/** A payload whose tag fails is not ours (tampered, moved or sealed under another key of that id). */
function finalOrKeyError(decipher: DecipherGCM): void {
  try {
    decipher.final()
  } catch {
    throw new KeyError(false)
  }
}

/**
 * The entry's value as a stream, with bounded memory. Every byte is hashed as it is read;
 * when the payload ends, the trailer is checked and, on a mismatch, the stream errors with
 * `ERR_CORRUPT` instead of ending: a consumer that sees 'end' has the whole, intact value.
 * The value never runs past the logical length the trailer claims: frames are counted before
 * each one is read, inflated output as it comes. Takes ownership of the handle: it is closed
 * when the stream ends, fails or is destroyed. `onCorrupt` runs once if the entry turns out
 * damaged (the caller counts and removes it). A sealed entry is opened with `keyring`'s key
 * (crypto/seal.ts): frame by frame, each authenticated before it is decoded; an unframed one
 * deciphered as it is read, and failing (never ending) unless its tag authenticates it.
 * `onFailure`: a read that failed otherwise (the disk), once the stream has been handed out;
 * it answers with the error the consumer's stream fails with. `onRead`: the bytes of the file
 * each read after the head brought (payload and trailer), as they come: a consumer that stops
 * early has not had the rest read.
 */
export function createEntryStream(
  entry: OpenedEntry,
  onCorrupt: (error: CorruptEntryError) => void,
  keyring: Keyring | undefined,
  onFailure: (error: unknown) => unknown = (error) => error,
  onRead: (bytes: number) => void = () => {},
): Readable {
  const { head, handle, size } = entry
  const logical = entry.trailer.logicalLength
  const payloadEnd = size - TRAILER_BYTES
  const hash = hasher().create64(0n)
  hash.update(entry.headBytes)
  // Throws a KeyError (missing) here, before the stream exists: the caller's probe checked it.
  const key = keyOf(head, keyring)
  const opener = key === undefined ? undefined : new FrameCipher(key, head.nonce!, entry.headBytes)
  if (key === undefined && (head.flags & FLAG_FRAMED) === 0 && (head.compression as Compression) === Compression.None) {
    return new PlainEntryStream(entry, hash, onCorrupt, onFailure, onRead)
  }

  /** Reads and hashes the trailer; throws unless every byte before it matched. */
  async function checkTrailer(): Promise<void> {
    const trailer = Buffer.allocUnsafe(TRAILER_BYTES)
    await readFully(handle, trailer, payloadEnd)
    onRead(TRAILER_BYTES)
    const fields = decodeTrailer(trailer, size, head.payloadOffset)
    hash.update(trailer.subarray(0, TRAILER_BYTES - 8))
    if (hash.digest() !== fields.checksum) throw new CorruptEntryError('checksum mismatch')
    if (fields.logicalLength !== logical) throw new CorruptEntryError('trailer changed while read')
  }

  /** The stored payload: file bytes as they are, hashed as they pass. */
  async function* stored(): AsyncGenerator<Buffer> {
    if (payloadEnd > head.payloadOffset) {
      const raw = handle.createReadStream({ start: head.payloadOffset, end: payloadEnd - 1, highWaterMark: CHUNK, autoClose: false })
      for await (const chunk of raw as AsyncIterable<Buffer>) {
        onRead(chunk.length)
        hash.update(chunk)
        yield chunk
      }
    }
    await checkTrailer()
  }

  /** An unframed sealed payload (a large `set` value, encrypted), in two passes over the open
   *  file: its tag (the last 16 payload bytes) checked over every byte first, with the checksum,
   *  and only then deciphered as it is read again. GCM's plaintext is trusted only once its tag
   *  passes (a flipped ciphertext bit is the same bit flipped in the value), and one pass would
   *  hand the bytes out before. Entries are replaced by rename, never written in place, so the
   *  open file's bytes are those checked. Framed entries (setStream's) are checked frame by
   *  frame instead. */
  async function* deciphered(): AsyncGenerator<Buffer> {
    const tagAt = payloadEnd - TAG_BYTES
    const check = await payloadDecipher(entry, key!)
    let at = head.payloadOffset
    for await (const chunk of stored()) {
      const end = Math.min(chunk.length, Math.max(0, tagAt - at))
      at += chunk.length
      if (end > 0) check.update(chunk.subarray(0, end))
    }
    finalOrKeyError(check)
    if (tagAt === head.payloadOffset) return
    const open = await payloadDecipher(entry, key!)
    const again = handle.createReadStream({ start: head.payloadOffset, end: tagAt - 1, highWaterMark: CHUNK, autoClose: false })
    for await (const chunk of again as AsyncIterable<Buffer>) {
      onRead(chunk.length)
      yield open.update(chunk)
    }
    finalOrKeyError(open) // the file changed in place between the passes: not ours
  }

  /** An unframed compressed payload (a large `set` value) inflated as it is read. */
  async function* inflated(source: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
    const inflate = decompressStream(head.compression)
    const feeding = (async () => {
      try {
        for await (const chunk of source) {
          if (inflate.destroyed) return // the reader stopped early: stop reading the file
          if (!inflate.write(chunk)) await drained(inflate)
        }
        inflate.end()
      } catch (error) {
        inflate.destroy(error as Error)
      }
    })()
    let produced = 0
    try {
      for await (const chunk of inflate as AsyncIterable<Buffer>) {
        produced += chunk.length
        if (produced > logical) throw new CorruptEntryError('payload inflates past its logical length')
        yield chunk
      }
      await feeding
    } finally {
      inflate.destroy()
    }
    if (produced !== logical) throw new CorruptEntryError('payload inflates short of its logical length')
  }

  /** A framed payload: frames read in order and hashed, then checked against the trailer. The
   *  blocks they claim are added up before each frame is read, against the logical length. */
  async function* frames(): AsyncGenerator<Frame> {
    let at = head.payloadOffset
    let claimed = 0
    const frameHead = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
    while (at < payloadEnd) {
      if (payloadEnd - at < FRAME_HEADER_BYTES) throw new CorruptEntryError('truncated frame header')
      await readFully(handle, frameHead, at)
      const remaining = payloadEnd - at - FRAME_HEADER_BYTES
      const { compressed, rawLength, storedLength } = decodeFrameHeader(frameHead, remaining, head.compression, opener !== undefined)
      claimed += rawLength
      if (claimed > logical) throw new CorruptEntryError('frames hold more than the logical length')
      const bytes = Buffer.allocUnsafe(storedLength)
      await readFully(handle, bytes, at + FRAME_HEADER_BYTES)
      onRead(FRAME_HEADER_BYTES + storedLength)
      hash.update(frameHead)
      hash.update(bytes)
      at += FRAME_HEADER_BYTES + storedLength
      yield { compressed, rawLength, stored: opener === undefined ? bytes : opener.open(frameHead, bytes, at === payloadEnd) }
    }
    if (opener !== undefined && opener.count === 0) throw new CorruptEntryError('a sealed stream without frames')
    if (claimed !== logical) throw new CorruptEntryError('frames hold less than the logical length')
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
      const plain = key === undefined ? stored : deciphered
      if ((head.flags & FLAG_FRAMED) !== 0) yield* unframed()
      else if ((head.compression as Compression) === Compression.None) yield* plain()
      else yield* inflated(plain())
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
  const source = verified()
  // The latest chunk is held back until the next one arrives, and the last one until the
  // checksum has passed: a consumer never receives the final bytes of a damaged entry.
  let held: Buffer | undefined
  const pump = async (): Promise<void> => {
    try {
      for await (const chunk of source) {
        if (out.destroyed) return // the consumer gave up; leaving the loop closes the file
        const previous = held
        held = chunk
        if (previous !== undefined && !out.write(previous)) await drained(out)
      }
      if (!verifiedToTheEnd) throw new CorruptEntryError('payload ended before its checksum was checked')
      if (held !== undefined) out.write(held)
      out.end()
    } catch (error) {
      const corrupt = asCorrupt(error)
      if (corrupt !== undefined) onCorrupt(corrupt.of(entry.ino))
      out.destroy((corrupt ?? onFailure(error)) as Error)
    }
  }
  void pump()
  return out
}

/**
 * An unframed, uncompressed, unsealed payload (every streamed artifact of `larder serve`):
 * the file's bytes as they are, read in PLAIN_BLOCK positional reads straight into the
 * consumer's stream: no read stream, no generators, no second stream between them. Each block
 * is hashed as it is read; the last one (the payload's last 1-2 MiB, or all of a smaller one)
 * also brings the trailer, and is pushed only once the checksum has passed, so a consumer
 * never receives the final MiB of a damaged entry (its stream errors with ERR_CORRUPT instead). Closes the handle when it ends,
 * fails or is destroyed.
 */
type EntryHash = ReturnType<ReturnType<typeof hasher>['create64']>

class PlainEntryStream extends Readable {
  readonly #entry: OpenedEntry
  readonly #hash: EntryHash
  readonly #onCorrupt: (error: CorruptEntryError) => void
  readonly #onFailure: (error: unknown) => unknown
  readonly #onRead: (bytes: number) => void
  #at: number
  #closed: Promise<void> | undefined

  constructor(
    entry: OpenedEntry,
    hash: EntryHash,
    onCorrupt: (error: CorruptEntryError) => void,
    onFailure: (error: unknown) => unknown,
    onRead: (bytes: number) => void,
  ) {
    super({ highWaterMark: CHUNK })
    this.#entry = entry
    this.#hash = hash
    this.#onCorrupt = onCorrupt
    this.#onFailure = onFailure
    this.#onRead = onRead
    this.#at = entry.head.payloadOffset
  }

  override _read(): void {
    const { handle, size } = this.#entry
    const remaining = size - this.#at // the trailer included
    // The last read takes the trailer with at least a block of the payload's end (everything
    // left when less than two blocks are): one read for an entry up to 2 MiB, and a damaged
    // entry's last MiB is never handed out.
    const last = remaining < 2 * PLAIN_BLOCK + TRAILER_BYTES
    const bytes = Buffer.allocUnsafe(last ? remaining : PLAIN_BLOCK)
    readFully(handle, bytes, this.#at).then(
      () => {
        this.#at += bytes.length
        this.#onRead(bytes.length)
        if (!last) {
          this.#hash.update(bytes)
          this.push(bytes)
          return
        }
        const payload = bytes.subarray(0, bytes.length - TRAILER_BYTES)
        this.#hash.update(payload)
        if (!this.#passes(bytes.subarray(bytes.length - TRAILER_BYTES))) return
        if (payload.length > 0) this.push(payload)
        this.push(null)
      },
      (error: unknown) => this.#fail(error),
    )
  }

  /** Whether the trailer is the one read at open and the checksum over every byte before it
   *  matches; if not, the stream has failed. */
  #passes(trailer: Buffer): boolean {
    try {
      const { size, head } = this.#entry
      const fields = decodeTrailer(trailer, size, head.payloadOffset)
      this.#hash.update(trailer.subarray(0, TRAILER_BYTES - 8))
      if (this.#hash.digest() !== fields.checksum) throw new CorruptEntryError('checksum mismatch')
      if (fields.logicalLength !== this.#entry.trailer.logicalLength) throw new CorruptEntryError('trailer changed while read')
      return true
    } catch (error) {
      this.#fail(error)
      return false
    }
  }

  #fail(error: unknown): void {
    if (this.destroyed) return
    const corrupt = asCorrupt(error)
    if (corrupt !== undefined) this.#onCorrupt(corrupt.of(this.#entry.ino))
    this.destroy((corrupt ?? this.#onFailure(error)) as Error)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#closed ??= this.#entry.handle.close().catch(() => {})
    void this.#closed.then(() => callback(error))
  }
}

/**
 * A stream of `length` bytes gathered into one buffer of exactly that length, allocated once
 * (the caller has bounded it). A stream that yields more, or ends short, is corrupt.
 */
export async function collect(stream: Readable, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length)
  let at = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (at + chunk.length > length) {
      stream.destroy()
      throw new CorruptEntryError('value runs past its logical length')
    }
    at += chunk.copy(out, at)
  }
  if (at !== length) throw new CorruptEntryError('value ends short of its logical length')
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

function drained(stream: Writable): Promise<void> {
  if (stream.destroyed) return Promise.resolve()
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
  if (isLarderError(error) || code === undefined || !/^Z_|^ZSTD_|^ERR_(ZLIB|BROTLI|ZSTD)|^ERR__?ZSTD/.test(code)) return undefined
  return new CorruptEntryError(`payload does not decompress (${(error as Error).message})`)
}
