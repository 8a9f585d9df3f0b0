/**
 * How many entries one batch call (`getMany`, `setMany`, `deleteMany`) works on at once.
 * Enough to overlap the thread pool's reads and writes; few enough that a batch of thousands
 * of large entries never holds thousands of open files: each entry over 64 KiB holds a file
 * descriptor while it is read or written, and a process often may open only 1,024. Past
 * that limit every further open fails with EMFILE, which reads as a miss, counts as a disk
 * error and, repeated, opens the breaker.
 */
export const BATCH_PARALLELISM = 16

/** A counting semaphore: at most `size` tasks run at once; the rest wait, first come first served. */
export class Slots {
  #free: number
  readonly #waiting: (() => void)[] = []

  constructor(size: number) {
    this.#free = size
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#waiting.push(resolve))
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next === undefined) this.#free++
      else next()
    }
  }
}
