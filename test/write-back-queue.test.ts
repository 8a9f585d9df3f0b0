/**
 * The write-back queue's retry pacing. A batch Redis refuses without waiting (its breaker
 * half-open: one trial call is out elsewhere, every other call is refused at once) must not be
 * sent again at once: that loop runs in microtasks, so no timer, the trial's timeout included,
 * ever runs again, and the process hangs (seen in CI: a Redis restart test stuck for 600 s).
 * The queue is driven here through its own parts; the real-Redis behaviour around it is
 * covered by test/redis/faults.test.ts and missed-changes.test.ts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { eventually } from './eventually.ts'
import { WriteBackQueue, type QueuedWrite } from '../src/tiers/write-back.ts'

const write = (createdAt: number): QueuedWrite => ({ bytes: Buffer.from('x'), createdAt, expiresAt: 0, grace: 0 })

test('a batch refused at once while the breaker lets calls through is retried maxDelay later, not in a loop that starves timers', async () => {
  let sends = 0
  let refuse = true
  let starved = false
  const queue = new WriteBackQueue({
    maxQueue: 100,
    maxBytes: 1 << 20,
    maxDelay: 50,
    send: async (batch) => {
      await Promise.resolve() // refused without waiting: in a microtask, as opossum does
      sends++
      if (sends > 1000) starved = true // the old loop: stop it so the test can fail instead of hang
      if (refuse && !starved) throw new Error('Breaker is half-open')
      batch.clear()
    },
    dropped: () => undefined,
    lostTombstone: () => undefined,
    ready: () => !starved,
  })
  const started = performance.now()
  queue.enqueue('k', write(1))
  // Judged by the time three sends took, not by the sends counted in a fixed time: a loaded
  // machine ran one timer in 300 ms.
  await eventually(() => sends >= 3 || starved, 'two retries', 10_000)
  const took = performance.now() - started
  assert.equal(starved, false, 'sent again and again without yielding')
  // Each retry maxDelay after the refusal before it (less a millisecond a timer may seem short).
  assert.ok(took >= 2 * 49, `three sends in ${took.toFixed(1)} ms: a retry sent at once`)
  assert.equal(queue.size, 1, 'the refused write is still queued')
  refuse = false
  await eventually(() => queue.size === 0, 'sent once Redis takes it', 10_000)
  assert.equal(await queue.flush(), true)
  queue.stop()
})

test('flush() while a refused batch waits for its retry resolves once it is sent; after 3 refusals in a row it stops waiting', async () => {
  let refusals = 2
  let sends = 0
  const queue = new WriteBackQueue({
    maxQueue: 100,
    maxBytes: 1 << 20,
    maxDelay: 20,
    send: async (batch) => {
      await Promise.resolve()
      sends++
      if (refusals-- > 0) throw new Error('READONLY')
      batch.clear()
    },
    dropped: () => undefined,
    lostTombstone: () => undefined,
    ready: () => true,
  })
  queue.enqueue('a', write(1))
  queue.enqueue('b', write(2))
  assert.equal(await queue.flush(), true)
  assert.deepEqual([queue.size, sends], [0, 3])

  refusals = Infinity // a Redis that answers reads but refuses every write: the breaker stays closed
  queue.enqueue('c', write(3))
  assert.equal(await queue.flush(), false, 'not sent: the caller stops waiting')
  assert.deepEqual([queue.size, sends], [1, 6], 'after 3 refusals in a row; the write stays queued')
  queue.stop()
})

test('the queue is bounded in bytes as well as in writes: past maxBytes the oldest go (counted), the newest always stays', () => {
  let dropped = 0
  const queue = new WriteBackQueue({
    maxQueue: 100,
    maxBytes: 250_000,
    maxDelay: 3_600_000,
    send: () => Promise.resolve(),
    dropped: (n) => (dropped += n),
    lostTombstone: () => undefined,
    ready: () => false,
  })
  const big = (createdAt: number): QueuedWrite => ({ bytes: Buffer.alloc(100_000), createdAt, expiresAt: 0, grace: 0 })
  queue.enqueue('a', big(1))
  queue.enqueue('b', big(2))
  assert.equal(queue.size, 2)
  queue.enqueue('c', big(3))
  assert.deepEqual([queue.size, dropped, queue.queuedAt('a')], [2, 1, undefined], 'a, the oldest, dropped')
  queue.enqueue('b', write(4)) // b replaced by a small write: its 100,000 bytes are no longer held
  queue.enqueue('d', big(5))
  assert.deepEqual([queue.size, dropped], [3, 1], 'c + b (small) + d fit')
  queue.forget('c')
  queue.enqueue('e', big(6))
  assert.deepEqual([queue.size, dropped], [3, 1], 'forget() gave back its bytes')
  queue.enqueue('huge', { bytes: Buffer.alloc(400_000), createdAt: 7, expiresAt: 0, grace: 0 })
  assert.deepEqual([queue.size, dropped, queue.queuedAt('huge')], [1, 4, 7], 'one write larger than the bound: kept alone')
  queue.stop()
})

test('past the bound the oldest set goes first; a tombstone only when nothing else is left, and then a clear of Redis up to it is owed', () => {
  let dropped = 0
  const owed: number[] = []
  const queue = new WriteBackQueue({
    maxQueue: 3,
    maxBytes: 1 << 20,
    maxDelay: 3_600_000,
    send: () => Promise.resolve(),
    dropped: (n) => (dropped += n),
    lostTombstone: (at) => owed.push(at),
    ready: () => false,
  })
  const tombstone = (createdAt: number): QueuedWrite => ({ bytes: undefined, createdAt, expiresAt: 0, grace: 0 })
  queue.enqueue('t1', tombstone(1))
  queue.enqueue('s2', write(2))
  queue.enqueue('t3', tombstone(3))
  queue.enqueue('s4', write(4))
  assert.deepEqual(
    [queue.size, dropped, queue.queuedAt('s2'), queue.queuedAt('t1')],
    [3, 1, undefined, 1],
    's2, the oldest set, went; t1 stayed',
  )
  queue.enqueue('t5', tombstone(5))
  assert.deepEqual([queue.size, dropped, queue.queuedAt('s4')], [3, 2, undefined], 's4, the last set, went')
  assert.deepEqual(owed, [], 'no tombstone let go yet')
  queue.enqueue('t6', tombstone(6))
  assert.deepEqual([queue.size, dropped, queue.queuedAt('t1')], [3, 3, undefined], 'only tombstones left: the oldest went')
  assert.deepEqual(owed, [1], 'and a clear of Redis up to its time is owed')
  queue.stop()
})

test('a write past the bound of a queue led by tombstones finds the oldest set without a pass over them (a burst stays linear)', () => {
  // Counted as the steps of every Map and Set iterator, not timed: before, each write past the
  // bound walked the leading tombstones (10,000 of them: 2.8 s of the main thread for 10,000
  // writes).
  const n = 2000
  let dropped = 0
  const queue = new WriteBackQueue({
    maxQueue: n,
    maxBytes: 1 << 30,
    maxDelay: 3_600_000,
    send: () => Promise.resolve(),
    dropped: (count) => (dropped += count),
    lostTombstone: () => undefined,
    ready: () => false,
  })
  for (let i = 0; i < n; i++) queue.enqueue(`t${i}`, { bytes: undefined, createdAt: i + 1, expiresAt: 0, grace: 0 })
  const iterators = [Object.getPrototypeOf(new Map().entries()), Object.getPrototypeOf(new Set().values())] as {
    next: (this: unknown) => unknown
  }[]
  const originals = iterators.map((proto) => proto.next)
  let steps = 0
  iterators.forEach((proto, i) => {
    proto.next = function (this: unknown) {
      steps++
      return originals[i]!.call(this)
    }
  })
  try {
    for (let i = 0; i < n; i++) queue.enqueue(`s${i}`, write(n + i + 1))
  } finally {
    iterators.forEach((proto, i) => (proto.next = originals[i]!))
  }
  // The set is the oldest set there is: it goes, the tombstones stay (as the test above).
  assert.deepEqual([queue.size, dropped, queue.queuedAt('t0'), queue.queuedAt(`s${n - 1}`)], [n, n, 1, undefined], 'each set went')
  assert.ok(steps < 10 * n, `${steps} iterator steps for ${n} writes: a pass over the tombstones per write`)
  queue.stop()
})
