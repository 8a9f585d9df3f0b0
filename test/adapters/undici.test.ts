/**
 * larder/undici with the real undici 7: the CacheStore contract (our own tests of the cases
 * undici's store tests cover: a response cached and told apart from another path, stale but
 * served until deleteAt, replacement, vary, delete), bodies streamed into larder, a maximum
 * entry size, close() waiting for the deletes and writes undici does not await, and `fetch`
 * through the cache interceptor against a local origin, from two processes (a POST in one
 * invalidates the other); a failing disk never fails a request.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { Readable, type Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test, type TestContext } from 'node:test'
import { Agent, fetch, interceptors, request } from 'undici'
import { Larder, isLarderError } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { runChild } from './processes.ts'
import { bodyText, cachingFetch, keyOf, valueOf, write, type Store, type Value } from './undici-fixtures.ts'

describe('larder/undici: the CacheStore contract', () => {
  let cache: Larder
  let store: Store
  before(async () => {
    cache = await Larder.open({ dir: tempDir('larder-undici-store') })
    store = new LarderCacheStore(cache)
  })
  after(() => cache.close())

  test('get, createWriteStream and delete exist, and createWriteStream returns a Writable at once', () => {
    assert.equal(typeof store.get, 'function')
    assert.equal(typeof store.delete, 'function')
    const writable: Writable | undefined = store.createWriteStream(keyOf('/sync'), valueOf())
    assert.ok(writable !== undefined && typeof writable.write === 'function' && typeof writable.end === 'function')
    writable.destroy()
  })

  test('a response is cached whole (status, headers, directives, times, body) and told apart from another path', async () => {
    const key = keyOf('/a')
    const value = valueOf({ etag: '"v1"', headers: { 'content-type': 'text/plain', 'x-many': ['1', '2'] } })
    assert.equal(await store.get(key), undefined)
    await write(store, key, value, ['asd', Buffer.from('123')])
    const result = await store.get(structuredClone(key))
    assert.ok(result !== undefined)
    for (const field of Object.keys(value) as (keyof Value)[]) assert.deepEqual(result[field], value[field], field)
    assert.equal(await bodyText(result), 'asd123')
    assert.equal(await store.get(keyOf('/other')), undefined)
    assert.equal(await store.get(keyOf('/a', {}, 'HEAD')), undefined, 'another method is another response')
  })

  test('a stale response is served until its deleteAt, and not after it', async () => {
    const key = keyOf('/stale')
    const now = Date.now()
    await write(store, key, valueOf({ cachedAt: now - 2000, staleAt: now - 1000, deleteAt: now + 150 }), ['old but usable'])
    assert.equal(await bodyText(await store.get(key)), 'old but usable')
    await sleep(200)
    assert.equal(await store.get(key), undefined)
    assert.equal(store.createWriteStream(key, valueOf({ deleteAt: Date.now() - 1 })), undefined, 'nothing to store past its deleteAt')
  })

  test('a response written again for the same key and vary values replaces the first', async () => {
    const key = keyOf('/replaced', { 'accept-language': 'en' })
    await write(store, key, valueOf({ headers: { foo: 'bar' }, vary: { 'accept-language': 'en' } }), ['first'])
    await write(store, key, valueOf({ headers: { foo: 'baz' }, vary: { 'accept-language': 'en' } }), ['second'])
    const result = await store.get(key)
    assert.deepEqual(result?.headers, { foo: 'baz' })
    assert.equal(await bodyText(result), 'second')

    // Across the size at which bodies stop being buffered and start streaming, both ways.
    const large = 'L'.repeat(100 * 1024)
    await write(store, key, valueOf({ vary: { 'accept-language': 'en' } }), [large])
    assert.equal(await bodyText(await store.get(key)), large)
    await write(store, key, valueOf({ vary: { 'accept-language': 'en' } }), ['small again'])
    assert.equal(await bodyText(await store.get(key)), 'small again')
    const codecs = (await cache.entries({ prefix: 'undici:GET http://localhost/replaced' })).map((e) => e.codec)
    assert.deepEqual(codecs, ['bytes'], 'one entry left: the small response, buffered')
  })

  test('vary: each request gets the response stored for its header values; a header the response varies on and the request lacks matches only null', async () => {
    const en = keyOf('/vary', { 'accept-language': 'en' })
    const fr = keyOf('/vary', { 'accept-language': 'fr' })
    await write(store, en, valueOf({ vary: { 'accept-language': 'en' } }), ['hello'])
    assert.equal(await store.get(fr), undefined)
    await write(store, fr, valueOf({ vary: { 'accept-language': 'fr' } }), ['bonjour'])
    assert.equal(await bodyText(await store.get(en)), 'hello')
    assert.equal(await bodyText(await store.get(fr)), 'bonjour')
    assert.equal(await store.get(keyOf('/vary', { 'accept-language': 'de' })), undefined)

    const bare = keyOf('/vary-null')
    await write(store, bare, valueOf({ vary: { 'x-team': null } }), ['no team'])
    assert.equal(await bodyText(await store.get(keyOf('/vary-null'))), 'no team')
    assert.equal(await store.get(keyOf('/vary-null', { 'x-team': 'red' })), undefined)
  })

  test('delete forgets every method and variant of the URL, and nothing else', async () => {
    await write(store, keyOf('/gone', { 'accept-language': 'en' }), valueOf({ vary: { 'accept-language': 'en' } }), ['en'])
    await write(store, keyOf('/gone', {}, 'HEAD'), valueOf(), [])
    await write(store, keyOf('/stays'), valueOf(), ['stays'])
    await store.delete(keyOf('/gone', {}, 'POST'))
    assert.equal(await store.get(keyOf('/gone', { 'accept-language': 'en' })), undefined)
    assert.equal(await store.get(keyOf('/gone', {}, 'HEAD')), undefined)
    assert.equal(await bodyText(await store.get(keyOf('/stays'))), 'stays')
    await write(store, keyOf('/gone', {}), valueOf(), ['back'])
    assert.equal(await bodyText(await store.get(keyOf('/gone'))), 'back', 'a response stored after the delete is kept')
    const stamps = fs.readdirSync(path.join(cache.dir as string, 'v1', 'default', 'tags')).length
    await store.delete(keyOf('/never-cached', {}, 'POST'))
    assert.equal(
      fs.readdirSync(path.join(cache.dir as string, 'v1', 'default', 'tags')).length,
      stamps,
      'deleting a URL never cached writes nothing',
    )
  })

  test('bodies stream into larder: an 8 MiB body is one streamed entry and reads back byte for byte', async () => {
    const key = keyOf('/big')
    const block = Buffer.alloc(64 * 1024)
    const chunks = Array.from({ length: 128 }, (_, i) => Buffer.from(block.fill(i % 251)))
    await write(store, key, valueOf(), chunks)
    const entries = await cache.entries({ prefix: 'undici:GET http://localhost/big' })
    assert.equal(entries.length, 1)
    assert.equal(entries[0]!.codec, 'stream', 'written by setStream')
    const result = await store.get(key)
    const read: Buffer[] = []
    for await (const chunk of result!.body as Readable) read.push(chunk as Buffer)
    assert.ok(Buffer.concat(read).equals(Buffer.concat(chunks)))
  })
})

describe('larder/undici: limits and errors', () => {
  test("a body over maxEntrySize errors the write stream (undici's channel) and stores nothing; one at the limit is stored", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-undici-limit') })
    const store = new LarderCacheStore(cache, { maxEntrySize: 10 })
    const writable = store.createWriteStream(keyOf('/too-big'), valueOf())!
    writable.write('0123456789')
    writable.write('x')
    const [error] = (await once(writable, 'error')) as [unknown]
    assert.ok(isLarderError(error, 'ERR_TOO_LARGE'), String(error))
    await sleep(20)
    assert.equal(await store.get(keyOf('/too-big')), undefined)
    // The URL's index, written as the write began (so a delete while the body arrived finds
    // it), is all there is: no response.
    assert.deepEqual(
      (await cache.entries()).map((entry) => entry.key),
      ['undici:index http://localhost/too-big'],
    )
    await write(store, keyOf('/fits'), valueOf(), ['0123456789'])
    assert.equal(await bodyText(await store.get(keyOf('/fits'))), '0123456789')
    assert.throws(
      () => new LarderCacheStore(cache, { maxEntrySize: -1 }),
      (e: unknown) => isLarderError(e, 'ERR_INVALID_OPTION'),
    )
    await cache.close()
  })

  test('a failing disk: get misses and the write stream finishes (fail-open), errorCallback hears of it, nothing throws', async () => {
    const dir = path.join(tempDir('larder-undici-disk'), 'cache')
    const errors: Error[] = []
    const store = new LarderCacheStore(
      { dir, breaker: { volumeThreshold: 2, resetTimeout: 60_000 } },
      { errorCallback: (e) => errors.push(e) },
    )
    await write(store, keyOf('/kept'), valueOf(), ['kept'])
    assert.equal(await bodyText(await store.get(keyOf('/kept'))), 'kept')
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    assert.equal(await store.get(keyOf('/kept')), undefined)
    await write(store, keyOf('/new'), valueOf(), ['new'])
    await store.delete(keyOf('/kept'))
    assert.ok(errors.length >= 1 && errors.every((e) => isLarderError(e, 'ERR_UNAVAILABLE')), errors.map(String).join('; '))
    await store.close()
  })
  test("an option undici's own stores take (maxCount, maxSize, location), or a misspelt one, is refused naming it, not ignored", () => {
    const dir = tempDir('larder-undici-options')
    for (const name of ['maxCount', 'maxSize', 'location', 'maxEntrySise']) {
      assert.throws(
        () => new LarderCacheStore({ dir }, { [name]: 1000 }),
        (e: unknown) => isLarderError(e, 'ERR_INVALID_OPTION') && e.field === name && e.message.includes(`"${name}"`),
        name,
      )
    }
    assert.throws(
      () => new LarderCacheStore({ dir }, null as never),
      (e: unknown) => isLarderError(e, 'ERR_INVALID_OPTION') && e.field === 'options',
    )
  })

  test('an errorCallback that throws (a logger that failed) fails no fetch; one that is not a function is refused, naming the field', async () => {
    const origin = http.createServer((_request, response) => {
      response.writeHead(200, { 'cache-control': 'public, max-age=60' })
      response.end('from the origin')
    })
    origin.listen(0, '127.0.0.1')
    await once(origin, 'listening')
    const base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
    // A cache that cannot open (a file where its directory would be): every call reports.
    const parent = tempDir('larder-undici-callback')
    fs.writeFileSync(path.join(parent, 'file'), 'not a directory')
    let reported = 0
    const store = new LarderCacheStore(
      { dir: path.join(parent, 'file', 'cache') },
      {
        errorCallback: () => {
          reported++
          throw new Error('logger down')
        },
      },
    )
    const agent = new Agent().compose(interceptors.cache({ store }))
    try {
      for (const method of ['GET', 'POST', 'GET']) {
        const response = await request(`${base}/page`, { method, dispatcher: agent })
        assert.equal(await response.body.text(), 'from the origin', method)
      }
      assert.equal(await store.get(keyOf('/page')), undefined)
      await store.delete(keyOf('/page'))
      assert.ok(reported >= 2, `reported ${reported}`)
    } finally {
      await agent.close()
      await store.close()
      origin.close()
    }
    assert.throws(
      () => new LarderCacheStore({ dir: parent }, { errorCallback: 'console.warn' as never }),
      (e: unknown) => isLarderError(e, 'ERR_INVALID_OPTION') && e.field === 'errorCallback' && /errorCallback/.test(e.message),
    )
  })
})

describe('larder/undici: close', () => {
  // undici calls delete() and writes without awaiting them (a POST's response reaches the app
  // while the delete is still running): a process that closes its store right after must not
  // lose them, or other processes keep serving what the POST changed.
  test('close() waits for a delete and a write that undici did not await, so neither is lost', async () => {
    const dir = tempDir('larder-undici-close')
    const first = new LarderCacheStore({ dir })
    await write(first, keyOf('/changed'), valueOf(), ['old'])
    await first.close()

    const second = new LarderCacheStore({ dir })
    const errors: Error[] = []
    const closing = new LarderCacheStore({ dir }, { errorCallback: (e) => errors.push(e) })
    void closing.delete(keyOf('/changed', {}, 'POST'))
    const writable = closing.createWriteStream(keyOf('/written'), valueOf())!
    writable.end('new')
    await closing.close()
    assert.deepEqual(errors.map(String), [])
    assert.equal(await second.get(keyOf('/changed')), undefined, 'the delete reached the disk before close() resolved')
    assert.equal(await bodyText(await second.get(keyOf('/written'))), 'new', 'the write too')
    await second.close()
  })
})

describe('larder/undici: fetch through the cache interceptor', () => {
  let origin: http.Server
  let base: string
  let served = 0
  let restoreFetch: () => Promise<void>
  let store: Store
  let dir: string

  before(async () => {
    origin = http.createServer((request, response) => {
      served++
      const language = request.headers['accept-language'] ?? 'none'
      if (request.url === '/greeting') {
        response.writeHead(200, { 'cache-control': 'public, max-age=60', vary: 'accept-language', 'content-type': 'text/plain' })
        response.end(`hello (${language}) #${served}`)
      } else if (request.url === '/no-store') {
        response.writeHead(200, { 'cache-control': 'no-store' })
        response.end(`fresh #${served}`)
      } else {
        response.writeHead(200, { 'cache-control': 'public, max-age=60' })
        response.end(`resource ${request.url} #${served}`)
      }
    })
    origin.listen(0, '127.0.0.1')
    await once(origin, 'listening')
    base = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`
    dir = tempDir('larder-undici-fetch')
    store = new LarderCacheStore({ dir })
    restoreFetch = cachingFetch(store)
  })
  after(async () => {
    await restoreFetch()
    await store.close()
    origin.close()
  })

  /** Fetches and waits a moment for the store's write to finish (it follows the response). */
  async function get(url: string, headers: Record<string, string> = {}): Promise<{ text: string; age: string | null }> {
    const response = await fetch(`${base}${url}`, { headers })
    const text = await response.text()
    return { text, age: response.headers.get('age') }
  }

  async function settled(key: string): Promise<void> {
    const probe = await Larder.open({ dir, readOnly: true })
    try {
      for (let i = 0; i < 200 && (await probe.entries({ prefix: key })).length === 0; i++) await sleep(10)
    } finally {
      await probe.close()
    }
  }

  test('a second fetch is answered by the store, not the origin, in this process and in another one', { timeout: 60_000 }, async () => {
    const first = await get('/resource')
    assert.equal(served, 1)
    assert.equal(first.age, null)
    await settled(`undici:GET ${base}/resource`)
    const second = await get('/resource')
    assert.equal(second.text, first.text)
    assert.equal(served, 1, 'the origin was not asked again')
    assert.notEqual(second.age, null, 'undici served it from the store')

    const child = await runChild('undici-child.ts', dir, `${base}/resource`)
    assert.deepEqual({ status: child.status, body: child.body }, { status: 200, body: first.text })
    assert.notEqual(child.age, null)
    assert.equal(served, 1, 'the other process was answered from the shared directory')
  })

  test('Vary: each Accept-Language is cached apart, in both processes', { timeout: 60_000 }, async () => {
    const before = served
    const en = await get('/greeting', { 'accept-language': 'en' })
    await settled(`undici:GET ${base}/greeting`)
    const fr = await get('/greeting', { 'accept-language': 'fr' })
    assert.equal(served, before + 2)
    assert.match(en.text, /^hello \(en\)/)
    assert.match(fr.text, /^hello \(fr\)/)
    for (
      let i = 0;
      i < 200 && (await store.get({ origin: base, path: '/greeting', method: 'GET', headers: { 'accept-language': 'fr' } })) === undefined;
      i++
    )
      await sleep(10)
    assert.equal((await get('/greeting', { 'accept-language': 'en' })).text, en.text)
    const child = await runChild('undici-child.ts', dir, `${base}/greeting`, 'accept-language=fr')
    assert.equal(child.body, fr.text)
    assert.equal(served, before + 2)
  })

  test("Node's built-in fetch goes through the global dispatcher too: answered by the store", async () => {
    const first = await (await globalThis.fetch(`${base}/builtin`)).text()
    await settled(`undici:GET ${base}/builtin`)
    const before = served
    const second = await globalThis.fetch(`${base}/builtin`)
    assert.equal(await second.text(), first)
    assert.equal(served, before)
    assert.notEqual(second.headers.get('age'), null)
  })

  test('no-store responses are not kept', async () => {
    const before = served
    await get('/no-store')
    await get('/no-store')
    assert.equal(served, before + 2)
  })

  test('a POST to a URL makes undici delete it: the next GET goes to the origin', async () => {
    await get('/posted')
    await settled(`undici:GET ${base}/posted`)
    const before = served
    await get('/posted')
    assert.equal(served, before)
    await (await fetch(`${base}/posted`, { method: 'POST', body: 'x' })).text()
    await get('/posted')
    assert.equal(served, before + 2)
  })

  test(
    'a POST in another process makes undici delete the URL there, and so here: the next GET goes to the origin',
    { timeout: 60_000 },
    async () => {
      await get('/posted-elsewhere')
      await settled(`undici:GET ${base}/posted-elsewhere`)
      const before = served
      assert.notEqual((await get('/posted-elsewhere')).age, null)
      assert.equal(served, before)
      const child = await runChild('undici-child.ts', dir, `${base}/posted-elsewhere`, '--post')
      assert.equal(child.age, null)
      assert.equal(served, before + 1, 'the POST reached the origin')
      const again = await get('/posted-elsewhere')
      assert.equal(again.age, null, 'not from the store')
      assert.equal(served, before + 2)
    },
  )
})

/** A local origin (closed after the test) answering every request with a 200 fresh for a
 *  minute whose body is the request's number (`#1`, `#2`…); `served()`: how many it answered. */
async function countingOrigin(t: TestContext): Promise<{ base: string; served: () => number }> {
  let served = 0
  const origin = http.createServer((_request, response) => {
    served++
    response.writeHead(200, { 'cache-control': 'public, max-age=60' })
    response.end(`#${served}`)
  })
  origin.listen(0, '127.0.0.1')
  await once(origin, 'listening')
  t.after(() => origin.close())
  return { base: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`, served: () => served }
}

describe('larder/undici: fetch with a failing disk', () => {
  test('requests are answered by the origin; nothing throws', async (t) => {
    const { base } = await countingOrigin(t)
    const dir = path.join(tempDir('larder-undici-fetch-disk'), 'cache')
    const errors: Error[] = []
    const store = new LarderCacheStore({ dir }, { errorCallback: (e) => errors.push(e) })
    await store.get(keyOf('/warm-up')) // opened
    fs.rmSync(dir, { recursive: true })
    fs.writeFileSync(dir, 'not a directory')
    const agent = new Agent()
    t.after(() => Promise.all([agent.close(), store.close()]))
    const dispatcher = agent.compose(interceptors.cache({ store }))
    const texts: string[] = []
    for (let i = 0; i < 3; i++) texts.push(await (await fetch(`${base}/x`, { dispatcher })).text())
    assert.deepEqual(texts, ['#1', '#2', '#3'])
    assert.ok(errors.length >= 1 && errors.every((e) => isLarderError(e, 'ERR_UNAVAILABLE')), errors.map(String).join('; '))
  })
})

describe('larder/undici: with the memory tier', () => {
  test("a body chunk the app changes in place (undici's request() hands it over as it is) is not served changed to the next hit", async (t) => {
    const { base, served } = await countingOrigin(t)
    const url = `${base}/mutable`
    const store = new LarderCacheStore({ dir: tempDir('larder-undici-memory-body'), memory: true })
    const agent = new Agent()
    t.after(() => Promise.all([agent.close(), store.close()]))
    const dispatcher = agent.compose(interceptors.cache({ store }))
    /** A request() whose consumer overwrites each chunk once it has read it. */
    const read = async (): Promise<string> => {
      const response = await request(url, { dispatcher })
      let text = ''
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        text += chunk.toString()
        chunk.fill('X')
      }
      return text
    }
    assert.equal(await read(), '#1')
    for (let i = 0; i < 200 && (await store.get({ origin: base, path: '/mutable', method: 'GET', headers: {} })) === undefined; i++)
      await sleep(10)
    const texts: string[] = []
    for (let i = 0; i < 3; i++) texts.push(await read())
    assert.deepEqual(texts, ['#1', '#1', '#1'])
    assert.equal(served(), 1, 'the hits came from the store')
  })
})
