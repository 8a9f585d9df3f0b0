/**
 * larder/undici at the edges a review found, each reproduced against the real undici 7 before
 * it was fixed: deletes that relied on the URL's index alone (gone, or missing a method), a
 * variant from before a delete served again once the index named headers anew, an older
 * response that varied on nothing hiding a newer variant, a 304 that never renewed a small
 * response, a delete that rejected (undici does not await it) with `failOpen: false`, and a
 * large response (streamed into the cache) whose body never arrived once the disk failed.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { Agent, fetch, interceptors } from 'undici'
import { Larder, isLarderError } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { entryFiles, tempDir } from '../helpers.ts'
import { bodyText, keyOf, valueOf, write, type Store } from './undici-fixtures.ts'

describe('larder/undici: deletes and variants', () => {
  let cache: Larder
  let store: Store
  before(async () => {
    cache = await Larder.open({ dir: tempDir('larder-undici-edges') })
    store = new LarderCacheStore(cache)
  })
  after(() => cache.close())

  /** Removes the URL's index, as eviction would (a popular response's hits never read it). */
  async function loseIndex(pathname: string): Promise<void> {
    const [index] = (await cache.entries({ prefix: 'undici:index ' })).filter((entry) => entry.key.endsWith(pathname))
    assert.ok(index !== undefined, 'the URL has an index')
    assert.equal(await cache.delete(index.key), true)
  }

  test("delete removes GET's response whatever the URL's index says: gone, or naming another method only", async () => {
    await write(store, keyOf('/popular'), valueOf(), ['popular'])
    await loseIndex('/popular')
    await write(store, keyOf('/both'), valueOf(), ['get'])
    await loseIndex('/both')
    await write(store, keyOf('/both', {}, 'HEAD'), valueOf(), []) // an index naming HEAD only
    await store.delete(keyOf('/popular', {}, 'POST'))
    await store.delete(keyOf('/both', {}, 'POST'))
    assert.equal(await store.get(keyOf('/popular')), undefined)
    assert.equal(await store.get(keyOf('/both')), undefined)
    assert.equal(await store.get(keyOf('/both', {}, 'HEAD')), undefined)
  })

  test('a variant stored before a delete is not served again once the origin varies anew', async () => {
    const en = { 'accept-language': 'en' }
    await write(store, keyOf('/v', en), valueOf({ vary: en }), ['v1 en'])
    await write(store, keyOf('/v', { 'accept-language': 'de' }), valueOf(), ['v2, varies on nothing'])
    await store.delete(keyOf('/v', {}, 'POST')) // the index named no headers then: no tag stamp
    const fr = { 'accept-language': 'fr' }
    await write(store, keyOf('/v', fr), valueOf({ vary: fr }), ['v3 fr'])
    assert.equal(await bodyText(await store.get(keyOf('/v', fr))), 'v3 fr')
    assert.equal(await store.get(keyOf('/v', en)), undefined, 'v1 was stored before the delete')
  })

  test('a response that varies, stored after one that did not, is the one served', async () => {
    await write(store, keyOf('/began-to-vary'), valueOf(), ['old, varies on nothing'])
    const en = { 'accept-language': 'en' }
    await write(store, keyOf('/began-to-vary', en), valueOf({ vary: en }), ['new en'])
    assert.equal(await bodyText(await store.get(keyOf('/began-to-vary', en))), 'new en')
  })
})

describe('larder/undici: renewal and failures', () => {
  test('a 304 renews a small stored response: after one revalidation, the next fetch is a fresh hit', async () => {
    const hits: string[] = []
    const origin = http.createServer((request, response) => {
      hits.push(request.headers['if-none-match'] ?? '')
      if (request.headers['if-none-match'] === '"e1"') {
        response.writeHead(304, { etag: '"e1"', 'cache-control': 'max-age=100' })
        return response.end()
      }
      response.writeHead(200, { etag: '"e1"', 'cache-control': 'max-age=1, stale-while-revalidate=60' })
      response.end('hello body')
    })
    origin.listen(0, '127.0.0.1')
    await once(origin, 'listening')
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/swr`
    const store = new LarderCacheStore({ dir: tempDir('larder-undici-304') })
    const agent = new Agent()
    const dispatcher = agent.compose(interceptors.cache({ store }))
    const read = async (): Promise<{ text: string; warning: string | null }> => {
      const response = await fetch(url, { dispatcher })
      return { text: await response.text(), warning: response.headers.get('warning') }
    }
    try {
      assert.equal((await read()).text, 'hello body')
      await sleep(1_200) // stale now
      const stale = await read() // served stale; undici revalidates in the background (a 304)
      assert.equal(stale.text, 'hello body')
      let fresh = false
      for (let i = 0; i < 50 && !fresh; i++) {
        await sleep(50)
        fresh = hits.length === 2 && (await read()).warning === null
      }
      assert.ok(fresh, `the 304 renewed the entry (origin asked ${hits.length} times: ${hits.join(' | ')})`)
      assert.equal((await read()).text, 'hello body')
      assert.equal(hits.length, 2, 'no further trip to the origin')
    } finally {
      await agent.close()
      await store.close()
      origin.close()
    }
  })

  test('with failOpen: false, delete on a failing disk resolves and reports (undici does not await it: a rejection would end the process)', async () => {
    const dir = path.join(tempDir('larder-undici-strict'), 'cache')
    const errors: Error[] = []
    const store = new LarderCacheStore({ dir, failOpen: false }, { errorCallback: (e) => errors.push(e) })
    await write(store, keyOf('/kept'), valueOf(), ['kept'])
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    await store.delete(keyOf('/kept', {}, 'POST'))
    assert.ok(errors.length >= 1 && errors.every((e) => isLarderError(e, 'ERR_UNAVAILABLE')), errors.map(String).join('; '))
    await store.close().catch(() => {})
  })

  for (const [failure, usableFirst] of [
    ['a cache directory replaced by a file after open', true],
    ['a cache that cannot open', false],
  ] as const) {
    test(`${failure}: responses streamed into the cache (over 64 KiB) still reach the client whole`, async () => {
      const origin = http.createServer((req, res) => {
        res.writeHead(200, { 'cache-control': 'max-age=600' })
        res.end(Buffer.alloc(Number(req.url!.slice(1)), 97))
      })
      origin.listen(0, '127.0.0.1')
      await once(origin, 'listening')
      const base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
      const dir = path.join(tempDir('larder-undici-disk'), 'cache')
      if (!usableFirst) fs.writeFileSync(dir, 'not a directory')
      const errors: Error[] = []
      const store = new LarderCacheStore({ dir }, { errorCallback: (e) => errors.push(e) })
      const agent = new Agent().compose(interceptors.cache({ store }))
      try {
        assert.equal((await (await fetch(`${base}/10`, { dispatcher: agent })).arrayBuffer()).byteLength, 10)
        if (usableFirst) {
          fs.renameSync(dir, `${dir}.away`)
          fs.writeFileSync(dir, 'not a directory')
        }
        for (const size of [100_000, 1_000_000]) {
          const body = (await fetch(`${base}/${size}`, { dispatcher: agent })).arrayBuffer()
          // Before: undici waited for the cache's stream to drain, which nothing read any more.
          const got = await Promise.race([body.then((b) => b.byteLength), sleep(10_000, 'no body after 10 s')])
          assert.equal(got, size)
        }
        if (!usableFirst) assert.ok(errors.length >= 1, 'the cache that could not open was reported')
      } finally {
        // Bounded: before the fix, the hung response held the agent and the store's close.
        await agent.destroy()
        await Promise.race([store.close().catch(() => {}), sleep(2000)])
        origin.closeAllConnections()
        origin.close()
      }
    })
  }
})

test('a damaged stored response over 2 MiB is a miss that goes to the origin, never a fetch that fails midway', async () => {
  let served = 0
  const payload = randomBytes(3 << 20) // incompressible: its entry file is over 2 MiB
  const origin = http.createServer((_req, res) => {
    served++
    res.writeHead(200, { 'cache-control': 'max-age=600' })
    res.end(payload)
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/big`
  const dir = tempDir('larder-undici-damaged')
  const first = new LarderCacheStore({ dir })
  const agent = new Agent().compose(interceptors.cache({ store: first }))
  try {
    assert.equal((await (await fetch(url, { dispatcher: agent })).arrayBuffer()).byteLength, 3 << 20)
    await agent.close()
    await first.close()
    const [file] = entryFiles(dir).filter((f) => fs.statSync(f).size > 2 << 20)
    assert.ok(file !== undefined, 'the response is stored')
    const fd = fs.openSync(file, 'r+')
    fs.writeSync(fd, Buffer.from('XYZ'), 0, 3, 1 << 20)
    fs.closeSync(fd)
    const again = new LarderCacheStore({ dir })
    const agent2 = new Agent().compose(interceptors.cache({ store: again }))
    try {
      const body = Buffer.from(await (await fetch(url, { dispatcher: agent2 })).arrayBuffer())
      assert.ok(body.equals(payload), 'the whole, right body')
      assert.equal(served, 2, 'from the origin')
    } finally {
      await agent2.close()
      await again.close()
    }
  } finally {
    origin.closeAllConnections()
    origin.close()
  }
})
