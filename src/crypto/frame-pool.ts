/**
 * Stream frames sealed and opened off the main thread. A 1 MiB frame costs AES-256-GCM
 * 0.4–0.9 ms here (Node 20's OpenSSL 3.0 is the slower); done inline, that time is spent
 * between a stream's reads and writes, and the stream runs at the sum of both. In a worker
 * (crypto/frame-worker.ts, a small piscina pool) it runs beside them, frames several at a time
 * while their order is kept by the callers (each frame's nonce and authenticated data are fixed
 * before it leaves, so completion order does not matter).
 *
 * Small frames, and every frame until the pool's first thread is up (~30–60 ms), are done
 * inline: a short stream never waits for a thread to start. The pool is one per process,
 * started on first use; idle threads exit and never keep the process alive.
 */
import { availableParallelism } from 'node:os'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { KeyObject } from 'node:crypto'
import type { Piscina } from 'piscina'
import type { FrameResult, FrameTask } from './frame-worker.js'

/** Frames smaller than this are not worth a thread hop (~30 µs each way). */
const OFFLOAD_BYTES = 128 * 1024
const IDLE_MS = 2000

let pool: Piscina | undefined
/** Whether a thread has answered since the pool last had none (idle threads exit). */
let ready = false
let warming = false
/** A thread failed to start (the worker file missing from a build, say): frames stay inline. */
let broken = false
/** Frames done in the pool so far (the tests read it: framePoolState). */
let offloaded = 0

function workerFile(): string {
  const here = import.meta.url
  return fileURLToPath(new URL(here.endsWith('.ts') ? './frame-worker.ts' : './crypto-worker.js', here))
}

/** Whether this frame goes to the pool: only once a thread is up. When the pool has none (first
 *  use, or every thread exited idle), one is started for later frames and this one stays inline. */
function offloads(bytes: number): boolean {
  if (bytes < OFFLOAD_BYTES || broken) return false
  if (pool === undefined) {
    pool = new (createRequire(import.meta.url)('piscina') as typeof import('piscina')).Piscina({
      filename: workerFile(),
      minThreads: 0,
      maxThreads: Math.max(1, Math.min(4, availableParallelism() - 1)),
      idleTimeout: IDLE_MS,
    })
    // Unheard, a pool's 'error' (a thread that cannot start) would be thrown into the host.
    pool.on('error', () => {
      broken = true
      ready = false
    })
  }
  if (pool.threads.length === 0 && !warming) {
    ready = false
    warming = true
    // No thread could start: `ready` stays false and every frame stays inline.
    const warm: FrameTask = { warm: true, seal: true, key: undefined as unknown as KeyObject, nonce: EMPTY, aad: EMPTY, data: EMPTY }
    pool
      .run(warm)
      .then(
        () => (ready = true),
        () => {},
      )
      .finally(() => (warming = false))
  }
  return ready
}
const EMPTY = new Uint8Array(0)

/** `bytes` as a buffer that owns its whole memory, so it can be moved to the worker. */
function movable(bytes: Buffer): Buffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : Buffer.from(bytes)
}

/**
 * One frame's cipher work handed to the pool, or undefined when it is better done inline (the
 * caller then does it: crypto/seal.ts FrameCipher). `data` is taken over when it goes (its
 * memory moves to the worker): the caller must not use it afterwards.
 */
export function inPool(sealing: boolean, key: KeyObject, nonce: Buffer, aad: Buffer, data: Buffer): Promise<FrameResult> | undefined {
  if (!offloads(data.length)) return undefined
  offloaded++
  const input = movable(data)
  const task: FrameTask = { seal: sealing, key, nonce, aad, data: input }
  return pool!.run(task, { transferList: [input.buffer as ArrayBuffer] }) as Promise<FrameResult>
}

/** Whether the pool has a thread up, and how many frames it has taken: what its tests check. */
export function framePoolState(): { ready: boolean; offloaded: number } {
  return { ready, offloaded }
}
