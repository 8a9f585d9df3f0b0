/**
 * The bus and the hosts' clocks: a change heard from a host whose clock is ahead moves this
 * instance's versions past it (so its later writes win), but never its expiries; a message
 * stamped absurdly far ahead (a forged one, a host hours out) is not a message at all. Against
 * a real redis-server.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)
const caches: Larder[] = []
const publisher = skip === false ? new Redis(server.url) : (undefined as unknown as Redis)
after(async () => {
  for (const cache of caches) await cache.close()
  await publisher?.quit()
})

let n = 0
async function hosts(): Promise<{ prefix: string; a: Larder; b: Larder; publish: (message: object) => Promise<number> }> {
  const prefix = `bc${process.pid}-${n++}:`
  const open = (): Promise<Larder> => Larder.open({ dir: false, redis: { url: server.url, prefix } })
  const a = await open()
  const b = await open()
  caches.push(a, b)
  return {
    prefix,
    a,
    b,
    publish: (message) => publisher.publish(`${prefix}bus:default`, JSON.stringify({ from: 'elsewhere', ...message })),
  }
}

describe('the bus and clocks that disagree', { skip }, () => {
  test('a change from a host ten minutes ahead moves versions, not expiries: a ttl still counts from now', async () => {
    const { prefix, a, b, publish } = await hosts()
    await publish({ op: 'keys', keys: [['written-elsewhere', Date.now() + 10 * 60_000]] })
    assert.ok(await eventually(() => b.now() > Date.now() + 9 * 60_000), "B's clock moved past the change")
    await b.set('session', 'token', { ttl: 400 })
    const pttl = await publisher.pttl(`${prefix}default:session`)
    assert.ok(pttl > 0 && pttl <= 400, `Redis expires it within its ttl (PTTL ${pttl})`)
    assert.equal(await a.get('session'), 'token')
    await sleep(500)
    assert.equal(await b.get('session'), undefined, 'expired on the writer')
    assert.equal(await a.get('session'), undefined, 'and on the other host')
    await b.set('after', 'newer') // versions: still after the change heard
    assert.equal(await a.get('after'), 'newer')
  })

  test('a message stamped more than an hour ahead is ignored: no tag invalidated for good, no key frozen', async () => {
    const { a, b, publish } = await hosts()
    await a.set('row', 'v', { tags: ['users'] })
    await a.set('frozen', 'old')
    assert.equal(await b.get('row'), 'v')
    await publish({ op: 'tags', tags: ['users'], at: 1e300 })
    await publish({ op: 'keys', keys: [['frozen', Date.now() + 2 * 60 * 60_000]] })
    await publish({ op: 'clear', tier: 'all', at: Number.MAX_VALUE })
    // Messages arrive in order: once this one is heard, so were those before it.
    await b.set('marker', 1)
    await publish({ op: 'keys', keys: [['marker', Date.now()]] })
    assert.ok(await eventually(async () => (await b.stats()).tiers.memory!.deletes > 0 || (await b.get('marker')) === 1))
    await sleep(100)
    assert.ok(b.now() < Date.now() + 60_000, 'the clock did not move')
    assert.equal(await b.get('row'), 'v', 'the tag was not invalidated')
    await b.set('frozen', 'new')
    assert.equal(await b.get('frozen'), 'new', 'a later write is kept')
    assert.ok(await eventually(async () => (await a.get('frozen')) === 'new'), 'and reaches the other host')
    await b.set('short', 1, { ttl: 300 })
    await sleep(400)
    assert.equal(await b.get('short'), undefined)
  })
})
