/**
 * Raw DEFLATE of a big value (32 KiB to SYNC_CODEC_LIMIT) that codes each ~32 KiB piece the
 * way that pays: a piece in which LZ77 finds nothing (base64 or hex of random bytes, an
 * embedded compressed image) with Huffman only, the rest with LZ77 at the cache's level. A
 * value whose pieces all want LZ77 is one ordinary stream, as before. Otherwise each run of
 * pieces that want the same is compressed by its own zlib stream, and the outputs, laid end to
 * end, are ONE valid raw-DEFLATE stream (as pigz joins its pieces). Readers need nothing new:
 * every inflater (ours, the fixtures' versions, `zlib.inflateRawSync`) reads it as any other.
 *
 * Why the concatenation is one stream:
 * - every run but the last ends with Z_SYNC_FLUSH: its last block is not marked final and is
 *   followed by an empty stored block, which leaves the bit stream on a byte boundary, so the
 *   next run's first block header starts at its first byte;
 * - only the last run ends with Z_FINISH, which marks its last block final;
 * - a run coded with LZ77 after another is given the 32 KiB of input before it as its
 *   `dictionary` (raw DEFLATE writes no dictionary id): its back-references may reach into
 *   them, and an inflater has exactly those bytes in its window when it gets there, as the
 *   output of the run before. So the ratio stays that of one stream.
 *
 * Why: DEFLATE level 1 was the largest part of a 64 KiB set (issue 14's profile: 41-45 % of
 * the case), and on half of the W4 value (base64 of random bytes) it searches as long as on
 * text and finds nothing. Coded this way a W4 value costs 0.6-0.7 ms of CPU instead of
 * 0.8-1.0 (load 12-17) and stores at 52.7 % instead of 53.6 % (each run gets Huffman tables
 * of its own).
 *
 * Why not several cores at once (pigz's other half, measured for issue 14): a piece sent to
 * zlib's thread pool costs ~150-250 µs of main-thread CPU in Node's stream machinery (two pool
 * round trips, a Transform, its callbacks) and a dictionary to hash; for a 64 KiB value that
 * is as much as the half it moves off the thread. On this shared 2-core machine, where every
 * core is busy, two pieces in parallel took as long or longer than one stream, and a highly
 * compressible 64 KiB of JSON rows went from ~0.12 ms of CPU to ~0.3-0.6 ms.
 */
import zlib from 'node:zlib'

/** DEFLATE's window: the most a back-reference can reach, so the most a dictionary needs. */
const WINDOW_BYTES = 32 * 1024

/** About the size of a piece judged on its own. */
export const PIECE_BYTES = 32 * 1024

/** Output room for `n` input bytes in one zlib output chunk: DEFLATE's worst case (stored
 *  blocks: 5 bytes per 16 KiB and a little) plus the sync marker. One chunk, not zlib's
 *  default 16 KiB steps, so no output is split into buffers joined by a copy. */
function outputRoom(n: number): number {
  return n + (n >> 10) + 64
}

/** Bytes of each sample the repeat probe looks at, and where in a piece they are taken. */
const SAMPLE_BYTES = 1024
const SAMPLE_AT = [1 / 6, 1 / 2, 5 / 6]
/** A sample in which fewer than this share of positions start a 4-byte sequence seen earlier in
 *  it has nothing for LZ77 to find. Measured on 1 KiB samples: prose and JSON 0.3–0.45, base64
 *  or hex of random bytes below 0.01. */
const FEW_REPEATS = 0.05

const lastSeenAt = new Int32Array(4096)
const seenInProbe = new Int32Array(4096)
let probe = 0

/** The share of positions in `bytes[start, end)` whose next 4 bytes occurred earlier in that
 *  span: LZ77's matches, counted cheaply (one hash table of the last position, ~6 µs/KiB). */
function repeatShare(bytes: Buffer, start: number, end: number): number {
  // Each probe marks the slots it fills with its own number; before the number outgrows the
  // Int32Array (after ~2e9 probes: days of a busy server), the marks are cleared.
  if (probe === 0x7fff_ffff) {
    seenInProbe.fill(0)
    probe = 0
  }
  probe++
  let repeats = 0
  for (let i = start; i + 4 <= end; i++) {
    const h = Math.imul(bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24), 2654435761) >>> 20
    if (seenInProbe[h] === probe) {
      const j = lastSeenAt[h]!
      if (bytes[j] === bytes[i] && bytes[j + 1] === bytes[i + 1] && bytes[j + 2] === bytes[i + 2] && bytes[j + 3] === bytes[i + 3])
        repeats++
    }
    seenInProbe[h] = probe
    lastSeenAt[h] = i
  }
  return repeats / Math.max(1, end - start - 3)
}

/** Bytes of the string looked for in the window before a sample. */
const NEEDLE_BYTES = 16

/** Whether the sample's first 16 bytes occur in the 32 KiB before it: a repeat at a distance
 *  the 1 KiB sample cannot see (the same attachment twice, a repeated block), which LZ77 would
 *  find. One search per sample: they were a tenth of a set's compression time at two. */
function repeatsFarBack(bytes: Buffer, start: number): boolean {
  const window = bytes.subarray(Math.max(0, start - WINDOW_BYTES), start)
  return window.indexOf(bytes.subarray(start, start + NEEDLE_BYTES)) !== -1
}

/**
 * Whether LZ77 finds anything in `bytes[start, end)` (a piece, with the input before it as its
 * window): three samples of it, each for repeats within it and for its first 16 bytes found
 * again in the window before. A piece without (base64 or hex of random bytes, an embedded
 * compressed image) is coded with Huffman only: level 1 would spend as long looking for
 * matches as on text and find none, and Huffman coding stores it as small (~75 % for base64)
 * in about half the time.
 */
export function matchesPay(bytes: Buffer, start = 0, end = bytes.length): boolean {
  if (end - start < 4 * SAMPLE_BYTES) return true
  for (const at of SAMPLE_AT) {
    const from = start + Math.floor((end - start) * at) - SAMPLE_BYTES / 2
    if (repeatShare(bytes, from, from + SAMPLE_BYTES) >= FEW_REPEATS || repeatsFarBack(bytes, from)) return true
  }
  return false
}

/**
 * Raw DEFLATE of `bytes` at `level`, each run of pieces coded as pays (see above).
 * Inflates to exactly `bytes`.
 */
export function deflateRawInPieces(bytes: Buffer, level: number): Buffer {
  const count = Math.max(1, Math.round(bytes.length / PIECE_BYTES))
  const step = Math.ceil(bytes.length / count)
  // Runs of neighbouring pieces that want the same coding: [start, end, LZ77?].
  const runs: [number, number, boolean][] = []
  for (let start = 0; start < bytes.length; start += step) {
    const end = Math.min(bytes.length, start + step)
    const lz = matchesPay(bytes, start, end)
    const run = runs.at(-1)
    if (run !== undefined && run[2] === lz) run[1] = end
    else runs.push([start, end, lz])
  }
  return Buffer.concat(
    runs.map(([start, end, lz], i) =>
      zlib.deflateRawSync(bytes.subarray(start, end), runOptions(bytes, start, end, level, lz, i === runs.length - 1)),
    ),
  )
}

function runOptions(bytes: Buffer, start: number, end: number, level: number, lz: boolean, last: boolean): zlib.ZlibOptions {
  const options: zlib.ZlibOptions = {
    level,
    strategy: lz ? zlib.constants.Z_DEFAULT_STRATEGY : zlib.constants.Z_HUFFMAN_ONLY,
    chunkSize: Math.max(64, outputRoom(end - start)),
    finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
  }
  // Huffman coding makes no back-references, so it needs no window.
  if (lz && start > 0) options.dictionary = bytes.subarray(Math.max(0, start - WINDOW_BYTES), start)
  return options
}
