// The write-back queue past its bound (src/tiers/write-back.ts #bound): a queue of maxQueue
// tombstones (deletes made while Redis was away), then a burst of as many sets, each of which
// lets the oldest set go. Finding that set walked every tombstone before it (quadratic: 2.8 s of
// the main thread for 10,000 writes on the review VM); the queued sets are now kept in order
// beside the queue. Prints the burst's time against the same burst with room in the queue, for
// each size: the two should stay close, and grow linearly with the size. Median of --runs (5).
// Usage (sources through tsx): node --import tsx bench/write-back-overflow.mjs [--runs 5]
import { WriteBackQueue } from '../src/tiers/write-back.ts'

const args = process.argv.slice(2)
const runs = Number(args[args.indexOf('--runs') + 1] || 5) || 5
const SIZES = [2_500, 10_000, 40_000]

function burst(size, room) {
  const queue = new WriteBackQueue({
    maxQueue: room ? size * 2 : size,
    maxBytes: 1 << 30,
    maxDelay: 3_600_000,
    send: () => Promise.resolve(),
    dropped: () => undefined,
    lostTombstone: () => undefined,
    ready: () => false, // Redis away: nothing is sent, the queue only grows
  })
  for (let i = 0; i < size; i++) queue.enqueue(`t${i}`, { bytes: undefined, createdAt: i + 1, expiresAt: 0, grace: 0 })
  const value = Buffer.from('x')
  const started = performance.now()
  for (let i = 0; i < size; i++) queue.enqueue(`s${i}`, { bytes: value, createdAt: size + i + 1, expiresAt: 0, grace: 0 })
  const ms = performance.now() - started
  queue.stop()
  return ms
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

console.log('| queued tombstones | sets in the burst | past the bound, ms | with room, ms |')
console.log('| ---: | ---: | ---: | ---: |')
for (const size of SIZES) {
  const over = median(Array.from({ length: runs }, () => burst(size, false)))
  const room = median(Array.from({ length: runs }, () => burst(size, true)))
  console.log(`| ${size.toLocaleString('en')} | ${size.toLocaleString('en')} | ${over.toFixed(1)} | ${room.toFixed(1)} |`)
}
