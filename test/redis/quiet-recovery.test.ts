/**
 * Recovery that needs no call from the application, and waits that end on their own (found by
 * a review of the fault paths, each reproduced before it was fixed):
 * - an instance that makes no Redis call of its own (idle, or answered from memory) sends what
 *   waited for Redis once Redis is back: its breaker's half-open trial is a PING of its own;
 * - a SUBSCRIBE that times out on a connection that stays up (a server slow for a moment as
 *   the subscriber came back) is tried again, so the outage rule runs for that reconnection;
 * - a local copy served while Redis could not answer the outage rule's check is not promoted
 *   into the memory tier (which would serve it after Redis was back, unchecked);
 * - flush() against a Redis that answers reads but refuses writes (a replica: READONLY) ends;
 * - a fast-path failure that lands after the breaker left closed does not take the half-open
 *   trial (the real opossum breaker, driven directly);
 * - after its bus reconnected, reads waited for the stamps Redis holds at most twice
 *   commandTimeout, then served an entry invalidated by tag while a slow read was still merging.
 */
import { after, afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { DiskBreaker } from '../../src/resilience/disk-breaker.ts'
import { isRedisFailure } from '../../src/resilience/redis-failure.ts'
import { tempDir } from '../helpers.ts'
import { startRelay, type RedisRelay } from './proxy.ts'
import { eventually, freePort, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)
after(() => server?.kill())

type RedisFigures = { queued: number; busQueued: number; breaker: { state: string } }
const redisFigures = async (cache: Larder): Promise<RedisFigures> =>
  ((await cache.stats()) as unknown as { tiers: { redis: RedisFigures } }).tiers.redis

let n = 0
const fresh = (): string => `q${process.pid}-${n++}:`
const FAST = { commandTimeout: '100ms', breaker: { resetTimeout: '500ms', volumeThreshold: 2 } }
const opened: Larder[] = []
const clients: Redis[] = []
async function open(url: string, prefix: string, more: Partial<LarderOptions> = {}, redis: object = {}): Promise<Larder> {
  const cache = await Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { url, prefix, ...FAST, ...redis }, ...more })
  opened.push(cache)
  return cache
}
function raw(): Redis {
  const client = new Redis(server.url)
  clients.push(client)
  return client
}

/** How many connections listen on the bus of `prefix`. */
const subscribers = (prefix: string): number => Number(server.cli('PUBSUB', 'NUMSUB', `${prefix}bus:default`).split('\n')[1])

/** A on Redis, B through `relay`: B holds k = v1, then is cut off (relay down) while A
 *  overwrites k with v2, which B does not hear of. */
async function missedOverwrite(relay: RedisRelay, prefix: string): Promise<[Larder, Larder]> {
  const a = await open(server.url, prefix)
  const b = await open(relay.url, prefix)
  await a.set('k', 'v1')
  assert.ok(await eventually(async () => (await b.get('k')) === 'v1'), 'B holds v1')
  await relay.down() // B cut off: its subscription is gone
  await a.set('k', 'v2') // B hears nothing of it
  return [a, b]
}

/** A through `relay` (its breaker quick to open and to try again), B on Redis: A writes k tagged
 *  T, B holds it (memory and file), then A is cut off until its breaker is open. */
async function taggedThenCutOff(relay: RedisRelay, prefix: string): Promise<[Larder, Larder]> {
  const a = await open(relay.url, prefix, {}, { breaker: { resetTimeout: '300ms', volumeThreshold: 2 } })
  const b = await open(server.url, prefix)
  await a.set('k', 'v', { tags: ['T'] })
  assert.ok(await eventually(async () => (await b.get('k')) === 'v'), 'B holds k')
  await relay.down()
  for (let i = 0; i < 5; i++) await a.get(`other${i}`) // the breaker opens
  assert.equal((await redisFigures(a)).breaker.state, 'open')
  return [a, b]
}

describe('recovery without calls, and waits that end', { skip }, () => {
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((cache) => cache.close().catch(() => {})))
    for (const client of clients.splice(0)) client.disconnect()
    if (server.proc?.exitCode !== null || server.proc.signalCode !== null) await server.start()
  })

  test('an idle instance sends the write Redis missed once Redis is back, without a call of its own', async () => {
    const prefix = fresh()
    const a = await open(server.url, prefix)
    await a.set('k', 'v1')
    await server.kill()
    await a.set('k', 'v2') // queued for Redis
    for (let i = 0; i < 10 && (await redisFigures(a)).breaker.state !== 'open'; i++) await a.get(`probe${i}`)
    assert.equal((await redisFigures(a)).breaker.state, 'open')
    await server.start() // empty: persistence is off
    const r = raw()
    // No call on `a` from here on.
    assert.ok(await eventually(async () => (await r.exists(`${prefix}default:k`)) === 1, 10_000), 'the queued write reached Redis')
    const figures = await redisFigures(a)
    assert.equal(figures.breaker.state, 'closed')
    assert.equal(figures.queued, 0)
    const b = await open(server.url, prefix)
    assert.equal(await b.get('k'), 'v2')
  })

  test('a SUBSCRIBE that times out on a connection that stays up is tried again: the outage rule runs for that reconnection', async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const [a, b] = await missedOverwrite(relay, prefix)
      relay.hold('subscribe', 1_500) // B's SUBSCRIBE, when it comes back, outlasts commandTimeout
      await relay.up()
      await delay(2_000) // B's connections are back; its SUBSCRIBE timed out
      relay.release()
      assert.ok(await eventually(async () => (await b.get('k')) === 'v2', 5_000), 'B re-validated its copy against Redis')
      await a.set('k', 'v3')
      assert.ok(await eventually(async () => (await b.get('k')) === 'v3'), 'and hears the messages again')
    } finally {
      await relay.close()
    }
  })

  test('a local copy served while Redis could not answer the outage rule is not promoted to memory: once Redis answers, the overwrite is seen', async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const [, b] = await missedOverwrite(relay, prefix)
      await relay.up()
      assert.ok(await eventually(() => subscribers(prefix) === 2, 5_000), 'B subscribed again')
      await delay(100) // its outage rule has run: its copy of k is checked against Redis before use
      relay.hold('getrange', 1_000) // that check (the version Redis holds) outlasts commandTimeout
      assert.equal(await b.get('k'), 'v1', 'Redis did not answer: the local copy is served (reads fail open)')
      relay.release()
      assert.ok(await eventually(async () => (await b.get('k')) === 'v2', 3_000), 'once Redis answers, B serves the overwrite')
    } finally {
      await relay.close()
    }
  })

  test('has() after an outage follows the outage rule: a local copy of a key deleted meanwhile is not reported', async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const [a, b] = await missedOverwrite(relay, prefix)
      await a.delete('k') // B hears nothing of this either
      await relay.up()
      assert.ok(await eventually(() => subscribers(prefix) === 2, 5_000), 'B subscribed again')
      await delay(100)
      assert.equal(await b.has('k'), false, 'Redis holds a tombstone: the local copy does not count')
      assert.equal(await b.get('k'), undefined)
    } finally {
      await relay.close()
    }
  })

  test('flush() against a Redis that answers reads but refuses writes (a replica: READONLY) ends; with failOpen: false it rejects', async () => {
    const prefix = fresh()
    const a = await open(server.url, prefix, { writeStrategy: 'write-back' })
    const strict = await open(server.url, prefix, { writeStrategy: 'write-back', failOpen: false })
    await a.set('k', 'v1')
    await a.flush()
    const r = raw()
    await r.replicaof('127.0.0.1', await freePort()) // read-only now (its primary never answers)
    try {
      await a.set('k', 'v2')
      await strict.set('s', 'v2')
      let reading = true
      const reads = (async () => {
        // Reads that succeed keep the breaker closed.
        for (let i = 0; reading; i++) {
          await a.get(`uncached${i}`)
          await strict.get(`uncached${i}`).catch(() => {})
          await delay(10)
        }
      })()
      const settled = await Promise.race([Promise.allSettled([a.flush(), strict.flush()]), delay(8_000).then(() => 'pending' as const)])
      reading = false
      await reads
      assert.notEqual(settled, 'pending', 'flush() ended')
      const [loose, tight] = settled as PromiseSettledResult<void>[]
      assert.equal(loose!.status, 'fulfilled')
      assert.equal(tight!.status, 'rejected')
      assert.equal(((tight as PromiseRejectedResult).reason as { code?: string }).code, 'ERR_UNAVAILABLE')
      assert.equal((await redisFigures(a)).queued, 1, 'the write still waits for a Redis that takes it')
    } finally {
      await r.replicaof('NO', 'ONE')
    }
    assert.ok(
      await eventually(async () => (await r.getBuffer(`${prefix}default:k`))?.includes('v2') === true),
      'sent once Redis takes writes',
    )
  })

  test('getOrSet whose Redis read timed out waits on Redis once, not twice: its store waits in the queue', async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const cache = await open(relay.url, prefix, {}, { commandTimeout: '1s', breaker: { resetTimeout: '5s', volumeThreshold: 10 } })
      await cache.set('warm', 1) // the connection is up
      relay.hold('getrange', 60_000) // the read of a missing key: unanswered (and whatever follows it on the wire)
      const started = performance.now()
      assert.equal(await cache.getOrSet('k', () => 'loaded'), 'loaded')
      const took = performance.now() - started
      // Its read alone takes commandTimeout (1 s); trying the store too took a second one (2 s+).
      assert.ok(took < 1_800, `getOrSet took ${Math.round(took)} ms with a 1 s commandTimeout`)
      assert.equal((await redisFigures(cache)).queued, 1, 'the store waits for Redis')
      relay.release()
      assert.ok(
        await eventually(async () => (await raw().getBuffer(`${prefix}default:k`))?.includes('loaded') === true, 10_000),
        'sent once Redis answers',
      )
    } finally {
      await relay.close()
    }
  })

  test('a tag invalidation made while the breaker was open is honoured once Redis is back (the stamps read again when commands go through)', async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const [a, b] = await taggedThenCutOff(relay, prefix)
      await b.invalidateTags(['T']) // A hears nothing of it
      await relay.up()
      // Before: the stamps were asked for as the bus came back, the breaker still open (refused
      // at once), and never again: A served k until its ttl.
      assert.ok(
        await eventually(async () => {
          await a.get('probe') // traffic, so the breaker's trial runs
          return (await a.get('k')) === undefined
        }, 15_000),
        'A sees the invalidation',
      )
    } finally {
      await relay.close()
    }
  })

  test('a bus subscribed before the command connection is ready sends nothing that fails: the tag stamps are read once it is', async () => {
    const prefix = fresh()
    const dir = tempDir()
    const local = await Larder.open({ dir, maintenance: false })
    await local.set('row', 1, { tags: ['users'] })
    await local.close()
    const writer = await open(server.url, prefix)
    await writer.invalidateTags(['users']) // a stamp in Redis that the next instance must honour
    // A caller's client whose connection comes 300 ms late (a slow network): the bus's own
    // subscriber (a new connection) is subscribed, and the bus connected, before it is ready.
    const client = new Redis(server.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
    clients.push(client)
    const connect = client.connect.bind(client)
    client.connect = async () => {
      await delay(300)
      return connect()
    }
    const cache = await open(server.url, prefix, { dir }, { url: undefined, client, breaker: { volumeThreshold: 1000 } })
    const figures = (await cache.stats()) as unknown as { tiers: { redis: { errors: number; breaker: { failures: number } } } }
    // Before: the stamps were asked for on a connection not yet open ("Stream isn't writeable"),
    // a failure counted against Redis at every open where the subscriber won the race.
    assert.equal(figures.tiers.redis.breaker.failures, 0, 'no command failed')
    assert.equal(figures.tiers.redis.errors, 0, 'no error counted')
    assert.equal(await cache.get('row'), undefined, "the tag's stamp was read from Redis: the older entry is stale")
  })
})

/** A on Redis, B through `relay` (with `commandTimeout`): B holds k tagged T (memory and
 *  file), then is cut off (relay down) while A invalidates T; Redis still holds k as it was. */
async function invalidatedWhileCutOff(relay: RedisRelay, prefix: string, commandTimeout: string): Promise<Larder> {
  const a = await open(server.url, prefix)
  const b = await open(relay.url, prefix, {}, { commandTimeout })
  await a.set('k', 'v', { tags: ['T'] })
  assert.ok(await eventually(async () => (await b.get('k')) === 'v'), 'B holds k (memory and file)')
  await relay.down()
  await a.invalidateTags(['T']) // B hears nothing of it
  return b
}

describe('tag invalidations the bus missed', { skip }, () => {
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((cache) => cache.close().catch(() => {})))
  })

  test('after its bus reconnects, an instance reads nothing below memory until it holds the stamps Redis has: an entry invalidated by tag meanwhile is not served', async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const b = await invalidatedWhileCutOff(relay, prefix, '5s')
      relay.hold('hscan', 60_000) // the stamps, when B asks for them again
      await relay.up()
      // Its connections are back: B dropped its memory tier and asks Redis for the stamps.
      assert.ok(await eventually(async () => relay.holding() > 0 && (await b.stats()).memoryEntries === 0, 10_000), 'B asks for the stamps')
      // Before: the outage rule found Redis holding k's version and served B's file at once.
      let answered: unknown = 'pending'
      const read = b.get('k').then((value) => (answered = value))
      await delay(300)
      assert.equal(answered, 'pending', 'the read waits for the stamps')
      relay.release()
      await read
      assert.equal(answered, undefined, 'invalidated by tag: a miss')
      assert.equal(await b.get('k'), undefined)
    } finally {
      await relay.close()
    }
  })

  test('after its bus reconnects, a read of the stamps slower than twice commandTimeout but answered is waited for to its end', async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const b = await invalidatedWhileCutOff(relay, prefix, '500ms')
      // 15,000 older stamps beside T's: 16 HSCANs, each held 150 ms (under commandTimeout).
      const old = String(Date.now() - 3_600_000)
      const admin = raw()
      for (let from = 0; from < 15_000; from += 1000)
        await admin.hset(`${prefix}default:\0tags`, Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`s${from + i}`, old])))
      relay.hold('hscan', 150)
      await relay.up()
      assert.ok(await eventually(async () => relay.holding() > 0 && (await b.stats()).memoryEntries === 0, 10_000), 'B asks for the stamps')
      // Before: the reads waited 1 s (twice commandTimeout), then B's file was served while
      // the stamps were still on their way (2.4 s at least).
      assert.equal(await b.get('k'), undefined, 'invalidated by tag: a miss')
      assert.equal((await b.stats()).tiers.redis!.errors, 0, 'no command failed: the read was slow, not lost')
    } finally {
      relay.release()
      await relay.close()
    }
  })

  test("an `all` message (a sender's outbox overflowed while Redis was away) sends its receivers to the stamps Redis holds", async () => {
    const prefix = fresh()
    const relay = await startRelay(server.port)
    try {
      const [a, b] = await taggedThenCutOff(relay, prefix)
      // More tags than the bus's outbox keeps (10,000): what waits becomes one `all` message.
      for (let call = 0; call < 156; call++) await a.invalidateTags(Array.from({ length: 64 }, (_, i) => `t${call}-${i}`))
      assert.equal((await redisFigures(a)).busQueued, 9_984)
      await a.invalidateTags([...Array.from({ length: 16 }, (_, i) => `u${i}`), 'T']) // 10,001
      assert.equal((await redisFigures(a)).busQueued, 1, 'the outbox holds one message')
      await relay.up()
      // Before: B dropped its memory tier and re-validated k's version (unchanged in Redis), so
      // it served k until its ttl.
      assert.ok(
        await eventually(async () => {
          await a.get('probe') // traffic, so A's breaker's trial runs and A sends what waited
          return (await b.get('k')) === undefined
        }, 15_000),
        'B no longer serves k',
      )
      assert.ok((await raw().hget(`${prefix}default:\0tags`, 'T')) !== null, "T's stamp is in Redis")
    } finally {
      await relay.close()
    }
  })
})

test('a failure that lands after the breaker left closed leaves the half-open trial to the next call', async () => {
  const states: string[] = []
  const breaker = new DiskBreaker(
    { timeout: 0, errorThresholdPercentage: 50, volumeThreshold: 1, resetTimeout: 50, rollingCountTimeout: 10_000 },
    (state) => states.push(state),
    isRedisFailure,
  )
  const timedOut = (): Error => Object.assign(new Error('Command timed out'), { code: 'ETIMEDOUT' })
  // Started while closed, fails late.
  const late = breaker.run(() => delay(150).then(() => Promise.reject(timedOut())))
  await assert.rejects(
    breaker.run(() => Promise.reject(timedOut())),
    /timed out/,
  )
  assert.equal(breaker.state, 'open')
  assert.ok(await eventually(() => breaker.state === 'halfOpen', 2_000))
  await assert.rejects(late, /timed out/)
  assert.equal(breaker.state, 'halfOpen', 'the late failure did not take the trial')
  assert.equal(await breaker.run(() => Promise.resolve('ok')), 'ok')
  assert.equal(breaker.state, 'closed')
  assert.deepEqual(states, ['open', 'halfOpen', 'closed'])
  breaker.shutdown()
})
