/**
 * getOrSet's `refreshAhead`: a hit past that share of its entry's lifetime is served and starts
 * one background refresh (once per key, and with Redis once across processes); a failing one
 * keeps the old value; one superseded by a change of the key stores nothing. Order-based: the
 * entries live a minute and are refreshed past 0.1 % of it (60 ms), so no assertion depends on
 * how fast this machine is; the tests wait for the `refresh` event.
 */
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { after, describe, it } from 'node:test'
import { Larder, LarderError, type LarderOptions } from '../src/index.ts'
import type { RefreshReport } from '../src/facade/refresh-ahead.ts'
import { startChild, type Child } from './children/harness.ts'
import { heldLoader, tempDir } from './helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './redis/server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

const TTL = 60_000
const AHEAD = 0.001 // past 60 ms
/** Longer than AHEAD of TTL: a wait for the mark to pass, not a margin any assertion needs. */
const PAST_THE_MARK = 100

/** A loader whose backend is down: counts its calls, always rejects. */
function failingLoader(): { failing: () => Promise<unknown>; calls: () => number } {
  let calls = 0
  return {
    failing: () => {
      calls++
      return Promise.reject(new Error('backend down'))
    },
    calls: () => calls,
  }
}

/** The next `refresh` event (not events.once, which rejects on the 'error' a failed refresh emits). */
const refreshed = (cache: Larder): Promise<RefreshReport> => new Promise((resolve) => cache.once('refresh', resolve))
const options = { ttl: TTL, refreshAhead: AHEAD }

describe('getOrSet refreshAhead', () => {
  for (const [name, open] of [
    ['the memory tier', { memory: true }],
    ['the file tier', { memory: false }],
  ] as [string, LarderOptions][]) {
    it(`a hit from ${name} past the mark is served at once, and refreshed once in the background however many callers ask`, async () => {
      const cache = await Larder.open({ dir: tempDir(), maintenance: false, ...open })
      await cache.getOrSet('k', () => 'old', options)
      await delay(PAST_THE_MARK)
      const held = heldLoader('new')
      const done = refreshed(cache)
      const served = await Promise.all(Array.from({ length: 10 }, () => cache.getOrSet('k', held.loader, options)))
      assert.deepEqual(served, Array(10).fill('old'), 'every caller is served the old value without waiting')
      assert.equal(held.calls(), 1, 'one refresh')
      assert.equal(await cache.get('k'), 'old', 'until it ends')
      held.release()
      assert.deepEqual(await done, { key: 'k', outcome: 'refreshed' })
      assert.equal(await cache.get('k'), 'new')
      const info = await cache.info('k')
      assert.ok(info !== undefined && info.expiresAt! - info.createdAt === TTL, 'stored with the call’s ttl')
      const stats = await cache.stats()
      assert.deepEqual(stats.refreshAhead, { started: 1, refreshed: 1, failed: 0, superseded: 0, elsewhere: 0 })
      await cache.close()
    })
  }

  it('before the mark, and for an entry without expiry, nothing is refreshed', async () => {
    const cache = await Larder.open({ dir: tempDir(), maintenance: false, memory: true })
    await cache.getOrSet('young', () => 'v', { ttl: TTL, refreshAhead: 0.99 })
    await cache.getOrSet('forever', () => 'v', { ttl: 0, refreshAhead: AHEAD })
    await delay(PAST_THE_MARK)
    let calls = 0
    const loader = (): string => String(++calls)
    assert.equal(await cache.getOrSet('young', loader, { ttl: TTL, refreshAhead: 0.99 }), 'v')
    assert.equal(await cache.getOrSet('forever', loader, { ttl: 0, refreshAhead: AHEAD }), 'v')
    assert.equal(calls, 0)
    assert.equal((await cache.stats()).refreshAhead.started, 0)
    await cache.close()
  })

  it('a failing refresh keeps the old value, is counted and heard as an error, and never reaches a caller', async () => {
    const cache = await Larder.open({ dir: tempDir(), maintenance: false, memory: true })
    const errors: Error[] = []
    cache.on('error', (error) => errors.push(error))
    await cache.getOrSet('k', () => 'old', options)
    await delay(PAST_THE_MARK)
    const held = heldLoader('never')
    const done = refreshed(cache)
    assert.equal(await cache.getOrSet('k', held.loader, options), 'old')
    held.release(new Error('backend down'))
    assert.deepEqual(await done, { key: 'k', outcome: 'failed' })
    assert.equal(errors.length, 1)
    assert.match(errors[0]!.message, /backend down/)
    assert.equal(await cache.get('k'), 'old', 'the old value stays')
    const fresh = await Larder.open({ dir: cache.dir as string, maintenance: false })
    assert.equal(await fresh.get('k'), 'old', 'on disk too')
    await fresh.close()
    assert.equal((await cache.stats()).refreshAhead.failed, 1)
    await cache.close()
  })

  it("a 'refresh' listener that throws is heard as an error, not lost, and the refresh stands", async () => {
    const cache = await Larder.open({ dir: tempDir(), maintenance: false, memory: true })
    const errors: Error[] = []
    cache.on('error', (error) => errors.push(error))
    const done = refreshed(cache)
    cache.on('refresh', () => {
      throw new Error('a listener failed')
    })
    await cache.getOrSet('k', () => 'old', options)
    await delay(PAST_THE_MARK)
    assert.equal(await cache.getOrSet('k', () => 'new', options), 'old')
    assert.deepEqual(await done, { key: 'k', outcome: 'refreshed' })
    assert.deepEqual(
      errors.map((error) => error.message),
      ['a listener failed'],
    )
    assert.equal(await cache.get('k'), 'new')
    await cache.close()
  })

  it('after a failed refresh, hits do not retry at once: the next waits an eighth of the refresh window; a new entry starts afresh', async () => {
    const cache = await Larder.open({ dir: tempDir(), maintenance: false, memory: true })
    cache.on('error', () => {})
    const { failing, calls } = failingLoader()
    await cache.getOrSet('k', () => 'old', options)
    await delay(PAST_THE_MARK)
    let done = refreshed(cache)
    assert.equal(await cache.getOrSet('k', failing, options), 'old')
    assert.deepEqual(await done, { key: 'k', outcome: 'failed' })
    // The window is ~60 s, so the next refresh of this entry may start ~7.5 s after the failure.
    for (let i = 0; i < 20; i++) assert.equal(await cache.getOrSet('k', failing, options), 'old')
    assert.equal(calls(), 1, 'twenty hits right after a failure started no refresh')
    assert.equal((await cache.stats()).refreshAhead.started, 1)
    // A new entry under the key is refreshed past its own mark, whatever the old one's failure.
    await cache.set('k', 'newer', { ttl: TTL })
    await delay(PAST_THE_MARK)
    done = refreshed(cache)
    assert.equal(await cache.getOrSet('k', failing, options), 'newer')
    assert.deepEqual(await done, { key: 'k', outcome: 'failed' })
    assert.equal(calls(), 2)
    await cache.close()
  })

  it('a failing refresh is retried once its wait has passed, while the old value lives', async () => {
    // ttl 4 s, marked at half: the window is 2 s, so a failed refresh waits 250 ms.
    const short = { ttl: 4000, refreshAhead: 0.5 }
    const cache = await Larder.open({ dir: tempDir(), maintenance: false, memory: true })
    cache.on('error', () => {})
    const { failing, calls } = failingLoader()
    await cache.getOrSet('k', () => 'old', short)
    await delay(2050)
    let done = refreshed(cache)
    assert.equal(await cache.getOrSet('k', failing, short), 'old')
    await done
    assert.equal(await cache.getOrSet('k', failing, short), 'old')
    assert.equal(calls(), 1, 'held back')
    await delay(300)
    done = refreshed(cache)
    const served = await cache.getOrSet('k', failing, short)
    if (served === undefined) return // this machine took over 4 s: the entry expired, nothing to judge
    assert.equal(served, 'old')
    assert.deepEqual(await done, { key: 'k', outcome: 'failed' })
    assert.equal(calls(), 2, 'retried after its wait')
    await cache.close()
  })

  for (const [change, act, expected] of [
    ['a set', (c: Larder) => c.set('k', 'set meanwhile', { ttl: TTL }), 'set meanwhile'],
    ['a delete', (c: Larder) => c.delete('k'), undefined],
    ['an invalidation of its tags', (c: Larder) => c.invalidateTags(['t']), undefined],
  ] as [string, (c: Larder) => Promise<unknown>, unknown][]) {
    it(`a refresh superseded by ${change} of the key made while it loads stores nothing`, async () => {
      const cache = await Larder.open({ dir: tempDir(), maintenance: false, memory: true })
      const withTags = { ...options, tags: ['t'] }
      await cache.getOrSet('k', () => 'old', withTags)
      await delay(PAST_THE_MARK)
      const held = heldLoader('refreshed')
      const done = refreshed(cache)
      assert.equal(await cache.getOrSet('k', held.loader, withTags), 'old')
      await act(cache)
      held.release()
      assert.deepEqual(await done, { key: 'k', outcome: 'superseded' })
      assert.equal(await cache.get('k'), expected)
      await cache.close()
    })
  }

  it('refreshAhead is checked: a number in (0, 1)', async () => {
    const cache = await Larder.open({ dir: tempDir(), maintenance: false })
    for (const bad of [0, 1, -0.5, 1.5, '0.8', Number.NaN]) {
      await assert.rejects(
        cache.getOrSet('k', () => 'v', { ttl: TTL, refreshAhead: bad as number }),
        (error: unknown) => error instanceof LarderError && error.code === 'ERR_INVALID_OPTION' && error.field === 'refreshAhead',
        String(bad),
      )
    }
    assert.equal(await cache.get('k'), undefined, 'nothing was written')
    await cache.close()
  })

  describe('with Redis', { skip }, () => {
    let n = 0
    const prefix = (): string => `ra${process.pid}-${n++}:`
    const children: Child[] = []
    after(async () => {
      for (const child of children) await child.shutdown()
    })

    it('a hit from Redis (no file or memory tier) is refreshed in the background', async () => {
      const cache = await Larder.open({ dir: false, memory: false, redis: { url: server.url, prefix: prefix() } })
      await cache.getOrSet('k', () => 'old', options)
      await delay(PAST_THE_MARK)
      const held = heldLoader('new')
      const done = refreshed(cache)
      assert.equal(await cache.getOrSet('k', held.loader, options), 'old')
      held.release()
      assert.deepEqual(await done, { key: 'k', outcome: 'refreshed' })
      assert.equal(await cache.get('k'), 'new')
      await cache.close()
    })

    it('two processes hitting the same entry past the mark refresh it once between them', async () => {
      const shared = { url: server.url, prefix: prefix() }
      const [a, b] = await Promise.all([startChild('refresh-peer.ts'), startChild('refresh-peer.ts')])
      children.push(a, b)
      await a.call('open', { options: { dir: tempDir(), memory: true, maintenance: false, redis: shared } })
      await b.call('open', { options: { dir: tempDir(), memory: true, maintenance: false, redis: shared } })
      await a.call('set', { key: 'k', value: 'old', options: { ttl: TTL } })
      await delay(PAST_THE_MARK)
      const ask = { key: 'k', value: 'new', ttl: TTL, refreshAhead: AHEAD }
      // Each call returns once its refresh has started (both hit the old entry).
      const [fromA, fromB] = await Promise.all([
        a.call<{ value: unknown }>('refreshingGet', ask),
        b.call<{ value: unknown }>('refreshingGet', ask),
      ])
      assert.equal(fromA.value, 'old')
      assert.equal(fromB.value, 'old')
      // One of them holds the lock and loads; release it.
      const loader = await Promise.race([a.next('loading').then(() => a), b.next('loading').then(() => b)])
      await loader.call('release')
      const [endA, endB] = await Promise.all([
        a.call<{ outcome: string; loads: number }>('refreshed'),
        b.call<{ outcome: string; loads: number }>('refreshed'),
      ])
      assert.deepEqual([endA.outcome, endB.outcome].sort(), ['elsewhere', 'refreshed'], 'one refreshed, the other saw it done')
      assert.equal(endA.loads + endB.loads, 1, 'one loader call across both processes')
      assert.deepEqual(await a.call('get', { key: 'k' }), { value: 'new' })
      await a.call('close')
      await b.call('close')
    })
  })
})
