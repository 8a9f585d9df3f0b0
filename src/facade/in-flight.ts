import { LarderError } from '../errors.js'
import type { KeyOrder } from '../key-order.js'

/** How long close() waits for writes in flight before it aborts the streams among them. */
export const CLOSE_WAIT_MS = 5000

/**
 * The writes in flight, for close() to wait for. A buffered write is a few syscalls (or one
 * round trip) from done; a stream can take as long as its source, so a stream's write carries
 * an AbortController that close() uses once it has waited long enough.
 */
export class InFlight {
  readonly #writes = new Set<{ done: Promise<unknown>; abort?: AbortController | undefined }>()
  readonly #order: KeyOrder
  /** Set once close() has given up waiting: what the streams it aborts are aborted with. */
  #closing: LarderError | undefined

  constructor(order: KeyOrder) {
    this.#order = order
  }

  /** The controller a stream's write runs under (see track). One made after close() gave up
   *  waiting, for a stream that was queued behind one it aborted, is aborted from the start:
   *  else that stream would begin, and write, once close() had resolved. */
  streamAbort(): AbortController {
    const abort = new AbortController()
    if (this.#closing !== undefined) abort.abort(this.#closing)
    return abort
  }

  /** Runs a write as one close() waits for. */
  async track<T>(write: Promise<T>, abort?: AbortController): Promise<T> {
    const flight = { done: write.catch(() => {}), abort }
    this.#writes.add(flight)
    try {
      return await write
    } finally {
      this.#writes.delete(flight)
    }
  }

  /** Lets writes in flight finish for up to CLOSE_WAIT_MS, then aborts the streams left (a
   *  buffered write is a few syscalls from done, so only streams can be slower) and waits,
   *  as long again at most, for those to remove their temp files: for them only, so a write
   *  that cannot be aborted (a background load's, whose loader hangs) holds close() for
   *  CLOSE_WAIT_MS once, not twice. */
  async settle(): Promise<void> {
    if (this.#writes.size === 0 && this.#order.idle) return
    // Changes queued behind others on their key (KeyOrder) are writes called before close too.
    await settledWithin([this.#order.settled(), ...[...this.#writes].map((f) => f.done)], CLOSE_WAIT_MS)
    const closing = new LarderError('ERR_CLOSED', 'The cache was closed before this stream was stored; nothing was written', {
      field: 'cache',
    })
    this.#closing = closing
    const aborted = [...this.#writes].filter((flight) => flight.abort !== undefined)
    for (const flight of aborted) flight.abort!.abort(closing)
    // The changes queued behind the aborted streams run now (streams among them aborted as
    // they begin): they were called before close(), and settle before it resolves.
    await settledWithin([this.#order.settled(), ...aborted.map((f) => f.done)], CLOSE_WAIT_MS)
  }
}

/** Waits for `promises` (which never reject), or `ms`, whichever comes first. */
export async function settledWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return
  let timer: NodeJS.Timeout | undefined
  const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  await Promise.race([Promise.all(promises), waited])
  clearTimeout(timer)
}
