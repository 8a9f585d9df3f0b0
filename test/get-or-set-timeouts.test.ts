/**
 * getOrSet's `timeout` (soft, with a value within grace) and `hardTimeout`: the caller is
 * answered (the stale value, or ERR_TIMEOUT) while a slow loader goes on in the background and
 * stores its value when it comes; later callers wait for that loader instead of calling theirs.
 * Order-based: the loaders resolve when the test releases them, so a caller that is answered
 * at all before the release was answered by a timeout; a missing feature hangs, and `answered`
 * turns that into a failure after 5 s.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { Larder, LarderError } from '../src/index.ts'
import { heldLoader, tempDir } from './helpers.ts'

/** `work`, or a failure if it has not settled within 5 s (the loader is still held). */
async function answered<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('not answered while the loader was held: no timeout applied')), 5_000)
  })
  try {
    return await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

/** A cache holding `key` = 'old', expired (within a grace of an hour). */
async function withStale(key: string, memory = false): Promise<Larder> {
  const cache = await Larder.open({ dir: tempDir(), memory })
  await cache.getOrSet(key, () => 'old', { ttl: 30, grace: '1h' })
  await delay(60)
  assert.equal(await cache.get(key), undefined, 'expired')
  return cache
}

async function settledStore(cache: Larder, key: string, expected: unknown): Promise<void> {
  for (let i = 0; i < 200 && (await cache.get(key)) !== expected; i++) await delay(10)
  assert.equal(await cache.get(key), expected)
}

describe('getOrSet timeouts', () => {
  for (const memory of [false, true]) {
    it(`timeout: a slow loader is answered by the stale value, and its value is stored when it comes${memory ? ' (memory tier)' : ''}`, async () => {
      const cache = await withStale('k', memory)
      const held = heldLoader('new')
      const options = { ttl: '1h', grace: '1h', timeout: 20 }
      assert.equal(await answered(cache.getOrSet('k', held.loader, options)), 'old')
      // Another caller while that loader runs: the stale value again, and no second loader.
      const second = heldLoader('second')
      assert.equal(await answered(cache.getOrSet('k', second.loader, options)), 'old')
      assert.equal(held.calls(), 1)
      assert.equal(second.calls(), 0, 'the background load is waited for, not loaded again')
      held.release()
      await settledStore(cache, 'k', 'new')
      assert.equal(await cache.getOrSet('k', second.loader, options), 'new')
      assert.equal(second.calls(), 0)
      await cache.close()
    })
  }

  it('timeout without a stale value: the call waits for the loader', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    const held = heldLoader('v')
    const call = cache.getOrSet('k', held.loader, { timeout: 10, grace: '1h' })
    await delay(100)
    held.release()
    assert.equal(await call, 'v')
    await cache.close()
  })

  it('hardTimeout: ERR_TIMEOUT, the value stored when it comes, and a later caller waits for that loader', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    const held = heldLoader({ rows: 3 })
    await assert.rejects(answered(cache.getOrSet('k', held.loader, { hardTimeout: 20 })), (e: LarderError) => {
      assert.ok(e instanceof LarderError)
      assert.equal(e.code, 'ERR_TIMEOUT')
      assert.equal(e.field, 'hardTimeout')
      assert.match(e.message, /hardTimeout \(20 ms\)/)
      return true
    })
    const other = heldLoader({ rows: 0 })
    const waiting = cache.getOrSet('k', other.loader)
    await delay(50)
    held.release()
    assert.deepEqual(await waiting, { rows: 3 }, "the first caller's loader answered the second")
    assert.equal(other.calls(), 0)
    assert.deepEqual(await cache.get('k'), { rows: 3 })
    await cache.close()
  })

  it('hardTimeout with a value within grace: that value, as for a failing loader', async () => {
    const cache = await withStale('k')
    const held = heldLoader('new')
    assert.equal(await answered(cache.getOrSet('k', held.loader, { grace: '1h', hardTimeout: 20 })), 'old')
    held.release()
    await settledStore(cache, 'k', 'new')
    await cache.close()
  })

  it('a change of the key while the loader runs in the background: it stores nothing', async () => {
    const cache = await withStale('k')
    const held = heldLoader('late')
    assert.equal(await answered(cache.getOrSet('k', held.loader, { grace: '1h', timeout: 0 })), 'old')
    await cache.set('k', 'set meanwhile')
    held.release()
    await delay(100)
    assert.equal(await cache.get('k'), 'set meanwhile')
    await cache.close()
  })

  it('a loader failing in the background is an error event; the stale value stays', async () => {
    const cache = await withStale('k')
    const errors: Error[] = []
    cache.on('error', (error) => errors.push(error))
    const held = heldLoader('never')
    assert.equal(await answered(cache.getOrSet('k', held.loader, { grace: '1h', timeout: 0 })), 'old')
    const heard = once(cache, 'error')
    held.release(new Error('database down'))
    await heard
    assert.equal(errors[0]?.message, 'database down')
    assert.equal(await cache.getOrSet('k', () => Promise.reject(new Error('still down')), { grace: '1h' }), 'old')
    await cache.close()
  })

  it('close() waits for a background loader and stores nothing after it', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const held = heldLoader('late')
    await assert.rejects(answered(cache.getOrSet('k', held.loader, { hardTimeout: 10 })), { code: 'ERR_TIMEOUT' })
    let closed = false
    const closing = cache.close().then(() => (closed = true))
    await delay(50)
    assert.equal(closed, false, 'close() waits for the loader')
    held.release()
    await closing
    const again = await Larder.open({ dir })
    assert.equal(await again.get('k'), undefined)
    await again.close()
  })

  it('bad timeouts are refused, naming the field', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    const cases: [Record<string, unknown>, string][] = [
      [{ timeout: -1 }, 'timeout'],
      [{ timeout: 'soon' }, 'timeout'],
      [{ timeout: null }, 'timeout'],
      [{ hardTimeout: 0 }, 'hardTimeout'],
      [{ hardTimeout: '30d' }, 'hardTimeout'],
    ]
    for (const [options, field] of cases) {
      let called = false
      await assert.rejects(
        cache.getOrSet('k', () => (called = true), options),
        (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.field === field && e.message.includes(field),
        JSON.stringify(options),
      )
      assert.equal(called, false)
    }
    assert.equal(await cache.get('k'), undefined)
    await cache.close()
  })
})

it('close() waits for a background load whose loader never settles once (5 s), not twice', async () => {
  const cache = await Larder.open({ dir: tempDir(), maintenance: false })
  await assert.rejects(
    cache.getOrSet('k', () => new Promise<never>(() => {}), { hardTimeout: 50 }),
    (e: LarderError) => e.code === 'ERR_TIMEOUT',
  )
  const started = performance.now()
  await cache.close()
  const took = performance.now() - started
  // One wait is 5 s; the second, only for streams it aborted, had doubled it (10 s).
  assert.ok(took >= 4_900 && took < 8_000, `close() took ${Math.round(took)} ms`)
})
