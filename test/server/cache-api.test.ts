import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after } from 'node:test'
import { tempDir } from '../helpers.ts'
import {
  type CacheAnswer,
  call,
  type ErrorAnswer,
  eventually,
  metric,
  type MetricsAnswer,
  startServer,
  type StatsAnswer,
} from './helpers.ts'

const json = (body: unknown, method = 'PUT'): RequestInit & { body: string } => ({
  method,
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
})

test('cache API: PUT then GET answers value, hit, source, cached_at and expires_at; a miss is a 404 with hit false', async () => {
  const { url } = await startServer()
  const before = Date.now()
  const put = await call(`${url}/api/cache/user:42`, json({ value: { id: 42, name: 'Ada' }, ttl: 60, tags: ['users'] }))
  assert.equal(put.status, 200)
  assert.equal(put.json<CacheAnswer>().success, true)
  const expires = Date.parse(put.json<CacheAnswer>().expires_at)
  assert.ok(expires >= before + 60_000 && expires <= Date.now() + 60_000)
  const got = (await call(`${url}/api/cache/user:42`)).json<CacheAnswer>()
  assert.deepEqual(got.value, { id: 42, name: 'Ada' })
  assert.equal(got.hit, true)
  assert.equal(got.source, 'memory', 'write-through: the memory tier answers first')
  assert.ok(Date.parse(got.cached_at) >= before)
  assert.equal(got.expires_at, put.json<CacheAnswer>().expires_at)
  const miss = await call(`${url}/api/cache/user:43`)
  assert.equal(miss.status, 404)
  assert.equal(miss.json<CacheAnswer>().hit, false)
  const forever = await call(`${url}/api/cache/forever`, json({ value: 'x' }))
  assert.equal(forever.json<CacheAnswer>().expires_at, null)
})

test('cache API: DELETE /cache/l1 empties the memory tier, so the next hit comes from the file tier', async () => {
  const { url } = await startServer()
  await call(`${url}/api/cache/k`, json({ value: 1 }))
  assert.equal((await call(`${url}/api/cache/k`)).json<CacheAnswer>().source, 'memory')
  assert.deepEqual((await call(`${url}/cache/l1`, { method: 'DELETE' })).json(), { success: true, cleared: 'l1' })
  assert.equal((await call(`${url}/api/cache/k`)).json<CacheAnswer>().source, 'file')
  assert.equal((await call(`${url}/api/cache/k`)).json<CacheAnswer>().source, 'memory', 'promoted by the disk hit')
  const stats = (await call(`${url}/cache/stats`)).json<StatsAnswer>()
  assert.equal(stats.l1.entries, 1)
  assert.equal(stats.l2.enabled, false)
  assert.equal(stats.file.entries, 1)
  assert.equal(stats.hits, 3)
})

test('cache API: a value expires after its ttl (seconds)', async () => {
  const { url } = await startServer({ memoryEntries: 0 })
  await call(`${url}/api/cache/short`, json({ value: 'soon gone', ttl: 0.05 }))
  await new Promise((resolve) => setTimeout(resolve, 120))
  assert.equal((await call(`${url}/api/cache/short`)).status, 404)
})

test('cache API: DELETE removes a key; invalidate by keys, by pattern and by tags', async () => {
  const { url } = await startServer()
  for (const key of ['user:1', 'user:2', 'user:3', 'order:1', 'order:2']) {
    await call(`${url}/api/cache/${key}`, json({ value: key, tags: [key.split(':')[0]!] }))
  }
  assert.deepEqual((await call(`${url}/api/cache/order:2`, { method: 'DELETE' })).json(), { success: true, key: 'order:2', deleted: true })
  assert.equal((await call(`${url}/api/cache/order:2`)).status, 404)
  assert.deepEqual((await call(`${url}/api/cache/invalidate`, json({ keys: ['user:1', 'nope'] }, 'POST'))).json(), {
    success: true,
    invalidated: 1,
  })
  assert.equal((await call(`${url}/api/cache/user:1`)).status, 404)
  assert.equal((await call(`${url}/api/cache/user:2`)).json<CacheAnswer>().source, 'memory')
  assert.deepEqual((await call(`${url}/api/cache/invalidate`, json({ pattern: 'user:*' }, 'POST'))).json(), {
    success: true,
    invalidated: 2,
  })
  assert.equal((await call(`${url}/api/cache/user:2`)).status, 404, 'the memory tier does not serve what the pattern removed')
  assert.equal((await call(`${url}/api/cache/user:3`)).status, 404)
  assert.equal((await call(`${url}/api/cache/order:1`)).status, 200)
  const tags = (await call(`${url}/api/cache/invalidate`, json({ tags: ['order'] }, 'POST'))).json<CacheAnswer>()
  assert.equal(tags.success, true)
  assert.equal((await call(`${url}/api/cache/order:1`)).status, 404)
  const bad = await call(`${url}/api/cache/invalidate`, json({ keys: ['a'], tags: ['b'] }, 'POST'))
  assert.equal(bad.status, 400)
  // Each tag is a stamp written to disk at once: 100,000 in one request held the server 12 s
  // and wrote 789 MiB, so more than 256 are a 400 naming the field, and none is invalidated.
  await call(`${url}/api/cache/tagged:0`, json({ value: 0, tags: ['t0'] }))
  const flood = await call(`${url}/api/cache/invalidate`, json({ tags: Array.from({ length: 257 }, (_, i) => `t${i}`) }, 'POST'))
  assert.equal(flood.status, 400)
  assert.match(flood.text, /tags.*at most 256/)
  assert.equal((await call(`${url}/api/cache/tagged:0`)).status, 200)
  // A pattern nested thousands of braces deep is a 400 naming the pattern, not a 500 (the
  // parser's recursion overflowed the stack); one nested a few levels still matches.
  const deep = await call(`${url}/api/cache/invalidate`, json({ pattern: '{'.repeat(5000) + 'a' + '}'.repeat(5000) }, 'POST'))
  assert.equal(deep.status, 400)
  assert.match(deep.text, /pattern.*nested deeper than 32/)
  await call(`${url}/api/cache/nest:1`, json({ value: 1 }))
  assert.equal(
    (await call(`${url}/api/cache/invalidate`, json({ pattern: '{{{nest}}}:*' }, 'POST'))).json<{ invalidated: number }>().invalidated,
    1,
  )
})

test('cache API: bad bodies and keys are 400s naming the field, and nothing is stored', async () => {
  const { url } = await startServer()
  const cases: [string, RequestInit & { body: string }, RegExp][] = [
    [`${url}/api/cache/k`, json({ ttl: 5 }), /value/],
    [`${url}/api/cache/k`, json({ value: 1, ttl: -1 }), /ttl/],
    [`${url}/api/cache/k`, json({ value: 1, ttl: 'soon' }), /ttl/],
    [`${url}/api/cache/k`, json({ value: 1, tags: 'users' }), /tags/],
    [`${url}/api/cache/k`, json({ value: 1, extra: true }), /extra/],
    [`${url}/api/cache/k`, { method: 'PUT', body: '{not json', headers: { 'content-type': 'application/json' } }, /JSON/i],
    [`${url}/api/cache/${'k'.repeat(1100)}`, json({ value: 1 }), /key/],
    [`${url}/api/cache/a%01b`, json({ value: 1 }), /key/],
  ]
  for (const [at, init, names] of cases) {
    const answer = await call(at, init)
    assert.equal(answer.status, 400, init.body)
    assert.match(answer.json<ErrorAnswer>().error.message, names)
    assert.doesNotMatch(answer.text, /\n\s+at /, 'no stack trace')
  }
  assert.equal((await call(`${url}/api/cache/k`)).status, 404)
})

test('cache API: a route that reads no body takes a request with Content-Type: application/json and no body; a PUT without one is a 400 naming value', async () => {
  const { url } = await startServer()
  const header = { 'content-type': 'application/json' }
  assert.equal((await call(`${url}/api/cache/k`, json({ value: 1 }))).status, 200)
  const deleted = await call(`${url}/api/cache/k`, { method: 'DELETE', headers: header })
  assert.equal(deleted.status, 200, deleted.text)
  assert.equal(deleted.json<CacheAnswer>().deleted, true)
  assert.equal((await call(`${url}/api/cache/k`)).status, 404)
  for (const [method, path] of [
    ['DELETE', '/cache/l1'],
    ['DELETE', '/cache/all'],
    ['POST', '/cache/stats/reset'],
  ]) {
    const answer = await call(`${url}${path}`, { method, headers: header })
    assert.equal(answer.status, 200, `${method} ${path}: ${answer.text}`)
  }
  const empty = await call(`${url}/api/cache/k`, { method: 'PUT', headers: header })
  assert.equal(empty.status, 400)
  assert.equal(empty.json<ErrorAnswer>().error.code, 'ERR_INVALID_VALUE')
  assert.match(empty.json<ErrorAnswer>().error.message, /value/)
  assert.equal((await call(`${url}/api/cache/k`)).status, 404, 'nothing was stored')
})

test('cache API metrics: hits, misses, hit_rate, sets, deletes, l1_size and the l2 figures; reset zeroes them', async () => {
  const { url } = await startServer()
  await call(`${url}/api/cache/a`, json({ value: 1 }))
  await call(`${url}/api/cache/b`, json({ value: 2 }))
  await call(`${url}/api/cache/a`)
  await call(`${url}/api/cache/a`)
  await call(`${url}/api/cache/zzz`)
  await call(`${url}/api/cache/b`, { method: 'DELETE' })
  const m = (await call(`${url}/api/cache/metrics`)).json<MetricsAnswer>()
  assert.equal(m.hits, 2)
  assert.equal(m.misses, 1)
  assert.equal(m.hit_rate, 2 / 3)
  assert.equal(m.sets, 2)
  assert.equal(m.deletes, 1)
  assert.equal(m.evictions, 0)
  assert.equal(m.l1_size, 1)
  assert.equal(m.l2_hits, 0)
  assert.equal(m.l2_misses, 0)
  assert.equal(m.l2_errors, 0)
  assert.equal(m.protocols.api.hits, 2)
  assert.equal((await call(`${url}/cache/stats/reset`, { method: 'POST' })).status, 200)
  const zero = (await call(`${url}/api/cache/metrics`)).json<MetricsAnswer>()
  assert.equal(zero.hits, 0)
  assert.equal(zero.sets, 0)
})

test('cache API: DELETE /cache/all removes every value; DELETE /cache/l2 has no shared tier to clear', async () => {
  const { url } = await startServer()
  await call(`${url}/api/cache/a`, json({ value: 1 }))
  assert.equal((await call(`${url}/cache/l2`, { method: 'DELETE' })).json<CacheAnswer>().success, true)
  assert.equal((await call(`${url}/api/cache/a`)).status, 200)
  assert.deepEqual((await call(`${url}/cache/all`, { method: 'DELETE' })).json(), { success: true, cleared: 'all' })
  assert.equal((await call(`${url}/api/cache/a`)).status, 404)
})

/** An origin that counts its requests and answers after `delay` ms. */
async function startOrigin(
  answer: (key: string, n: number) => { status: number; body: string; headers?: Record<string, string> },
  delay = 100,
): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = []
  const server = http.createServer((request, response) => {
    const key = decodeURIComponent(request.url!.slice(1))
    requests.push(key)
    const a = answer(key, requests.length)
    setTimeout(() => response.writeHead(a.status, { 'content-type': 'application/json', ...a.headers }).end(a.body), delay)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

test('origin: concurrent misses of one key fetch it once (singleflight), cache it and answer source origin', async () => {
  const origin = await startOrigin((key) => ({ status: 200, body: JSON.stringify({ fetched: key }) }))
  const { url } = await startServer({ origin: origin.url })
  const answers = await Promise.all(Array.from({ length: 20 }, () => call(`${url}/api/cache/${encodeURIComponent('user 7/x')}`)))
  assert.deepEqual(origin.requests, ['user 7/x'])
  for (const a of answers) {
    assert.equal(a.status, 200)
    assert.deepEqual(a.json<CacheAnswer>().value, { fetched: 'user 7/x' })
  }
  // Those that joined the fetch answer 'origin'; on a loaded machine a request can reach the
  // server after the fetch ended (100 ms), and is then a hit of what it stored: never a fetch.
  const sources = answers.map((a) => a.json<CacheAnswer>().source)
  assert.ok(sources.includes('origin'), sources.join())
  assert.ok(
    sources.every((source) => source === 'origin' || source === 'memory'),
    sources.join(),
  )
  const later = (await call(`${url}/api/cache/${encodeURIComponent('user 7/x')}`)).json<CacheAnswer>()
  assert.equal(later.hit, true)
  assert.equal(later.source, 'memory')
  assert.equal(origin.requests.length, 1)
  const m = (await call(`${url}/api/cache/metrics`)).json<MetricsAnswer>()
  assert.equal(m.origin_fetches, 1)
})

test('origin: Cache-Control max-age sets the ttl; no-store is served but not cached', async () => {
  const origin = await startOrigin(
    (key) => ({
      status: 200,
      body: JSON.stringify(key),
      headers: { 'cache-control': key === 'nostore' ? 'no-store' : 'public, max-age=30' },
    }),
    0,
  )
  const { url } = await startServer({ origin: origin.url })
  const before = Date.now()
  const first = (await call(`${url}/api/cache/aged`)).json<CacheAnswer>()
  const expires = Date.parse(first.expires_at)
  assert.ok(expires >= before + 30_000 && expires <= Date.now() + 30_000)
  await call(`${url}/api/cache/nostore`)
  await call(`${url}/api/cache/nostore`)
  assert.deepEqual(origin.requests, ['aged', 'nostore', 'nostore'])
})

test('origin: an origin error is a 502 with a clear body, never cached (the next miss asks again)', async () => {
  const origin = await startOrigin((_key, n) => (n === 1 ? { status: 500, body: 'boom' } : { status: 200, body: '"ok"' }), 0)
  const { url } = await startServer({ origin: origin.url })
  const failed = await call(`${url}/api/cache/k`)
  assert.equal(failed.status, 502)
  assert.equal(failed.json<ErrorAnswer>().error.code, 'ERR_ORIGIN')
  assert.match(failed.json<ErrorAnswer>().error.message, /origin answered 500/)
  const ok = await call(`${url}/api/cache/k`)
  assert.equal(ok.status, 200)
  assert.equal(ok.json<CacheAnswer>().value, 'ok')
  assert.equal(origin.requests.length, 2)
  const unreachable = await startServer({ origin: 'http://127.0.0.1:9' })
  const down = await call(`${unreachable.url}/api/cache/k`)
  assert.equal(down.status, 502)
  assert.match(down.json<ErrorAnswer>().error.message, /could not be reached/)
})

test('origin: a chunked answer with no length is read only up to the 8 MiB limit, then a 502 (it was read whole: gigabytes, then a bare 500)', async () => {
  // An origin that streams without end, a chunk at a time, and counts what it could send.
  let sent = 0
  let closed = false
  const chunk = Buffer.alloc(64 * 1024, 'x')
  const endless = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' })
    const more = (): void => {
      while (!closed && response.write(chunk)) sent += chunk.length
      if (!closed) response.once('drain', more)
    }
    response.on('close', () => (closed = true))
    more()
  })
  await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve))
  after(() => endless.close())
  const { url } = await startServer({ origin: `http://127.0.0.1:${(endless.address() as AddressInfo).port}` })
  const answer = await call(`${url}/api/cache/big`)
  assert.equal(answer.status, 502)
  assert.equal(answer.json<ErrorAnswer>().error.code, 'ERR_ORIGIN')
  assert.match(answer.json<ErrorAnswer>().error.message, /over the 8388608-byte limit/)
  for (let i = 0; i < 200 && !closed; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.ok(closed, 'the origin connection was let go')
  assert.ok(sent < 64 * 1024 * 1024, `the server stopped reading early (${sent} bytes sent)`)
  assert.equal((await call(`${url}/api/cache/big`, json({ value: 1 }))).status, 200, 'the server serves on')
})

test('origin: the keys "." and ".." are refused (the origin URL would resolve them to its own path or its parent); nothing reaches the origin', async () => {
  const origin = await startOrigin(() => ({ status: 200, body: '"from the origin"' }), 0)
  const { url } = await startServer({ origin: origin.url })
  // Sent as written (fetch, and a URL string given to http.request, resolve dot segments first).
  const raw = (method: string, path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const { hostname, port } = new URL(url)
      const headers = method === 'PUT' ? { 'content-type': 'application/json' } : {}
      const request = http.request({ hostname, port, path, method, headers }, (response) => {
        let body = ''
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
        response.on('end', () => resolve({ status: response.statusCode!, body }))
      })
      request.on('error', reject).end(method === 'PUT' ? '{"value":1}' : undefined)
    })
  for (const key of ['%2e', '%2e%2e', '%2E%2e']) {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const answer = await raw(method, `/api/cache/${key}`)
      assert.equal(answer.status, 400, `${method} ${key}`)
      assert.equal((JSON.parse(answer.body) as ErrorAnswer).error.code, 'ERR_INVALID_KEY')
    }
  }
  assert.deepEqual(origin.requests, [])
  assert.equal(
    (await call(`${url}/api/cache/..x`)).json<CacheAnswer>().value,
    'from the origin',
    'a key that only begins with dots is a key',
  )
})

test('origin: a URL with a user or password is refused when the server is made, and no answer ever shows it', async () => {
  const { createServer } = await import('../../src/server/app.ts')
  const { serveOptions } = await import('../../src/server/options.ts')
  await assert.rejects(
    createServer(serveOptions({ dir: tempDir('larder-origin-credentials'), origin: 'http://svc:S3CRET@127.0.0.1:9/base' })),
    (error: Error) => /user or password/.test(error.message) && !error.message.includes('S3CRET'),
  )
})

test('cache API: the key "metrics" cannot be stored or deleted (GET /api/cache/metrics answers the figures, never a value)', async () => {
  const { url } = await startServer()
  for (const method of ['PUT', 'DELETE']) {
    const answer = await call(`${url}/api/cache/metrics`, method === 'PUT' ? json({ value: 'mine' }) : { method })
    assert.equal(answer.status, 400, method)
    assert.match(answer.json<ErrorAnswer>().error.message, /"metrics" is taken/)
  }
  assert.equal(typeof (await call(`${url}/api/cache/metrics`)).json<MetricsAnswer>().hits, 'number')
})

test('cache API: an entry another application wrote with a serializer of its own is a 409 with one line, not a 500; a PUT replaces it', async () => {
  const { url, dir } = await startServer({ memoryEntries: 0 })
  const { Larder } = await import('../../src/index.ts')
  const other = await Larder.open({
    dir,
    namespace: 'api',
    maintenance: false,
    serializer: {
      serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
      deserialize: (bytes: Buffer) => JSON.parse(String(bytes)) as unknown,
    },
  })
  await other.set('custom', { value: 1 })
  await other.close()
  const answer = await call(`${url}/api/cache/custom`)
  assert.equal(answer.status, 409)
  assert.equal(answer.json<ErrorAnswer>().error.code, 'ERR_DESERIALIZE')
  assert.doesNotMatch(answer.text, /\n\s+at /, 'no stack trace')
  assert.equal((await call(`${url}/api/cache/custom`, json({ value: 2 }))).status, 200)
  assert.equal((await call(`${url}/api/cache/custom`)).json<CacheAnswer>().value, 2)
})

test('cache API: the values GET answers (hits and the origin’s) are counted in larder_bytes_out_total{protocol="api"}', async () => {
  const origin = await startOrigin((key) => ({ status: 200, body: JSON.stringify({ from: key }) }), 0)
  const { url } = await startServer({ origin: origin.url })
  await call(`${url}/api/cache/a`, json({ value: { n: 1 } }))
  let answered = 0
  for (let i = 0; i < 4; i += 1) {
    const hit = await call(`${url}/api/cache/a`)
    assert.equal(hit.status, 200)
    answered += Buffer.byteLength(hit.text)
  }
  const fetched = await call(`${url}/api/cache/b`)
  assert.equal(fetched.json<CacheAnswer>().source, 'origin')
  answered += Buffer.byteLength(fetched.text)
  assert.equal((await call(`${url}/api/cache/nothing-here`, { method: 'DELETE' })).status, 200)
  // Counted once each reply went out whole: the last one may be counted just after its client read it.
  let line: string | undefined
  await eventually(async () => {
    line = (await call(`${url}/metrics`)).text.split('\n').find((l) => l.startsWith('larder_bytes_out_total{protocol="api"}'))
    return line !== undefined && Number(line.split(' ')[1]) === answered
  }, `bytes out ${answered}`)
  assert.equal(line, `larder_bytes_out_total{protocol="api"} ${answered}`)
})

test('cache API: a HEAD counts no hit, miss or bytes out (it sends no value); a chunked PUT counts the bytes it sent in', async () => {
  const { url } = await startServer()
  const body = JSON.stringify({ value: 'a'.repeat(5000) })
  await call(`${url}/api/cache/h1`, { method: 'PUT', body, headers: { 'content-type': 'application/json' } })
  assert.equal(await metric(url, 'larder_bytes_in_total{protocol="api"}'), body.length)
  const hits = await metric(url, 'larder_cache_hits_total{protocol="api"')
  const misses = await metric(url, 'larder_cache_misses_total{protocol="api"}')
  for (let i = 0; i < 3; i++) assert.equal((await fetch(`${url}/api/cache/h1`, { method: 'HEAD' })).status, 200)
  assert.equal((await fetch(`${url}/api/cache/nothing`, { method: 'HEAD' })).status, 404)
  assert.equal(await metric(url, 'larder_cache_hits_total{protocol="api"'), hits)
  assert.equal(await metric(url, 'larder_cache_misses_total{protocol="api"}'), misses)
  // A GET after them: once its bytes are counted, the HEADs' (counted before, if at all) are too.
  const got = await call(`${url}/api/cache/h1`)
  await eventually(async () => (await metric(url, 'larder_bytes_out_total{protocol="api"}')) > 0, 'the GET counted')
  assert.equal(await metric(url, 'larder_bytes_out_total{protocol="api"}'), Buffer.byteLength(got.text))
  // Sent in two chunks with no Content-Length: counted as received, not as 0.
  const status = await new Promise<number>((resolve, reject) => {
    const request = http.request(`${url}/api/cache/h2`, { method: 'PUT', headers: { 'content-type': 'application/json' } })
    request.on('response', (response) => resolve(response.resume().statusCode!))
    request.on('error', reject)
    request.write(body.slice(0, 1000))
    request.end(body.slice(1000))
  })
  assert.equal(status, 200)
  assert.equal(await metric(url, 'larder_bytes_in_total{protocol="api"}'), 2 * body.length)
  assert.equal((await call(`${url}/api/cache/h2`)).json<CacheAnswer>().value, 'a'.repeat(5000))
})

test('origin: the origin’s answer is hit false, source origin; one served but not stored (no-store) has no cached_at or expires_at', async () => {
  const origin = await startOrigin(
    (key) => ({
      status: 200,
      body: JSON.stringify({ from: key }),
      headers: { 'cache-control': key === 'nostore' ? 'no-store' : 'max-age=120' },
    }),
    0,
  )
  const { url } = await startServer({ origin: origin.url })
  const before = Date.now()
  const stored = (await call(`${url}/api/cache/aged`)).json<CacheAnswer>()
  assert.equal(stored.hit, false)
  assert.equal(stored.source, 'origin')
  assert.ok(Date.parse(stored.cached_at) >= before)
  assert.ok(Date.parse(stored.expires_at) >= before + 120_000)
  const again = (await call(`${url}/api/cache/aged`)).json<CacheAnswer>()
  assert.equal(again.hit, true)
  assert.equal(again.cached_at, stored.cached_at)
  const served = await call(`${url}/api/cache/nostore`)
  assert.equal(served.status, 200)
  const answer = served.json<CacheAnswer>()
  assert.deepEqual(answer.value, { from: 'nostore' })
  assert.equal(answer.hit, false)
  assert.equal(answer.source, 'origin')
  assert.equal(answer.cached_at, null)
  assert.equal(answer.expires_at, null)
})
