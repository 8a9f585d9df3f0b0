/**
 * `larder rekey`'s work on one partition, in a maintenance worker: every entry not sealed
 * under the active key (sealed under another listed key, or not sealed at all) is rewritten
 * sealed under it, with the same key, value, times, tags and grace, and the same mtime (its
 * LRU position). Entries whose key is not listed are left alone and counted.
 *
 * Each rewrite is a new file written beside the entry (atomic-write.ts's exclusive temp), then
 * swapped in only if the entry is still the one read: the old file is renamed aside (so no
 * writer can slip in between the check and the swap), checked (same inode, mtime and size),
 * and the new one linked into the empty place; a link that finds a file there means a writer
 * put a newer entry there meanwhile, and that one stays. Readers see the old entry, the new
 * one or (for the two system calls between) a miss: never a wrong value.
 *
 * The entry goes aside under the name every removal shares (`<hash>.0-0.tmp`,
 * store/take-aside.ts), so that a delete in that moment is not undone (swapIfSame). A rekey
 * killed between those two calls leaves it there, and it is swept as a stale temp file: a
 * miss, never a wrong value. (Rekeys before 2026-12-05 put it aside as `<hash>.rekey-<pid>`;
 * such a one is put back by the next rekey, but only when nothing has been written to or
 * removed from the namespace since (the change log, meta/changes, not modified since it went
 * aside): otherwise it might bring back an entry deleted or replaced since, and it is dropped
 * instead.)
 */
import fs from 'node:fs'
import path from 'node:path'
import { hasher } from '../format/checksum.js'
import { Compression } from '../format/compression.js'
import {
  CorruptEntryError,
  decodeEntry,
  decodeTrailer,
  encodeHead,
  encodeTrailerFields,
  FLAG_FRAMED,
  FLAG_SEALED,
  TRAILER_BYTES,
  encodeTags,
  type DecodedEntry,
  type EntryHead,
  type EntryTrailer,
} from '../format/entry-format.js'
import { decodeFrameHeader, encodeFrame, FRAME_HEADER_BYTES } from '../format/frames.js'
import { encodeUnframedEntry, impossibleLength, openedPayload } from '../format/payload.js'
import { openTempSync, writeAllSync } from '../store/atomic-write.js'
import { errorCode, isForbidden, NOT_A_FILE, openForReading } from '../store/disk.js'
import { linkUnlessTaken, swapIfSame } from '../store/swap-in.js'
import { ENTRY_NAME, rootAbove } from '../store/layout.js'
import { OwnedTree, type Sharing } from '../store/owned-tree.js'
import { checkNamespace, keyOf, namespaceIdOf } from './entry-keys.js'
import { activeKeyOf, Keyring, type KeyringData } from './keys.js'
import { FrameCipher, freshNonce, KeyError } from './seal.js'
import { noRekeyCounts } from './rekey-counts.js'
import { readWholeHead } from '../maintenance/entry-scan.js'

export interface RekeyInput {
  task: 'rekey'
  namespaceDir: string
  namespace: string
  shared: Sharing
  durable: boolean
  partitions: string[]
  /** The keys, cloned into the worker (KeyObjects); never logged. */
  keyring: KeyringData
  /** Seal the entries not sealed at all (see RekeyOptions.sealPlain). */
  sealPlain?: boolean
  /** The most an unframed entry rewritten whole may hold (the rekeying instance's, the bound
   *  its `get` keeps): a larger one could not be rewritten with bounded memory. */
  maxValueSize: number
  cancel?: Int32Array
}

export interface RekeyOutput {
  scanned: number
  /** Rewritten under the active key. */
  rekeyed: number
  /** Already sealed under the active key. */
  current: number
  /** Sealed under a key not listed: left as they are. */
  missingKey: number
  /** Not sealed at all (planted, or written before encryption was on): left for readers, which
   *  remove them, unless `sealPlain` seals them (then they count as rekeyed). */
  unsealed: number
  /** Damaged, failing authentication, not a regular file, or an unframed entry over
   *  `maxValueSize`: left for readers and `verify` (or `prune`) to judge. */
  corrupt: number
  /** Changed (rewritten, removed, used) while being rekeyed: left as the writer made them. */
  changed: number
  /** Entries put back after an earlier rekey was killed mid-swap. */
  recovered: number
  /** How many bytes the entries rewritten grew by in all (a sealed entry is longer than its
   *  plain one; keys differ in nothing else), for the running totals. */
  grownBytes: number
  stopped: boolean
}

const ASIDE = /^([0-9a-f]{16})\.rekey-([0-9]+)$/
/** An unframed entry is rewritten whole in memory: one written by `set`, within the writer's
 *  `maxValueSize`. Larger unframed entries are uncompressed streams written without
 *  encryption; they are read in blocks and framed. */
const WHOLE_LIMIT = 64 * 1024 * 1024
const BLOCK = 1024 * 1024

export function rekeyPartitions(input: RekeyInput, stop: () => boolean): RekeyOutput {
  const out: RekeyOutput = { ...noRekeyCounts(), grownBytes: 0, stopped: false }
  const keyring = new Keyring(input.keyring)
  // A root the opening thread had: its parents are never made here (see OwnedTree).
  const tree = new OwnedTree(rootAbove(input.namespaceDir, 2), input.shared, true)
  const changes = path.join(input.namespaceDir, 'meta', 'changes')
  for (const partition of input.partitions) {
    const dir = path.join(input.namespaceDir, partition)
    if (!tree.isRealSync(dir)) continue
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch (error) {
      // Gone, or another user's (mode 000): one partition we may not list does not stop the
      // rotation of the others.
      if (errorCode(error) === 'ENOENT' || isForbidden(error)) continue
      throw error
    }
    for (const listed of names) {
      if (stop()) {
        out.stopped = true
        return out
      }
      let name = listed
      const aside = ASIDE.exec(listed)
      if (aside !== null) {
        if (!recoverAside(path.join(dir, listed), path.join(dir, aside[1]!), Number(aside[2]), changes)) continue
        out.recovered++
        // Put back under its own name, which this listing did not hold: rekeyed now, or it
        // would stay under the old key after a rekey that reported the namespace done.
        name = aside[1]!
      }
      if (!ENTRY_NAME.test(name)) continue
      out.scanned++
      const verdict = rekeyEntry(tree, path.join(dir, name), keyring, input, out)
      out[verdict]++
    }
  }
  return out
}

type Verdict = 'rekeyed' | 'current' | 'missingKey' | 'unsealed' | 'corrupt' | 'changed'

/** Rekeys one entry file; what came of it. An entry rewritten adds how much it grew to `out`. */
function rekeyEntry(tree: OwnedTree, file: string, keyring: Keyring, input: RekeyInput, out: RekeyOutput): Verdict {
  // READ_FLAGS, as every reader: without O_NONBLOCK, the open of a FIFO planted at an entry's
  // name waits for a writer for ever, in a worker thread that no signal, close() or exit ends.
  let fd: ReturnType<typeof openForReading>
  try {
    fd = openForReading(file)
  } catch (error) {
    if (isForbidden(error)) return 'corrupt' // another user's file: left for prune to remove
    throw error
  }
  if (fd === undefined) return 'changed'
  if (fd === NOT_A_FILE) return 'corrupt' // a symlink or socket: left for readers and prune to remove
  let temp: string | undefined
  try {
    const stat = fs.fstatSync(fd)
    if (!stat.isFile()) return 'corrupt' // a FIFO, device or directory (opened, never read)
    const head = readWholeHead(fd, stat.size)
    if (head.key === undefined) return 'corrupt'
    checkNamespace(head, input.namespace)
    if ((head.flags & FLAG_SEALED) !== 0 && head.keyId === keyring.activeId) return 'current'
    const oldKey = keyOf(head, keyring, input.sealPlain === true) // a KeyError for a key not listed, or an unsealed entry
    const written = openTempSync(tree, file)
    temp = written.temp
    let size: number
    try {
      // A plain payload too large to read whole here (a plain stream, which no maxValueSize
      // bounds, nor the writer's: a 5 MiB artifact in a cache of 1 MiB values) is cut into
      // frames, with bounded memory, rather than left unsealed as if damaged.
      const plainStream =
        oldKey === undefined &&
        (head.compression as Compression) === Compression.None &&
        stat.size > Math.min(WHOLE_LIMIT, input.maxValueSize)
      if ((head.flags & FLAG_FRAMED) !== 0 || plainStream) reframe(fd, written.fd, head, stat.size, oldKey, keyring, input)
      else rewriteWhole(fd, written.fd, head, stat.size, oldKey, keyring, input)
      fs.futimesSync(written.fd, stat.atimeMs / 1000, stat.mtimeMs / 1000) // the LRU position stays
      if (input.durable) fs.fsyncSync(written.fd)
      size = fs.fstatSync(written.fd).size
    } finally {
      fs.closeSync(written.fd)
    }
    const verdict = swapIfSame(file, temp, stat) === 'swapped' ? 'rekeyed' : 'changed'
    temp = verdict === 'rekeyed' ? undefined : temp
    if (verdict === 'rekeyed') out.grownBytes += size - stat.size
    return verdict
  } catch (error) {
    if (error instanceof KeyError && error.missing) return 'missingKey'
    if (error instanceof KeyError && error.unsealed) return 'unsealed'
    if (error instanceof CorruptEntryError) return 'corrupt'
    // What one entry's claims make impossible (a length no buffer holds) is that entry's
    // damage, never a reason to stop the rotation of the others.
    if (error instanceof RangeError) return 'corrupt'
    throw error
  } finally {
    fs.closeSync(fd)
    // Not through a link put in place of the partition since (swapIfSame refused it): the
    // temp file is not there, and what is named like it outside the cache is not ours.
    if (temp !== undefined && tree.isRealSync(path.dirname(temp))) fs.rmSync(temp, { force: true })
  }
}

/** The entry's trailer, read from the end of the file and checked against its size. */
function readTrailerOf(fd: number, size: number, payloadOffset: number): { bytes: Buffer; trailer: EntryTrailer } {
  const bytes = Buffer.allocUnsafe(TRAILER_BYTES)
  fs.readSync(fd, bytes, 0, TRAILER_BYTES, size - TRAILER_BYTES)
  return { bytes, trailer: decodeTrailer(bytes, size, payloadOffset) }
}

/**
 * An unframed entry read whole (checksum verified), opened, sealed again as it was stored.
 * Its trailer and lengths are judged first, as a read judges them, so that a file extended
 * or planted (a sparse file of gigabytes costs no disk) is found corrupt before a buffer of
 * its size is allocated.
 */
function rewriteWhole(
  fd: number,
  to: number,
  head: EntryHead,
  size: number,
  oldKey: Parameters<typeof openedPayload>[1],
  keyring: Keyring,
  input: RekeyInput,
): void {
  const { trailer } = readTrailerOf(fd, size, head.payloadOffset)
  const impossible = impossibleLength({ ...trailer, flags: head.flags, compression: head.compression })
  if (impossible !== undefined) throw new CorruptEntryError(impossible)
  if (trailer.logicalLength > input.maxValueSize)
    throw new CorruptEntryError(`an unframed value of ${trailer.logicalLength} bytes, more than maxValueSize`)
  const bytes = Buffer.allocUnsafe(size)
  if (fs.readSync(fd, bytes, 0, size, 0) !== size) throw new CorruptEntryError('file shrank while read')
  writeAllSync(to, resealed(decodeEntry(bytes), oldKey, keyring, input.namespace), 'rekey temp')
}

/** An unframed entry (decoded, so its checksum verified) opened with `oldKey` (none: it is not
 *  sealed) and sealed under the active key, everything else as it was: the bytes rekey writes
 *  for an entry file read whole, and for a Redis value (rekey-redis.ts). A KeyError if it
 *  fails authentication. */
export function resealed(entry: DecodedEntry, oldKey: Parameters<typeof openedPayload>[1], keyring: Keyring, namespace: string): Buffer {
  const payload = openedPayload(entry, oldKey)
  const meta = { ...entry, namespaceId: entry.namespaceId ?? namespaceIdOf(namespace), keyId: undefined, nonce: undefined }
  return encodeUnframedEntry(meta, payload, entry.logicalLength, keyring)
}

/**
 * A framed entry (or a large unframed, unsealed one, cut into raw frames) rewritten frame by
 * frame with bounded memory: each frame opened (if sealed) and sealed under the active key.
 * The old checksum is checked at the end; a mismatch throws, and the temp file is dropped.
 */
function reframe(
  fd: number,
  to: number,
  head: EntryHead,
  size: number,
  oldKey: Parameters<typeof openedPayload>[1],
  keyring: Keyring,
  input: RekeyInput,
): void {
  const oldHash = hasher().create64(0n)
  const newHash = hasher().create64(0n)
  const read = (length: number, at: number): Buffer => {
    const bytes = Buffer.allocUnsafe(length)
    if (fs.readSync(fd, bytes, 0, length, at) !== length) throw new CorruptEntryError('file shrank while read')
    oldHash.update(bytes)
    return bytes
  }
  const write = (bytes: Buffer): void => {
    newHash.update(bytes)
    writeAllSync(to, bytes, 'rekey temp')
  }
  const trailerAt = size - TRAILER_BYTES
  const { bytes: trailerBytes, trailer } = readTrailerOf(fd, size, head.payloadOffset)
  const oldHead = read(head.payloadOffset, 0)
  const framed = (head.flags & FLAG_FRAMED) !== 0
  const nonce = freshNonce()
  const newHead = encodeHead(
    {
      ...head,
      flags: FLAG_FRAMED | FLAG_SEALED,
      namespaceId: head.namespaceId ?? namespaceIdOf(input.namespace),
      keyId: keyring.activeId,
      nonce,
    },
    Buffer.from(head.key),
    encodeTags(head.tags),
  )
  write(newHead)
  const opener = oldKey === undefined ? undefined : new FrameCipher(oldKey, head.nonce!, oldHead)
  const sealer = new FrameCipher(activeKeyOf(keyring), nonce, newHead)
  let stored = 0
  let frames = 0
  for (let at = head.payloadOffset; at < trailerAt;) {
    let frame: Buffer[]
    if (framed) {
      const header = read(FRAME_HEADER_BYTES, at)
      const { storedLength } = decodeFrameHeader(header, trailerAt - at - FRAME_HEADER_BYTES, head.compression, opener !== undefined)
      const body = read(storedLength, at + FRAME_HEADER_BYTES)
      at += FRAME_HEADER_BYTES + storedLength
      const inner = opener === undefined ? body : opener.open(header, body, at === trailerAt)
      frame = [Buffer.from(header), inner]
    } else {
      const block = read(Math.min(BLOCK, trailerAt - at), at)
      at += block.length
      frame = encodeFrame.raw(block)
    }
    for (const part of sealer.seal(frame, at === trailerAt)) {
      stored += part.length
      write(part)
    }
    frames++
  }
  if (frames === 0) {
    for (const part of sealer.seal(encodeFrame.raw(Buffer.alloc(0)), true)) {
      stored += part.length
      write(part)
    }
  }
  oldHash.update(trailerBytes.subarray(0, TRAILER_BYTES - 8))
  if (oldHash.digest() !== trailer.checksum) throw new CorruptEntryError('checksum mismatch')
  const fields = encodeTrailerFields(stored, trailer.logicalLength, trailer.grace)
  newHash.update(fields)
  const sum = Buffer.allocUnsafe(8)
  sum.writeBigUInt64LE(newHash.digest(), 0)
  writeAllSync(to, Buffer.concat([fields, sum]), 'rekey temp')
}

/** An entry a killed rekey left aside: put back if nothing was written or removed in the
 *  namespace since it went aside, else dropped. A live rekey's own aside is not touched. */
function recoverAside(aside: string, file: string, pid: number, changes: string): boolean {
  if (pid !== process.pid && alive(pid)) return false
  const moved = fs.lstatSync(aside, { throwIfNoEntry: false })
  if (moved === undefined) return false
  const log = fs.statSync(changes, { throwIfNoEntry: false })
  const untouched = moved.isFile() && log !== undefined && log.mtimeMs < moved.ctimeMs
  const restored = untouched && linkUnlessTaken(aside, file)
  // Recursive: a directory planted at such a name is foreign, and failing on it would fail
  // every rekey (rm never follows a link, inside or at the name).
  fs.rmSync(aside, { recursive: true, force: true })
  return restored
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errorCode(error) === 'EPERM'
  }
}
