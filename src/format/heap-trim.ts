/**
 * Keeps glibc from handing zlib's working memory back to the kernel after every value.
 *
 * Each synchronous zlib call (`deflateRawSync` and friends) mallocs ~256 KiB of state (window,
 * hash chains, pending output) and frees it when the call ends. On the main thread that memory
 * comes from the top of the heap, and glibc returns the top of the heap to the kernel (`brk`)
 * whenever more than its trim threshold is free there: 128 KiB until the process first frees a
 * larger mmap'd block. So in a fresh process every compressed value paid for ~64 pages to be
 * faulted in and zeroed again by the kernel, and in a bare loop of sets that lasted until
 * something else pinned the heap's top. Measured for issue 14 (`bench/case.mjs` set64k, 1,000
 * values of 64 KiB, Node 20, glibc 2.36): 755 `brk` calls before, 77-99 after in most runs;
 * 558 sets/s before and 744 after (medians of 5 alternating pairs), the same as with
 * `MALLOC_TRIM_THRESHOLD_` set. Streams do not call it: their frames are compressed in the
 * thread pool, and their probe is one call per stream.
 *
 * glibc raises both thresholds by itself when a block it mmap'd (128 KiB to 32 MiB) is freed:
 * the mmap threshold to that block's size and the trim threshold to twice it, on the view that
 * a process freeing blocks that large will want them again. A long-running application has
 * usually done so long before (any buffer of a few MiB read and dropped); a build tool's short
 * process often has not. Freeing one 4 MiB buffer does it now: afterwards the process keeps up
 * to 8 MiB of free heap instead of 128 KiB, and blocks under 4 MiB come from the heap. Smaller
 * buffers measured less: 1 MiB still left 369-827 `brk` calls in the same loop.
 *
 * The buffer is never written, so no page of it is touched; it is freed when the garbage
 * collector next finds it dead (the sets that follow make garbage enough). On other allocators
 * (musl, macOS) this is one allocation and one free, nothing more.
 */

/** How large a block to free: past glibc's 4 MiB the loop measured no better. */
const SETTLE_BYTES = 4 * 1024 * 1024

let settled = false

/** Called before a synchronous compression; does its work once per process. */
export function settleHeapTrim(): void {
  if (settled) return
  settled = true
  // allocUnsafeSlow: outside Buffer's pool, so this is a malloc of its own, freed by itself.
  Buffer.allocUnsafeSlow(SETTLE_BYTES)
}
