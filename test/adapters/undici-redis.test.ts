/**
 * larder/undici over the Redis shared tier: hosts that share one cache through Redis (each
 * with its own directory, or none), against a real redis-server that is paused and killed.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { Agent, interceptors, request } from 'undici'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from '../redis/server.ts'
import { bodyText, keyOf, valueOf, write } from './undici-fixtures.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))

/** Fast to give up on Redis and to try it again. */
const FAST = { commandTimeout: '100ms', breaker: { resetTimeout: '200ms', volumeThreshold: 2 } }
let n = 0
const fresh = (): string => `ur${process.pid}-${n++}:`

/** An origin whose every answer is a new version: `/vary…` varies on accept-language, `/big…`
 *  is 100 KB; all are fresh for a minute. */
let served = 0
const origin = http.createServer((req, res) => {
  served++
  const headers: http.OutgoingHttpHeaders = { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain' }
  if (req.url?.startsWith('/vary')) headers.vary = 'accept-language'
  res.writeHead(200, headers)
  res.end(req.url?.startsWith('/big') ? `version ${served} `.padEnd(100_000, '.') : `version ${served}`)
})
let base = ''
const stores: LarderCacheStore[] = []
const agents: { close(): Promise<void> }[] = []

before(async () => {
  origin.listen(0, '127.0.0.1')
  await new Promise((resolve) => origin.once('listening', resolve))
  base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
})
after(async () => {
  for (const agent of agents) await agent.close()
  for (const store of stores) await store.close()
  origin.close()
  assert.deepEqual(unhandled, [], 'no unhandled rejection')
})

/** A host: its store (errors collected) and a fetch through undici's cache interceptor. */
function host(options: object): { store: LarderCacheStore; errors: string[]; fetch: (path: string) => Promise<string> } {
  const errors: string[] = []
  const store = new LarderCacheStore(options, { errorCallback: (error) => errors.push((error as { code?: string }).code ?? error.message) })
  const agent = new Agent().compose(interceptors.cache({ store }))
  stores.push(store)
  agents.push(agent)
  const fetch = async (path: string): Promise<string> =>
    (await request(base + path, { dispatcher: agent, headers: { 'accept-language': 'en' } })).body.text()
  return { store, errors, fetch }
}

/** Whether a request for `path` is soon answered without the origin (undici does not wait for
 *  the store's write, so the next request can miss and store again). */
async function cachedSoon(fetch: (path: string) => Promise<string>, path: string): Promise<boolean> {
  return eventually(async () => {
    const count = served
    await fetch(path)
    return served === count
  })
}

describe('larder/undici over Redis', { skip }, () => {
  test("a delete made while Redis is paused still reaches another host's variants once Redis is back", async () => {
    const prefix = fresh()
    const redis = { url: server.url, prefix, ...FAST }
    const a = host({ dir: tempDir(), memory: true, redis })
    const b = host({ dir: tempDir(), memory: true, redis })
    assert.ok(await cachedSoon(b.fetch, '/vary-page'), 'host B serves its stored variant')
    const first = await b.fetch('/vary-page')
    server.cli('CLIENT', 'PAUSE', '600', 'ALL')
    // Host A never read the URL: its index is in Redis alone, which cannot answer now. undici
    // calls delete() after an unsafe request (a POST) to the URL.
    await a.store.delete({ origin: base, path: '/vary-page', method: 'POST', headers: { 'accept-language': 'en' } })
    assert.ok(a.errors.includes('ERR_UNAVAILABLE'), 'host A heard that Redis failed it')
    assert.ok(
      await eventually(async () => (await b.fetch('/vary-page')) !== first, 8000),
      'host B stops serving the variant once Redis is back (the URL was stamped, though its index could not be read)',
    )
  })

  test('with failOpen false, a delete Redis refused is sent again once Redis takes writes, so other hosts stop serving the URL', async () => {
    const redis = { url: server.url, prefix: fresh(), ...FAST }
    const a = host({ dir: tempDir(), memory: true, failOpen: false, redis })
    const b = host({ dir: tempDir(), memory: true, failOpen: false, redis })
    assert.ok(await cachedSoon(b.fetch, '/plain-refused'), 'host B serves its stored response')
    const first = await b.fetch('/plain-refused')
    await sleep(300) // undici does not wait for the store: let host B's writes land first
    // Redis refuses host A's writes at once (and never runs them later, as a paused Redis
    // would): its reads, and host B's bus, carry on.
    server.cli('ACL', 'SETUSER', 'default', '-@write', '-@scripting')
    try {
      await a.store.delete({ origin: base, path: '/plain-refused', method: 'POST', headers: {} })
    } finally {
      server.cli('ACL', 'SETUSER', 'default', '+@all')
    }
    assert.ok(a.errors.includes('ERR_UNAVAILABLE'), 'host A heard that Redis refused it')
    assert.ok(
      await eventually(async () => (await b.fetch('/plain-refused')) !== first, 8000),
      'host B, which heard the bus, stops serving it',
    )
    // A host that starts now heard no message: only Redis can tell it the response is gone.
    assert.ok(
      await eventually(async () => (await host({ dir: tempDir(), failOpen: false, redis }).fetch('/plain-refused')) !== first, 8000),
      'a host that starts later does not read it from Redis: host A sent the delete again',
    )
  })

  test('with failOpen false, closing the store sends the deletes it holds, and reports those still refused', async () => {
    const redis = { url: server.url, prefix: fresh(), ...FAST }
    const b = host({ dir: tempDir(), memory: true, failOpen: false, redis })
    assert.ok(await cachedSoon(b.fetch, '/plain-closing'), 'host B serves its stored response')
    const first = await b.fetch('/plain-closing')
    await sleep(300)
    const errors: string[] = []
    const a = new LarderCacheStore(
      { dir: tempDir(), failOpen: false, redis },
      { errorCallback: (error) => errors.push((error as { code?: string }).code ?? error.message) },
    )
    server.cli('ACL', 'SETUSER', 'default', '-@write', '-@scripting')
    try {
      await a.delete({ origin: base, path: '/plain-closing', method: 'POST', headers: {} })
      await a.delete({ origin: base, path: '/plain-never', method: 'POST', headers: {} })
    } finally {
      server.cli('ACL', 'SETUSER', 'default', '+@all')
    }
    await a.close() // at once: before the first retry is due
    assert.ok(errors.includes('ERR_UNAVAILABLE'))
    assert.ok(!errors.some((error) => error.includes('never sent')), 'both were sent by close()')
    assert.notEqual(await host({ dir: tempDir(), failOpen: false, redis }).fetch('/plain-closing'), first, 'a new host does not read it')
  })

  test('with failOpen false, a Redis that died is a miss for undici, not a failed request', async () => {
    const dying = await startRedis()
    const c = host({ dir: tempDir(), failOpen: false, redis: { url: dying.url, prefix: fresh(), ...FAST } })
    assert.ok(await cachedSoon(c.fetch, '/plain-dying'), 'stored while Redis runs')
    await dying.kill()
    const key = { origin: base, path: '/never-stored', method: 'GET', headers: {} }
    assert.equal(await c.store.get(key), undefined, 'get resolves a miss')
    assert.ok(c.errors.includes('ERR_UNAVAILABLE'), 'and errorCallback hears why')
    assert.match(await c.fetch('/plain-after-death'), /^version \d+$/, 'a request goes on to the origin')
  })

  test('dir: false keeps responses that vary in memory and Redis; a body too large to buffer goes uncached, unreported', async () => {
    const redis = { url: server.url, prefix: fresh(), ...FAST }
    const d = host({ dir: false, memory: true, redis })
    const first = await d.fetch('/vary-nodir')
    await sleep(300) // undici does not wait for the store: let its write land
    const count = served
    assert.equal(await d.fetch('/vary-nodir'), first, 'the variant is served from the cache')
    assert.equal(served, count, 'without asking the origin')
    assert.equal(await host({ dir: false, redis }).fetch('/vary-nodir'), first, 'another host with no directory reads it from Redis')
    assert.equal(served, count)
    const big1 = await d.fetch('/big-nodir')
    await sleep(300)
    const big2 = await d.fetch('/big-nodir')
    assert.equal(big1.length, 100_000)
    assert.equal(big2.length, 100_000, 'the whole body reaches the client')
    assert.notEqual(big2, big1, 'a body over 64 KiB is not cached without a directory')
    assert.deepEqual(d.errors, [], 'nothing reported: no stream read was tried')
    // Written by hand too: the store's write stream errors (undici's channel), stores nothing.
    const key = keyOf('/big-by-hand')
    await assert.rejects(write(d.store, key, valueOf(), [Buffer.alloc(70_000, 1)]), /ERR_TOO_LARGE|without a directory/)
    assert.equal(await bodyText(await d.store.get(key)), undefined)
  })
})
