import { FRAME_BYTES } from '../format/frames.js'

/**
 * Spare 1 MiB blocks for the stream writer's unframed path (every artifact `larder serve`
 * stores). An upload is cut into 1 MiB blocks before it is written. A fresh block per MiB is
 * a 1 MiB ArrayBuffer outside V8's heap; one that lives across two scavenges (an upload
 * arriving at network speed) is promoted, and only a full mark-compact frees it: at a few
 * hundred MB/s of uploads, V8's external-memory limit then starts a mark-compact every
 * 60-100 MB (42 in 1.6 GB of 100 MiB uploads, against 1 for a bare server that writes the
 * socket's chunks as they come). A block whose write has completed is put back here, and the
 * next block is cut into it.
 *
 * Memory: a spare block is one that was in use, and a block is taken from the spares before
 * one is allocated, so spares and blocks in use together never exceed the most blocks in use
 * at once since the spares were last dropped: the pool never raises the peak the writes in
 * flight already reached. At most SPARE_MAX blocks wait here, and all are dropped once no
 * block was taken for IDLE_MS (an unref'd timer), so an idle server holds none; what else
 * the process does in those IDLE_MS (downloads after a burst of uploads) adds to them.
 *
 * Only a block nothing else refers to may be put back: the unframed path writes a block and
 * gives it back once the write completed; a framed block goes on to a compressor or a cipher
 * and never comes here.
 */
const SPARE_MAX = 16
const IDLE_MS = 250
const spare: Buffer[] = []
let lastTake = 0
let idleTimer: NodeJS.Timeout | undefined

/** A block of FRAME_BYTES with undefined content. */
export function takeBlock(): Buffer {
  lastTake = performance.now()
  return spare.pop() ?? Buffer.allocUnsafeSlow(FRAME_BYTES)
}

/** Gives back a block taken with takeBlock (or a view from its start) once nothing refers to
 *  it any more. */
export function returnBlock(block: Buffer): void {
  if (spare.length >= SPARE_MAX || block.byteOffset !== 0 || block.buffer.byteLength !== FRAME_BYTES) return
  spare.push(block.length === FRAME_BYTES ? block : Buffer.from(block.buffer, 0, FRAME_BYTES))
  idleTimer ??= setTimeout(dropWhenIdle, IDLE_MS).unref()
}

function dropWhenIdle(): void {
  const idleFor = performance.now() - lastTake
  if (idleFor >= IDLE_MS) {
    spare.length = 0
    idleTimer = undefined
  } else {
    idleTimer = setTimeout(dropWhenIdle, IDLE_MS - idleFor).unref()
  }
}

/** Spare blocks held now (for tests). */
export function spareBlocks(): number {
  return spare.length
}
