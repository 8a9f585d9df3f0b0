import os from 'node:os'
import path from 'node:path'
import { types } from 'node:util'
import { LarderError, SourceError } from '../errors.js'
import { hasher } from '../format/checksum.js'
import { Compression } from '../format/compression.js'
import type { KeyObject } from 'node:crypto'
import { FrameCipher, freshNonce } from '../crypto/seal.js'
import {
  encodeHead,
  encodeTags,
  encodeTrailerFields,
  FLAG_FRAMED,
  FLAG_SEALED,
  TRAILER_BYTES,
  type EntryMeta,
} from '../format/entry-format.js'
import { encodeFrame, FRAME_BYTES } from '../format/frames.js'
import { closeQuietly, commit, openTemp, writeAll } from './atomic-write.js'
import { returnBlock, takeBlock } from './block-pool.js'
import { DIR_FLAGS, disk, errorCode } from './disk.js'
import type { OwnedTree } from './owned-tree.js'

export type StreamSource = AsyncIterable<Uint8Array | string> | NodeJS.ReadableStream

/** Blocks compressing at once in full mode: one per core, up to zlib's 4 pool threads. On 2
 *  cores, 3 were no faster. */
const COMPRESSING_FULL = Math.min(4, os.availableParallelism())
/** In adaptive mode, one core fewer: the main thread hashes, and the pool's writes copy into
 *  the page cache, and compressors on every core starve both. On 2 cores one compressor made
 *  a fast 256 MiB put 1.6-2x faster than two (stored 233 MiB instead of 205), measured
 *  side by side with /tmp A/B builds under load. */
const COMPRESSING_ADAPTIVE = Math.max(1, Math.min(4, os.availableParallelism() - 1))
/** Frames held between the source and the file (compressing or waiting for their turn). */
const FRAMES_QUEUED = 6
/** How often a live writer refreshes its temp file's mtime through its open handle. A slow
 *  source may hold a frame's worth of bytes for minutes before anything reaches the file,
 *  and maintenance judges a temp file by its mtime: refreshed this often, a live writer's is
 *  never older than the smallest `maintenance.tempMaxAge` allowed (1 s), five times over. */
export const TEMP_HEARTBEAT_MS = 200

export interface StreamWriteOptions {
  compression: Compression
  level: number
  /** Blocks shorter than this are stored uncompressed. */
  threshold: number
  /** 'adaptive': a block that arrives while every compressor is busy is stored raw. */
  adaptive: boolean
  durable: boolean
  /** Called with the temp path as soon as it exists, and with undefined when it is gone. */
  trackTemp(file: string, live: boolean): void
  /** Called once the entry's head is written: the disk takes this stream's writes. */
  begun?(): void
  /** Called just before the temp file replaces the entry (to learn what it replaces). */
  beforeRename?(): void
  /** Aborting stops pulling the source, removes the temp file and rejects (`close()`). */
  signal?: AbortSignal
  /** Encrypt frame by frame under this key (crypto/seal.ts); framed even without compression. */
  sealing?: { key: KeyObject; keyId: bigint }
}

export interface StreamWriteResult {
  compression: Compression
  storedLength: number
  logicalLength: number
  fileBytes: number
}

/** A stream whose temp file a clear() took away before its rename: nothing stored, and not a
 *  failure of the disk (the caller's change was cleared, as if it had landed just before). */
export class ClearedMidStream extends Error {
  constructor(options: { cause: unknown }) {
    super('the entry was cleared while it was being written', options)
    this.name = 'ClearedMidStream'
  }
}

function toChunk(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value
  // util.types, not instanceof: a chunk made in another realm (a vm context) is bytes too.
  if (types.isUint8Array(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'string') {
    if (value.isWellFormed()) return Buffer.from(value)
    // As keys, tags and raw values: a lone surrogate is not stored as U+FFFD without a word.
    throw new SourceError(
      new LarderError('ERR_INVALID_VALUE', 'Invalid source: a string chunk holds a lone surrogate, which UTF-8 cannot hold', {
        field: 'source',
      }),
    )
  }
  throw new SourceError(
    new LarderError('ERR_INVALID_VALUE', `Invalid source: stream chunks must be Uint8Array or string, got ${typeof value}`, {
      field: 'source',
    }),
  )
}

/**
 * Streams a source into a new entry file with bounded memory: bytes are cut into 1 MiB blocks,
 * each compressed in zlib's thread pool when that pays off (frames.ts), then checksummed and
 * appended to a temp file, which is renamed over the entry only once it is complete. A crash at any moment
 * leaves the old entry or the new one, plus at worst a stray temp file for maintenance.
 * The temp file is atomic-write.ts's (`<hash>.<pid>-<n>.tmp`, exclusive, in a checked
 * directory); its mtime is refreshed every TEMP_HEARTBEAT_MS while the stream is open, so no
 * prune takes it for a dead writer's however slow the source.
 */
export async function writeEntryStream(
  tree: OwnedTree,
  file: string,
  meta: Omit<EntryMeta, 'compression'>,
  source: StreamSource,
  options: StreamWriteOptions,
): Promise<StreamWriteResult> {
  const { signal } = options
  signal?.throwIfAborted()
  let iterator: AsyncIterator<unknown>
  try {
    iterator = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]() // a locked web stream throws here
  } catch (error) {
    throw new SourceError(error)
  }
  // An abort must not wait for a source that has stopped producing: each pull races the
  // signal. The race is against a promise made for that pull and dropped after it: racing
  // every pull against one long-lived promise would hang a reaction, and with it each chunk
  // pulled, on that promise until the stream ends (a 512 MiB stream held 600 MiB).
  const next = async (): Promise<IteratorResult<unknown>> => {
    signal?.throwIfAborted() // an abort already dispatched would never reach the listener below
    let pull: Promise<IteratorResult<unknown>>
    try {
      // `for await` takes a next() that answers with its result rather than a promise of it
      pull = Promise.resolve(iterator.next())
    } catch (error) {
      throw new SourceError(error)
    }
    pull = pull.then(
      (step) => {
        // The source's fault, not the disk's: neither counted as a drop nor told as stored.
        if (typeof step !== 'object' || step === null) {
          throw new SourceError(
            new LarderError('ERR_INVALID_VALUE', `Invalid source: its iterator's next() gave ${String(step)}, not an iterator result`, {
              field: 'source',
            }),
          )
        }
        return step
      },
      (error: unknown) => {
        throw new SourceError(error)
      },
    )
    if (signal === undefined) return pull
    let onAbort: (() => void) | undefined
    const aborted = new Promise<never>((_, reject) => {
      // the signal's reason, as the caller gave it (an AbortError unless they chose another)
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- see above
      onAbort = () => reject(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      return await Promise.race([pull, aborted])
    } finally {
      signal.removeEventListener('abort', onAbort!)
    }
  }

  // Bytes are cut into FRAME_BYTES blocks; each becomes a frame (compressed or raw). Each
  // chunk is copied into the block as it arrives, never held by reference across the next
  // pull: a source may refill one buffer between yields (a read-into-buffer loop), and what it
  // yielded must be what is stored. Framed, each block is a new one (zlib or the cipher holds
  // it); unframed, a block is only written, so blocks come from the pool (block-pool.ts): the
  // source's chunks die young and no block is allocated per MiB. A pooled block yielded is the
  // consumer's until it gives it back (after its write completed).
  let logicalLength = 0
  async function* cut(take: () => Buffer, giveBack?: (block: Buffer) => void): AsyncGenerator<Buffer> {
    let block = take()
    let held = 0
    for (;;) {
      const step = await next()
      if (step.done) break
      const chunk = toChunk(step.value)
      logicalLength += chunk.length
      for (let at = 0; at < chunk.length;) {
        const copied = chunk.copy(block, held, at)
        held += copied
        at += copied
        if (held === FRAME_BYTES) {
          yield block
          block = take()
          held = 0
        }
      }
    }
    if (held > 0) yield block.subarray(0, held)
    else giveBack?.(block) // taken, never filled
  }
  const blocks = (): AsyncGenerator<Buffer> => cut(() => Buffer.allocUnsafe(FRAME_BYTES))
  const pooledBlocks = (): AsyncGenerator<Buffer> => cut(takeBlock, returnBlock)
  const compression = options.compression
  const { sealing } = options
  const framed = compression !== Compression.None || sealing !== undefined

  const keyBytes = Buffer.from(meta.key)
  const nonce = sealing === undefined ? undefined : freshNonce()
  const head = encodeHead(
    sealing === undefined
      ? { ...meta, compression, flags: framed ? FLAG_FRAMED : 0 }
      : { ...meta, compression, flags: FLAG_FRAMED | FLAG_SEALED, keyId: sealing.keyId, nonce },
    keyBytes,
    encodeTags(meta.tags),
  )
  const sealer = sealing === undefined ? undefined : new FrameCipher(sealing.key, nonce!, head)
  // Stops pulling from the caller's source, on every failure from here on: taking its iterator
  // locked a web ReadableStream, which its owner could then never cancel (a fetch body holds
  // its connection); its return() cancels it, as it destroys a Readable. After an abort the
  // source may never answer (a stalled pull holds its iterator): do not wait.
  const stopSource = async (): Promise<void> => {
    let stopped: Promise<unknown>
    try {
      stopped = Promise.resolve(iterator.return?.())
    } catch {
      return // the source's own failure to stop: the error that stopped it is the one to tell
    }
    if (signal?.aborted === true) void stopped.catch(() => {})
    else await stopped.catch(() => {})
  }
  // The partition the temp file is made in, held from before the temp's create to the rename:
  // a clear() moves it away whole, the temp file with it (see commit below).
  let partition: HeldPartition | undefined
  let opened: Awaited<ReturnType<typeof openTemp>>
  try {
    partition = holdPartition(tree, path.dirname(file))
    opened = await openTemp(tree, file)
  } catch (error) {
    partition?.release()
    await stopSource()
    throw error
  }
  const { temp, handle } = opened
  options.trackTemp(temp, true)
  const heartbeat = setInterval(() => {
    const now = new Date()
    handle.utimes(now, now).catch(() => {}) // closed meanwhile, or a failing disk the writes will meet
  }, TEMP_HEARTBEAT_MS)
  heartbeat.unref()

  const hash = hasher().create64(0n)
  let storedLength = 0
  const write = async (bytes: Buffer): Promise<void> => {
    signal?.throwIfAborted()
    await writeAll(handle, bytes, temp)
  }
  try {
    hash.update(head)
    await write(head)
    options.begun?.()
    const emit = async (bytes: Buffer): Promise<void> => {
      hash.update(bytes)
      storedLength += bytes.length
      await write(bytes)
    }
    // A sealed frame is authenticated as the last or not: only the drain below knows.
    let frames = 0
    const emitFrame = async (parts: Buffer[], last: boolean): Promise<void> => {
      frames++
      for (const part of sealer === undefined ? parts : sealer.seal(parts, last)) await emit(part)
    }
    // Up to `compressors` blocks compress in zlib's thread pool while earlier frames are
    // written, in order. Memory stays bounded: about FRAMES_QUEUED × 2 blocks. In adaptive
    // mode a block that finds every compressor busy is stored raw rather than waited for:
    // the stream then runs at the speed of its source or the disk, whichever is slower,
    // and compresses as much of it as the CPU affords meanwhile.
    const queue: Promise<Buffer[]>[] = []
    const compressors = options.adaptive ? COMPRESSING_ADAPTIVE : COMPRESSING_FULL
    let compressing = 0
    for await (const block of framed ? blocks() : pooledBlocks()) {
      if (!framed) {
        await emit(block)
        returnBlock(block) // written: nothing holds it any more
        continue
      }
      while (queue.length >= FRAMES_QUEUED || (!options.adaptive && compressing >= compressors)) {
        await emitFrame(await queue.shift()!, false) // `block` comes after it
      }
      let frame: Promise<Buffer[]>
      if (compression === Compression.None) {
        frame = Promise.resolve(encodeFrame.raw(block))
      } else if (compressing < compressors) {
        compressing++
        frame = encodeFrame(block, compression, options.level, options.threshold).finally(() => compressing--)
        frame.catch(() => {}) // awaited below; never an unhandled rejection meanwhile
      } else {
        frame = Promise.resolve(encodeFrame.raw(block))
      }
      queue.push(frame)
    }
    while (queue.length > 0) {
      const parts = await queue.shift()!
      await emitFrame(parts, queue.length === 0)
    }
    if (sealer !== undefined && frames === 0) await emitFrame(encodeFrame.raw(Buffer.alloc(0)), true) // an empty stream

    const trailer = Buffer.allocUnsafe(TRAILER_BYTES)
    encodeTrailerFields(storedLength, logicalLength).copy(trailer, 0)
    hash.update(trailer.subarray(0, TRAILER_BYTES - 8))
    trailer.writeBigUInt64LE(hash.digest(), TRAILER_BYTES - 8)
    await write(trailer)
    if (options.durable) await handle.sync()
    const written = head.length + storedLength + TRAILER_BYTES
    const size = disk.fstatSync(handle.fd).size // of an open descriptor: no thread-pool round trip
    if (size !== written) throw Object.assign(new Error(`EIO: ${temp} holds ${size} bytes after writing ${written}`), { code: 'EIO' })
    clearInterval(heartbeat)
    await handle.close()
    signal?.throwIfAborted()
    options.beforeRename?.()
    // The rename goes by path, as the stream's end may come long after its partition was
    // checked: one moved away meanwhile (a clear) or replaced by a link (to a directory
    // outside the cache) is not where the temp file is, and through a link the rename would
    // be made there, over whatever is named like the entry, with whatever is named like the
    // temp file. Nothing is stored, as when a clear took the partition.
    if (partition.movedAway())
      throw new ClearedMidStream({ cause: new Error(`${path.dirname(file)} is not the partition the stream began in`) })
    try {
      await commit(tree, temp, file)
    } catch (error) {
      // The temp file went from under the rename with its partition, which a clear() (of any
      // process) moved away whole while the stream flowed: not a failing disk, the clear won.
      // A temp file gone from a partition still in place (swept as stale by a prune, removed
      // by hand) is a failed write, as it always was.
      if (errorCode(error) === 'ENOENT' && partition.movedAway()) throw new ClearedMidStream({ cause: error })
      throw error
    }
    options.trackTemp(temp, false)
  } catch (error) {
    clearInterval(heartbeat)
    await handle.close().catch(() => {})
    // Only from the partition it was made in: by path through a link planted since, the unlink
    // would remove a file outside the cache (one moved away by a clear goes with its trash).
    if (!movedOrUnknown(partition)) await disk.unlink(temp).catch(() => {})
    options.trackTemp(temp, false)
    await stopSource()
    // pipeline wraps nothing, but a SourceError may arrive as the cause of a stream error.
    throw error
  } finally {
    partition.release()
  }
  return { compression, storedLength, logicalLength, fileBytes: head.length + storedLength + TRAILER_BYTES }
}

/** Whether `partition` may have moved away: a disk that cannot tell is not trusted with an
 *  unlink by path. */
function movedOrUnknown(partition: HeldPartition): boolean {
  try {
    return partition.movedAway()
  } catch {
    return true
  }
}

/** The partition a stream writes into, as it was before the temp file's create (see holdPartition). */
interface HeldPartition {
  /** Whether the partition's path leads elsewhere now, or nowhere: a clear() moved it away. */
  movedAway(): boolean
  release(): void
}

/**
 * The directory `dir` (made if missing) as it is now, held open until `release` where the
 * platform can: an open directory keeps its inode number, so no directory made in its place
 * meanwhile can pass for it. Judged by the number alone, taken after the temp's create, a clear
 * landing between the two, or ext4 handing the number of a partition the clear moved and
 * deleted to the one another write made in its place (it hands a freed number out again at
 * once), made a stream the clear took a failing disk. Taken before the temp's create: a clear
 * between the two makes the temp's partition another one, whose path then leads elsewhere than
 * the one held too, which is what a clear does.
 */
function holdPartition(tree: OwnedTree, dir: string): HeldPartition {
  let fd: number | undefined
  let held: { ino: number; dev: number } | undefined
  for (let attempt = 0; attempt < 3 && held === undefined; attempt++) {
    tree.dirSync(dir)
    try {
      if (DIR_FLAGS === undefined) held = disk.lstatSync(dir, { throwIfNoEntry: false })
      else {
        fd = disk.openSync(dir, DIR_FLAGS)
        held = disk.fstatSync(fd)
      }
    } catch {
      if (fd !== undefined) closeQuietly(fd)
      fd = undefined // moved away again meanwhile (a clear), or not openable: looked at again
    }
  }
  return {
    movedAway: () => {
      const now = disk.lstatSync(dir, { throwIfNoEntry: false })
      return now === undefined || held === undefined || now.ino !== held.ino || now.dev !== held.dev
    },
    release: () => {
      if (fd !== undefined) closeQuietly(fd)
      fd = undefined
    },
  }
}
