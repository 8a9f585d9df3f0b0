/**
 * What creating a file has cost lately on one cache's disk, and so how small writes in flight
 * together create their temp files: synchronously, as a write alone does, or through the
 * thread pool, where the creates overlap one another and the main thread's work.
 *
 * The pool's round trip costs the main thread ~35 µs a write on this 2-core VM (a futex wake
 * of a pool thread, the callback, its promise), which only a dear create repays. A create is
 * a few µs on most disks (ext4 with a journal, xfs, tmpfs), and hundreds where the kernel's
 * work is heavy: this VM's ext4 runs without a journal, and such an ext4 will not reuse an
 * inode freed in the last minute (five, while its table is unwritten), so every create searches
 * past all such inodes of its group: 200-900 µs of system time after an `rm -rf` of thousands
 * of files; network and FUSE file systems wait for a round trip. W1 set at 16 in flight
 * (bench/README.md "Sets in flight, the create's cost"): with cheap creates 10,100-10,600
 * sets/s through the pool against 15,400-17,200 synchronously; with dear ones 5,100 against
 * 3,800-3,900.
 */

/** Creates lately at least this dear (ms, a moving average) send writes in flight to the pool.
 *  A set through the pool costs the main thread ~95 µs here whatever the create costs (while
 *  the second core keeps up with the creates), a synchronous one ~55 µs and the create: the
 *  lines cross near 40 µs, which a faster pool would lower and a slower one raise. */
const OVERLAP_FROM_MS = 0.05
/** No one create moves the average by more than this over WEIGHT (a preempted thread, a page
 *  fault): a single one of 1 ms after cheap ones sends writes to the pool for some tens of
 *  writes. Not lower: where a tenth of the creates cost 900 µs and the rest 5, they cost 95 on
 *  average, and a cap near the threshold would hide them. */
const SAMPLE_CAP_MS = 1
/** The average's weight: each sample moves it by 1/WEIGHT of the difference. */
const WEIGHT = 16
/** While overlapping, one write in SAMPLE_EVERY creates synchronously, so that the average
 *  follows the disk (the pool's creates cannot be timed: their wait is the queue's too). */
const SAMPLE_EVERY = 16

export class CreateCost {
  #averageMs = 0
  #asked = 0

  /** A synchronous create of a temp file took `ms`. */
  took(ms: number): void {
    this.#averageMs += (Math.min(ms, SAMPLE_CAP_MS) - this.#averageMs) / WEIGHT
  }

  /** Whether a small write among others in flight creates its temp file through the pool.
   *  The sample is the first write asking after SAMPLE_EVERY - 1 others, so in a burst it is
   *  the burst's first, whose create runs before the others hand theirs to the pool: taken
   *  last, beside the pool's creates on a 2-core machine, it measured their contention, which
   *  the overlap itself causes, and writes stayed in the pool for hundreds of bursts of 16
   *  after creates were cheap again (~21 expected). */
  overlaps(): boolean {
    if (this.#averageMs < OVERLAP_FROM_MS) return false
    return this.#asked++ % SAMPLE_EVERY !== 0
  }
}
