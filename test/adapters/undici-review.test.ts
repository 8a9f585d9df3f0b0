/**
 * larder/undici: findings of an adversarial review (2026-12-06), each failing on the code
 * before its fix, with real fetches through undici's cache interceptor against a local origin:
 * - a response whose body was still arriving when its URL was deleted (a POST, here or in
 *   another process) was stored afterwards and served stale until its max-age;
 * - a streamed response (over 64 KiB) was not served to the request made right after the
 *   first had its body: it went to the origin again;
 * - over a cache with `serializer: 'raw'` the URL's index could not be stored: responses that
 *   vary were never cached, others were cached and then dropped, and nothing was reported.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { Agent, fetch, interceptors } from 'undici'
import { Larder } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { runChild } from './processes.ts'
import { cachingFetch } from './undici-fixtures.ts'

/** A local origin: `/slow/<bytes>` sends its first half, then waits for `release()` before the
 *  rest (the first time it is asked for); every body says which version of the resource it is (a POST makes a new version). */
class Origin {
  served = 0
  version = 1
  base = ''
  #waiting: (() => void)[] = []
  readonly #slowed = new Set<string>()
  #arrived: (() => void)[] = []
  readonly server = http.createServer((request, response) => {
    if (request.method === 'POST') {
      this.version++
      response.end('posted')
      return
    }
    this.served++
    const url = new URL(request.url!, 'http://origin')
    const bytes = Number(url.pathname.split('/').at(-1))
    const body = Buffer.alloc(bytes, 'x')
    body.write(`version ${this.version};`)
    response.setHeader('cache-control', 'public, max-age=600')
    if (url.searchParams.has('vary')) response.setHeader('vary', 'accept-language')
    response.setHeader('content-length', bytes)
    if (!url.pathname.startsWith('/slow/') || this.#slowed.has(request.url!)) {
      response.end(body)
      return
    }
    this.#slowed.add(request.url!) // only the first time
    response.write(body.subarray(0, bytes / 2))
    this.#arrived.splice(0).forEach((resolve) => resolve())
    this.#waiting.push(() => response.end(body.subarray(bytes / 2)))
  })

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }

  /** Resolves once a slow response has sent its first half. */
  firstHalfSent(): Promise<void> {
    return new Promise((resolve) => this.#arrived.push(resolve))
  }

  release(): void {
    this.#waiting.splice(0).forEach((finish) => finish())
  }
}

async function versionOf(response: Response): Promise<string> {
  return (await response.text()).split(';')[0]!
}

describe('larder/undici after review', () => {
  const origin = new Origin()
  let restoreFetch: () => Promise<void>
  let cache: Larder
  let store: LarderCacheStore
  const dir = tempDir('larder-undici-review')
  const errors: Error[] = []
  before(async () => {
    await origin.start()
    cache = await Larder.open({ dir })
    // A cache passed in: the store's close() then only waits for its writes.
    store = new LarderCacheStore(cache, { errorCallback: (error) => errors.push(error) })
    restoreFetch = cachingFetch(store)
  })
  after(async () => {
    await restoreFetch()
    await store.close()
    await cache.close()
    origin.server.close()
  })

  for (const bytes of [32 * 1024, 1024 * 1024]) {
    for (const where of ['here', 'in another process']) {
      test(
        `a ${bytes / 1024} KiB response still arriving when its URL is POSTed to ${where} is not served afterwards`,
        { timeout: 60_000 },
        async () => {
          const url = `${origin.base}/slow/${bytes}?${bytes}-${where.length}`
          const version = origin.version
          const halfway = origin.firstHalfSent()
          const first = fetch(url)
          await halfway
          if (where === 'here') await (await fetch(url, { method: 'POST', body: 'x' })).text()
          else await runChild('undici-child.ts', dir, url, '--post')
          origin.release()
          assert.equal(await versionOf(await first), `version ${version}`)
          await store.close() // waits for the write undici does not await (the cache stays open)
          const served = origin.served
          const again = await fetch(url)
          assert.equal(await versionOf(again), `version ${version + 1}`, 'the origin was asked, not the store')
          assert.equal(again.headers.get('age'), null)
          assert.equal(origin.served, served + 1)
        },
      )
    }
  }

  test('a streamed response is served to the request made right after the first had its body', async () => {
    for (let i = 0; i < 5; i++) {
      const url = `${origin.base}/big/${256 * 1024}?n=${i}`
      await (await fetch(url)).arrayBuffer()
      const served = origin.served
      const again = await fetch(url)
      await again.arrayBuffer()
      assert.notEqual(again.headers.get('age'), null, `round ${i}: from the store`)
      assert.equal(origin.served, served, `round ${i}: the origin was not asked again`)
    }
  })

  test("over a cache with serializer 'raw', responses are cached, those that vary too, and nothing is reported", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-undici-raw'), serializer: 'raw' })
    const raw = new LarderCacheStore(cache, { errorCallback: (error) => errors.push(error) })
    const rawAgent = new Agent().compose(interceptors.cache({ store: raw }))
    try {
      for (const url of [`${origin.base}/plain/100`, `${origin.base}/varies/100?vary`]) {
        const headers = { 'accept-language': 'en' }
        await (await fetch(url, { dispatcher: rawAgent, headers })).text()
        await raw.close() // the write is done
        const served = origin.served
        const again = await fetch(url, { dispatcher: rawAgent, headers })
        await again.text()
        assert.notEqual(again.headers.get('age'), null, `${url}: from the store`)
        assert.equal(origin.served, served, url)
      }
      assert.deepEqual(errors, [])
    } finally {
      await rawAgent.close()
      await cache.close()
    }
  })
})
