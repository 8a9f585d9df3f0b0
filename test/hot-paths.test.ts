// Issue #14: the hot paths made cheaper must keep what they guarded. Speed itself is measured
// in bench/, never asserted here.
import assert from 'node:assert/strict'
import { createHook } from 'node:async_hooks'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { DiskBreaker } from '../src/resilience/disk-breaker.ts'
import { calledWithoutThrowing, listFiles, tempDir } from './helpers.ts'

const eio = (): never => {
  throw Object.assign(new Error('EIO: injected'), { code: 'EIO' })
}

/** Failing operations a breaker takes to open after `successes` successful ones; `async`
 *  runs every operation as an async function; `atOnce` through runAtOnce (a synchronous
 *  operation's value answered at once, not as a promise). */
async function failuresToOpen(timeout: number, successes: number, async: boolean, atOnce = false): Promise<number> {
  const states: string[] = []
  const breaker = new DiskBreaker(
    { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeout: 60_000, rollingCountTimeout: 60_000, timeout },
    (s) => states.push(s),
  )
  const run = <T>(op: () => T | Promise<T>): Promise<T> => (atOnce ? Promise.resolve(breaker.runAtOnce(op)) : breaker.run(op))
  try {
    // eslint-disable-next-line @typescript-eslint/require-await -- an async function on purpose: the breaker's promise path is what this checks
    for (let i = 0; i < successes; i++) assert.equal(await run(async ? async () => i : () => i), i)
    for (let failures = 1; failures <= 100; failures++) {
      // eslint-disable-next-line @typescript-eslint/require-await -- an async function on purpose: the breaker's promise path is what this checks
      await assert.rejects(run(async ? async () => eio() : eio), /EIO: injected/)
      if (breaker.state === 'open') {
        assert.deepEqual(states, ['open'])
        return failures
      }
    }
    return Infinity
  } finally {
    breaker.shutdown()
  }
}

describe('hot paths (issue #14)', () => {
  test("the closed breaker's fast path opens after exactly as many failures as opossum's fire() path", async () => {
    // With a timeout every call goes through opossum's fire(): the reference. Without one, the
    // fast path runs closed-state operations itself and must feed opossum the same counts:
    // 6 successes, then failures: opens when failures / fires > 50 % with fires >= 4, at the
    // 7th failure. Successes not counted would open it at the 4th.
    for (const async of [false, true]) {
      const reference = await failuresToOpen(60_000, 6, async)
      assert.equal(reference, 7, `opossum's own count (${async ? 'async' : 'sync'} operations)`)
      assert.equal(await failuresToOpen(0, 6, async), reference, `fast path (${async ? 'async' : 'sync'} operations)`)
      assert.equal(await failuresToOpen(0, 6, async, true), reference, `answered at once (${async ? 'async' : 'sync'} operations)`)
    }
  })

  test("a file-tier hit (no Redis) makes one promise, get()'s own; a 'hit' listener that throws still rejects", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-hit-promises') })
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, { i })
    for (let i = 0; i < 20; i++) assert.deepEqual(await cache.get(`k${i}`), { i })
    let made = 0
    const hook = createHook({
      init: (_id, type) => {
        if (type === 'PROMISE') made++
      },
    })
    hook.enable()
    let answer: Promise<unknown>
    let madeByTheCall: number
    try {
      answer = cache.get('k3')
      madeByTheCall = made
    } finally {
      hook.disable()
    }
    assert.deepEqual(await answer, { i: 3 })
    assert.equal(madeByTheCall, 1, 'one promise: no async frame between get() and the file tier')
    cache.on('hit', () => {
      throw new Error('a listener failed')
    })
    await assert.rejects(
      calledWithoutThrowing(() => cache.get('k4'), 'get()'),
      /a listener failed/,
    )
    await cache.close()
  })

  test("the fast path: a caller's error is no disk failure, an open breaker refuses, a value comes back", async () => {
    const breaker = new DiskBreaker(
      { volumeThreshold: 1, errorThresholdPercentage: 50, resetTimeout: 60_000, rollingCountTimeout: 60_000, timeout: 0 },
      () => {},
    )
    try {
      await assert.rejects(
        breaker.run(() => {
          throw new RangeError('not the disk')
        }),
        RangeError,
      )
      assert.equal(breaker.state, 'closed')
      assert.equal(breaker.snapshot().failures, 0)
      assert.equal(await breaker.run(() => 'sync value'), 'sync value')
      // eslint-disable-next-line @typescript-eslint/require-await -- an async function on purpose: the breaker's promise path is what this checks
      assert.equal(await breaker.run(async () => 'async value'), 'async value')
      // 3 successes so far (the RangeError counts as one): open at the 4th failure (4 of 7 > 50 %).
      for (let failure = 1; failure <= 4; failure++) {
        assert.equal(breaker.state, 'closed', `before failure ${failure}`)
        const failing = breaker.run(eio)
        // Counted at once, as opossum counts a synchronous throw: bookkeeping relies on it.
        assert.equal(breaker.snapshot().failures, failure, 'counted before the caller looks again')
        await assert.rejects(failing, /EIO/)
      }
      assert.equal(breaker.state, 'open')
      let ran = false
      await assert.rejects(
        breaker.run(() => (ran = true)),
        (error: { code?: string }) => error.code === 'EOPENBREAKER',
      )
      assert.equal(ran, false, 'an open breaker never runs the operation')
      assert.equal(breaker.snapshot().rejected, 1)
    } finally {
      breaker.shutdown()
    }
  })

  test('sets in flight together (written through the thread pool) land whole, last call wins per key, no temp left', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const big = 'x'.repeat(70 * 1024) // over the synchronous limit, with small ones beside it
    await Promise.all(Array.from({ length: 48 }, (_, i) => cache.set(`k${i % 32}`, i % 5 === 0 ? { i, big } : { i })))
    const stats = await cache.stats()
    assert.equal(stats.dropped, 0)
    assert.equal(stats.errors, 0)
    await cache.close()
    assert.deepEqual(
      listFiles(dir).filter((f) => f.endsWith('.tmp')),
      [],
    )
    const reader = await Larder.open({ dir })
    for (let k = 0; k < 32; k++) {
      const last = k + 32 < 48 ? k + 32 : k // the later call of the key, when there were two
      assert.deepEqual(await reader.get(`k${k}`), last % 5 === 0 ? { i: last, big } : { i: last })
    }
    await reader.close()
  })
})
