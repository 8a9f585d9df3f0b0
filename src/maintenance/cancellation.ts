import { setMaxListeners } from 'node:events'

/**
 * Cancelling maintenance without killing a worker in the middle of a step.
 *
 * piscina aborts a running task by terminating its thread: a removal could stop between its
 * rename aside and its unlink (leaving the renamed file behind), and whatever the task had
 * removed so far would go uncounted, so the report and the running totals would both be
 * wrong. Instead, every task of one operation gets the same flag in shared memory, and the
 * worker's loops check it between files (and between the chunks of a large file): a cancelled
 * task finishes the file it is on and returns what it did, marked `stopped`.
 */
export class Cancellation {
  /** Shared with the workers: 0 = go on, 1 = stop. */
  readonly flag = new Int32Array(new SharedArrayBuffer(4))
  readonly #signal: AbortSignal | undefined
  readonly #linked = new AbortController()
  readonly #onAbort = (): void => this.cancel()

  constructor(signal: AbortSignal | undefined) {
    this.#signal = signal
    if (signal?.aborted === true) this.cancel()
    else signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  cancel(): void {
    Atomics.store(this.flag, 0, 1)
    this.#linked.abort(this.reason)
  }

  /** Aborted on cancellation: for waits on the main thread, and for read-only worker tasks,
   *  which piscina may simply stop. One operation hands it to many tasks, so it takes any
   *  number of listeners; it lives only as long as the operation. */
  get signal(): AbortSignal {
    setMaxListeners(0, this.#linked.signal)
    return this.#linked.signal
  }

  get requested(): boolean {
    return Atomics.load(this.flag, 0) === 1
  }

  /** Throws (anything: the operation turns it into ERR_ABORTED) once cancelled. */
  throwIfRequested(): void {
    if (this.requested) throw new Error('cancelled')
  }

  /** Why it was cancelled: the caller's signal's reason, if it was that signal. */
  get reason(): unknown {
    return this.#signal?.aborted === true ? (this.#signal.reason as unknown) : undefined
  }

  /** Stops listening to the caller's signal: a long-lived signal (an instance's lifetime)
   *  must not gain a listener per operation. */
  dispose(): void {
    this.#signal?.removeEventListener('abort', this.#onAbort)
  }
}

/** In a worker: whether the operation this task belongs to was cancelled. */
export function stopRequested(flag: Int32Array | undefined): boolean {
  return flag !== undefined && Atomics.load(flag, 0) === 1
}
