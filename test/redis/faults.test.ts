/**
 * Redis failing under traffic (killed, paused with CLIENT PAUSE, asleep with DEBUG SLEEP) and
 * the outage rule: no call throws into the host (ERR_UNAVAILABLE with failOpen: false), no call
 * outlives the outage's start by more than commandTimeout (asserted by order: each settles
 * while Redis is still unreachable), the Redis breaker opens and closes, bus messages queued
 * meanwhile are published on recovery, and an instance whose bus was down serves no local copy
 * another instance replaced meanwhile. No wall-clock margins: every assertion is on order and
 * state.
 */
import { spawn } from 'node:child_process'
import { after, afterEach, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { startChild, type Child } from '../children/harness.ts'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis(['--enable-debug-command', 'yes']) : (undefined as unknown as RedisServer)

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))

type Figures = {
  dropped: number
  errors: number
  tiers: { redis: { errors: number; dropped: number; queued: number; busQueued: number; breaker: { state: string } } }
}

let n = 0
const fresh = (): string => `f${process.pid}-${n++}:`
/** Fast to give up and to try again, so a test need not wait long for either. */
const FAST = { commandTimeout: '100ms', breaker: { resetTimeout: '200ms', volumeThreshold: 2 } }
/** Every cache a test opened: closed after it even when it failed half-way (an open Redis
 *  connection would keep this file's process alive, and the run waiting for it). */
const opened: Larder[] = []
const open = async (prefix: string, more: Partial<LarderOptions> = {}, redis: object = {}): Promise<Larder> => {
  const cache = await Larder.open({
    dir: tempDir(),
    memory: true,
    maintenance: false,
    redis: { url: server.url, prefix, ...FAST, ...redis },
    ...more,
  })
  opened.push(cache)
  return cache
}

/** Plain ioredis clients of the tests, disconnected after each test even when it failed: one
 *  left reconnecting to a server the file has stopped keeps the test process, and so the whole
 *  suite, from ending. */
const clients: Redis[] = []
function rawClient(): Redis {
  const client = new Redis(server.url)
  clients.push(client)
  return client
}

/** Runs a command with redis-cli that does not answer until Redis does: `done` settles then. */
function blockingCli(...args: string[]): { done: Promise<void>; finished: () => boolean } {
  let over = false
  const proc = spawn('redis-cli', ['-p', String(server.port), ...args], { stdio: 'ignore' })
  const done = new Promise<void>((resolve) =>
    proc.once('exit', () => {
      over = true
      resolve()
    }),
  )
  return { done, finished: () => over }
}

/** A Redis that answers again: restarted if it was killed (persistence is off: it comes back
 *  empty). */
async function restart(): Promise<void> {
  await server.kill()
  await server.start()
}

/** Calls until the Redis breaker of `cache` has closed again (a half-open trial needs a call). */
async function untilClosed(cache: Larder): Promise<boolean> {
  return eventually(async () => {
    await cache.get('probe')
    return ((await cache.stats()) as unknown as Figures).tiers.redis.breaker.state === 'closed'
  }, 20_000)
}

describe('Redis faults and the outage rule', { skip }, () => {
  let disrupted = false
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((cache) => cache.close().catch(() => {})))
    for (const client of clients.splice(0)) client.disconnect()
    const proc = server.proc!
    // A test that failed while Redis was down, paused or asleep leaves a working one behind.
    if (disrupted || proc.exitCode !== null || proc.signalCode !== null) await restart()
    disrupted = false
    assert.deepEqual(unhandled, [], 'no unhandled rejection')
  })

  describe('the outage rule (another process)', () => {
    let b: Child
    const prefix = fresh()
    const onB = async (key: string): Promise<unknown> => (await b.call<{ value: unknown }>('get', { key })).value
    before(async () => {
      b = await startChild('redis-peer.ts')
      await b.call('open', { options: { dir: tempDir(), memory: true, maintenance: false, redis: { url: server.url, prefix, ...FAST } } })
    })
    after(() => b?.shutdown())

    /** B holds `key` = `value` in memory and in its directory. */
    async function heldByB(a: Larder, key: string, value: unknown): Promise<void> {
      // Either connection may still be coming up (opened at most a second ago, under load): a
      // write before it is a counted drop for Redis, a read a miss; not yet what this sets up.
      assert.ok(
        await eventually(async () => {
          await a.set(key, value)
          return (await onB(key)) === value
        }),
        `B reads ${key}`,
      )
      assert.equal(await onB(key), value)
    }

    /** Waits until B's bus is back (as B sees it): `marker`, which B holds as 'old', reads as
     *  what `a` wrote after the outage only once B has heard of it or re-validated (before,
     *  B's memory tier answers 'old'). */
    async function busBackOnB(a: Larder, marker: string): Promise<void> {
      assert.ok(
        await eventually(async () => {
          await a.set(marker, 'new') // again until A's write reaches Redis (a write while A reconnects is a drop)
          return (await onB(marker)) === 'new'
        }, 20_000),
        'B reconnected',
      )
    }

    test('a subscriber cut off while another instance overwrote and deleted (with no message) serves neither old copy', async () => {
      const a = await open(prefix)
      const silent = await open(prefix, { bus: false }) // changes Redis, tells nobody: what B misses
      // The case needs silent's writes to land while B has no subscription. Under load B can be
      // subscribed again before they do (its reconnect waits 50 ms), and a write nobody announced
      // after B's reconnect is one no instance could learn of. Redis says who is subscribed (asked
      // on a connection already open, not by starting redis-cli, which can take longer than the
      // reconnect): a channel of the prefix listed after the writes means the round proved
      // nothing, and it is played again with keys of its own (a subscription only comes back, so
      // none listed after the writes means none during them).
      const admin = rawClient()
      let round = 1
      for (; ; round++) {
        await heldByB(a, `over${round}`, 'v1')
        await heldByB(a, `gone${round}`, 'v1')
        await heldByB(a, `marker${round}`, 'old')
        await admin.client('KILL', 'TYPE', 'pubsub') // every bus subscription drops
        await silent.set(`over${round}`, 'v2')
        await silent.delete(`gone${round}`)
        if ((await admin.pubsub('CHANNELS', `${prefix}bus:*`)).length === 0) break
        assert.ok(round < 10, 'in 10 rounds, a bus was always subscribed again before the writes landed')
        await busBackOnB(a, `marker${round}`)
      }
      await busBackOnB(a, `marker${round}`)
      assert.equal(await onB(`over${round}`), 'v2', "the overwrite made while B's bus was down is what B serves")
      assert.equal(await onB(`gone${round}`), undefined, "the delete made while B's bus was down is honoured")
      await silent.close()
      await a.close()
    })

    test('Redis stopped, a key overwritten and another deleted on A, Redis restarted: B serves no old copy', async () => {
      const a = await open(prefix)
      await heldByB(a, 'over2', 'v1')
      await heldByB(a, 'gone2', 'v1')
      await heldByB(a, 'marker2', 'old')
      await server.kill()
      await a.set('over2', 'v2') // fail open: local here, queued for Redis with its message
      await a.delete('gone2')
      await server.start()
      assert.ok(await untilClosed(a))
      await busBackOnB(a, 'marker2')
      assert.notEqual(await onB('over2'), 'v1', 'B does not serve the value A overwrote during the outage')
      assert.equal(await onB('gone2'), undefined, 'nor the one A deleted')
      await a.close()
    })
  })

  test('Redis restarted empty: the tag stamps a running instance knows are raised there again, so an instance opened after honours them', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const before = await Larder.open({ dir, maintenance: false }) // wrote a row, then went away
    await before.set('row', 1, { tags: ['users'] })
    await before.close()
    const a = await open(prefix)
    await a.invalidateTags(['users'])
    const stamps = rawClient()
    const stamp = (): Promise<string | null> => stamps.hget(`${prefix}default:\0tags`, 'users')
    assert.notEqual(await stamp(), null)
    await stamps.set(`${prefix}sentinel`, 'kept only by persistence')
    await server.kill()
    await server.start() // no persistence: empty
    // The stamps' own key cannot show it: A may raise them again as soon as it reconnects.
    assert.equal(await stamps.exists(`${prefix}sentinel`), 0, 'Redis came back empty')
    assert.ok(await untilClosed(a))
    // Before: nothing raised them again; an instance opened now served the row invalidated earlier.
    assert.ok(await eventually(async () => (await stamp()) !== null, 10_000), "A raised its known stamp again once it read Redis's")
    const later = await open(prefix, { dir })
    assert.equal(await later.get('row'), undefined, 'the row was invalidated before Redis restarted')
  })

  test('killed mid-traffic: nothing throws, writes are counted drops, the breaker opens and closes, and the tier is used again', async () => {
    const prefix = fresh()
    const breaker: string[] = []
    const cache = await open(prefix)
    cache.on('breaker', (state: string, tier: string) => breaker.push(`${tier}:${state}`))
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, i)
    // A write Redis misses waits for it (queued): none is dropped, whenever it failed.
    const droppedBefore = ((await cache.stats()) as unknown as Figures).tiers.redis.dropped
    await server.kill()
    let writes = 0
    let metOpen = 0 // calls made after the breaker opened
    while (metOpen < 20 && writes < 1000) {
      await cache.set(`k${writes % 20}`, writes) // resolves: the local tiers have it
      assert.equal(await cache.get(`k${writes % 20}`), writes)
      assert.equal(await cache.get(`missing${writes}`), undefined)
      writes++
      if (breaker.includes('redis:open')) metOpen++
    }
    const during = (await cache.stats()) as unknown as Figures
    assert.ok(breaker.includes('redis:open'), `the Redis breaker opened (events: ${breaker.join(', ')})`)
    assert.ok(!breaker.includes('file:open'), "the file tier's breaker did not")
    assert.equal(during.tiers.redis.breaker.state, 'open')
    assert.equal(during.tiers.redis.dropped, droppedBefore, 'a write Redis missed is not a drop: it waits for Redis')
    assert.equal(during.tiers.redis.queued, Math.min(writes, 20), 'one queued write per key (the last wins)')
    assert.ok(during.tiers.redis.errors > 0)
    await server.start()
    assert.ok(await untilClosed(cache), 'the breaker closed once Redis was back')
    assert.equal(breaker.at(-1), 'redis:closed')
    // The breaker closes on its first good trial; the connection a write uses may still be
    // coming back under load, and a write then is a counted drop: what must hold is that
    // writes reach Redis again, not that the very first one does.
    const raw = rawClient()
    assert.ok(
      await eventually(async () => {
        await cache.set('after', 'yes')
        return (await raw.getBuffer(`${prefix}default:after`)) !== null
      }),
      'writes reach Redis again',
    )
    await cache.close()
  })

  test('failOpen: false: calls reject with ERR_UNAVAILABLE while Redis is down, and work again after', async () => {
    const dir = tempDir()
    const cache = await open(fresh(), { failOpen: false, dir })
    // The connection may still be coming up (open() waits a second at most; under load, and
    // just after the previous test restarted Redis): a write before it rejects. Not yet what
    // this test is about. (Seen once in CI on Node 24: the first set found the breaker open.)
    let first: unknown
    assert.ok(
      await eventually(async () => {
        try {
          await cache.set('k', 'v')
          return true
        } catch (error) {
          first = error
          return false
        }
      }),
      `the first set is stored (last error: ${String(first)}; redis: ${JSON.stringify(((await cache.stats()) as unknown as Figures).tiers.redis)})`,
    )
    await server.kill()
    await assert.rejects(cache.set('k', 'v2'), { code: 'ERR_UNAVAILABLE' })
    // Told it was not stored: the directory does not serve it either (before, the entry file
    // written beside the failed Redis write stayed, and this instance alone served v2).
    // The same for a stream (its entry was in place before Redis's older value was to go).
    await assert.rejects(cache.setStream('s', Buffer.from('streamed')), { code: 'ERR_UNAVAILABLE' })
    const plain = await Larder.open({ dir, maintenance: false })
    assert.notEqual(await plain.get('k'), 'v2')
    assert.equal(await plain.getStream('s'), undefined)
    await plain.close()
    await cache.clear({ tier: 'memory' })
    await cache.clear({ tier: 'file' }).catch(() => {})
    await assert.rejects(cache.get('k'), { code: 'ERR_UNAVAILABLE' })
    await server.start()
    assert.ok(
      await eventually(async () => {
        try {
          await cache.set('k', 'v3')
          return true
        } catch {
          return false
        }
      }, 20_000),
    )
    assert.equal(await cache.get('k'), 'v3')
    await cache.close()
  })

  for (const [fault, args] of [
    ['CLIENT PAUSE', ['CLIENT', 'PAUSE', '60000', 'ALL']],
    ['DEBUG SLEEP', ['DEBUG', 'SLEEP', '60']],
  ] as const) {
    test(`${fault}: every call settles (without throwing) while Redis is still unresponsive; failOpen: false rejects with ERR_UNAVAILABLE`, async () => {
      const prefix = fresh()
      const cache = await open(prefix)
      const strict = await open(prefix, { failOpen: false })
      await cache.set('k', 'v')
      await cache.clear({ tier: 'memory' })
      await cache.clear({ tier: 'file' })
      disrupted = true
      const blocker = blockingCli(...args)
      assert.ok(
        await eventually(async () => {
          try {
            await strict.get('never')
            return false
          } catch (error) {
            return (error as { code?: string }).code === 'ERR_UNAVAILABLE'
          }
        }, 20_000),
        'failOpen false: ERR_UNAVAILABLE',
      )
      // Redis is unresponsive now: a PING sent now is answered only when it answers again.
      const ping = blockingCli('PING')
      await assert.rejects(strict.set('s', 1), { code: 'ERR_UNAVAILABLE' })
      for (let i = 0; i < 10; i++) {
        assert.equal(await cache.get('k'), undefined, 'a read falls through to a miss')
        await cache.set(`w${i}`, i)
        assert.equal(await cache.get(`w${i}`), i)
        await cache.delete(`w${i}`)
      }
      await cache.invalidateTags(['t'])
      assert.equal(ping.finished(), false, 'every call above settled while Redis was still unresponsive')
      const stats = (await cache.stats()) as unknown as Figures
      assert.equal(stats.tiers.redis.breaker.state, 'open')
      // Waiting for Redis, not dropped (a batch out on the wire when the breaker opened is not
      // counted in `queued` until it fails and is put back).
      const { queued, dropped } = stats.tiers.redis
      assert.ok(
        dropped === 0 && queued >= 5,
        `the sets and deletes Redis missed wait for it (a delete as a tombstone): ${JSON.stringify({ queued, dropped })}`,
      )
      await restart() // ends the pause or the sleep
      await Promise.all([blocker.done, ping.done])
      assert.ok(await untilClosed(cache))
      await cache.close()
      await strict.close()
    })
  }

  test('bus messages queued while Redis slept are deduplicated and published on recovery (bentocache publishes nothing while its breaker is open)', async () => {
    const prefix = fresh()
    const cache = await open(prefix)
    const listener = rawClient()
    type Heard = { op: string; keys?: [string, number][]; tags?: string[] }
    const heard: Heard[] = []
    listener.on('message', (_channel: string, text: string) => heard.push(JSON.parse(text) as Heard))
    await listener.subscribe(`${prefix}bus:default`)
    await cache.set('k', 'v')
    assert.ok(await eventually(() => heard.some((m) => m.keys?.some(([k]) => k === 'k') === true)), 'the bus works before the outage')
    heard.length = 0
    disrupted = true
    const sleeper = blockingCli('DEBUG', 'SLEEP', '4')
    assert.ok(
      await eventually(async () => {
        await cache.get('probe')
        return ((await cache.stats()) as unknown as Figures).tiers.redis.breaker.state === 'open'
      }, 20_000),
      'the breaker opened',
    )
    for (let i = 0; i < 5; i++) await cache.set('k', `v${i}`)
    await cache.delete('k')
    await cache.invalidateTags(['t1'])
    await cache.clear({ tier: 'memory' })
    const { busQueued, queued } = ((await cache.stats()) as unknown as Figures).tiers.redis
    assert.equal(sleeper.finished(), false, 'all of that happened while Redis slept')
    assert.equal(busQueued, 2, 'one queued message per tag and per cleared tier')
    // The key's changes wait for Redis as one (the last, a tombstone), its message sent after it.
    assert.equal(queued, 1, "the key's last change waits for Redis, its message with it")
    await sleeper.done
    assert.ok(await untilClosed(cache))
    assert.ok(
      await eventually(
        () => heard.some((m) => m.op === 'keys') && heard.some((m) => m.op === 'tags') && heard.some((m) => m.op === 'clear'),
      ),
      'each was published after the recovery',
    )
    const keyMessages = heard.filter((m) => m.keys?.some(([k]) => k === 'k') === true)
    assert.equal(keyMessages.length, 1, 'the six changes of k went out as one message')
    assert.equal(((await cache.stats()) as unknown as Figures).tiers.redis.busQueued, 0)
    await cache.close()
  })
})
