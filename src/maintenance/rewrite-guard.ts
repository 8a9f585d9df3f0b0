import path from 'node:path'

/** Partitions of a namespace (two hex digits). */
const PARTITIONS = 256

/**
 * Keeps compress-later's rewrite of an entry file (in its worker) from overlapping a change of
 * the same partition made by its own cache (on the main thread): a set or delete measures the
 * file it replaces (the running totals take its size off), then renames or unlinks. A rewrite
 * swapped in between made the set take off the plain size of a file that was by then the
 * compressed one, while the worker told the totals what the rewrite saved: that saving went
 * off twice, and the totals fell below the disk.
 *
 * Shared memory, per partition, Dekker's way (sequentially consistent Atomics): a change counts
 * itself in, then waits while a swap is marked; a swap marks itself, then stands aside (the
 * file waits for a later try) while a change is counted in. Of the two, at least one sees the
 * other. A swap is a link and a rename (µs), so a change waits at most that long; a change may
 * span awaits (a large write through the thread pool), and swaps in its partition wait for it.
 * Changes by another instance or process on the directory are not seen: their race is as
 * narrow, and rarer.
 */
export class RewriteGuard {
  /** Counts of changes in progress (0..255), then swap marks (256..511). */
  readonly #cells: Int32Array

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(PARTITIONS * 2 * 4)) {
    this.#cells = new Int32Array(buffer)
  }

  get buffer(): SharedArrayBuffer {
    return this.#cells.buffer as SharedArrayBuffer
  }

  /** A change of `file` begins (the main thread): waits out a swap in its partition. Hand the
   *  answer to `leave` once the change is made or failed. */
  enter(file: string): number {
    const i = partitionOf(file)
    Atomics.add(this.#cells, i, 1)
    while (Atomics.load(this.#cells, PARTITIONS + i) === 1) Atomics.wait(this.#cells, PARTITIONS + i, 1, 5)
    return i
  }

  leave(partition: number): void {
    Atomics.sub(this.#cells, partition, 1)
  }

  /** Runs `swap` of `file` (the worker) unless a change of its partition is in progress:
   *  undefined then, and nothing was run. */
  swapAlone<T>(file: string, swap: () => T): T | undefined {
    const i = PARTITIONS + partitionOf(file)
    Atomics.store(this.#cells, i, 1)
    try {
      return Atomics.load(this.#cells, i - PARTITIONS) === 0 ? swap() : undefined
    } finally {
      Atomics.store(this.#cells, i, 0)
      Atomics.notify(this.#cells, i)
    }
  }
}

/** The partition an entry file is in (its directory's two hex digits); 0 for anything else. */
function partitionOf(file: string): number {
  const slash = file.lastIndexOf(path.sep)
  const n = Number.parseInt(file.slice(slash - 2, slash), 16)
  return n >= 0 && n < PARTITIONS ? n : 0
}
