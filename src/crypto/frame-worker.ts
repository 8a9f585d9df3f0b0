/**
 * The thread that seals and opens large stream frames (crypto/frame-pool.ts), so a stream's
 * cipher work runs beside the main thread's reads, checksums and writes instead of between
 * them. Plain data in, plain data out: the frame's bytes arrive transferred, and leave so.
 */
import type { KeyObject } from 'node:crypto'
import { move } from 'piscina'
import { KeyError, open, seal } from './seal.js'

export interface FrameTask {
  /** A task that only starts a thread (frame-pool.ts waits for one before offloading). */
  warm?: true
  /** true: seal `data` (plain · → ciphertext · tag); false: open it (ciphertext · tag → plain). */
  seal: boolean
  key: KeyObject
  nonce: Uint8Array
  aad: Uint8Array
  data: Uint8Array
}

/** The output bytes, or false when `data` did not authenticate (a KeyError: errors cross
 *  threads as plain errors, so the outcome travels as data). Bytes travel as the task's
 *  whole answer, since piscina moves (rather than copies) only a top-level answer. */
export type FrameResult = Uint8Array | false

export default function frameTask(task: FrameTask): FrameResult {
  if (task.warm) return new Uint8Array(0)
  const nonce = Buffer.from(task.nonce.buffer, task.nonce.byteOffset, task.nonce.byteLength)
  const aad = Buffer.from(task.aad.buffer, task.aad.byteOffset, task.aad.byteLength)
  const data = Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength)
  let out: Buffer
  try {
    out = task.seal ? seal(task.key, nonce, aad, data) : open(task.key, nonce, aad, data)
  } catch (error) {
    if (error instanceof KeyError) return false
    throw error
  }
  // Moved back when the output owns its memory (it does at frame sizes); copied otherwise.
  const owns = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength
  return owns ? (move(out) as Uint8Array) : out
}
