/**
 * A server without tokens listens on loopback only, and a browser on the same machine is on
 * loopback too (found by a review, each case reproduced against a running server first): a
 * web page of another origin could PUT an artifact a later build runs and clear the cache
 * (the CORS preflight allowed every method from any origin), and one whose name was rebound to
 * 127.0.0.1 could also read. Also here, from the same review: a namespace token refused by the
 * cache API had the server parse the JSON body first (up to 64 MiB), and a redirect from the
 * `--origin` server was followed to any address.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { bearer, call, type ErrorAnswer, startServer } from './helpers.ts'

const HASH = 'abcdef0123456789'

/** A request with the headers fetch will not let a caller set (Host), on a fresh connection. */
function raw(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers, agent: false }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, text: Buffer.concat(chunks).toString() }))
    })
    request.on('error', reject)
    request.end(body)
  })
}

test('no token: a request from a web page of another origin, or to a name that is not loopback, is refused (403); build tools and the own origin are served', async () => {
  const { url } = await startServer()
  const port = new URL(url).port
  const artifact = `${url}/v8/artifacts/${HASH}?slug=web`
  const evil = { origin: 'http://evil.example' }
  const octets = { 'content-type': 'application/octet-stream' }

  const preflight = await raw(artifact, 'OPTIONS', { ...evil, 'access-control-request-method': 'PUT' })
  assert.equal(preflight.status, 403)
  assert.equal(preflight.headers['access-control-allow-origin'], undefined, 'no CORS grant')
  const put = await raw(artifact, 'PUT', { ...evil, ...octets }, 'EVIL')
  assert.equal(put.status, 403)
  assert.equal((JSON.parse(put.text) as ErrorAnswer).error.code, 'ERR_FORBIDDEN_ORIGIN')
  assert.equal((await raw(`${url}/cache/all`, 'DELETE', evil)).status, 403, 'nor a clear')
  assert.equal(
    (await raw(`${url}/nx/v1/cache/0123`, 'PUT', { origin: 'null', ...octets }, 'x')).status,
    403,
    'a sandboxed page (Origin: null)',
  )
  assert.equal((await call(artifact)).status, 404, 'nothing was stored')

  // DNS rebinding: the page's own origin, under a name that now resolves to 127.0.0.1. A
  // browser's GET of its own origin carries no Origin, but its Sec-Fetch headers.
  const rebound = { host: `attacker.example:${port}`, origin: `http://attacker.example:${port}` }
  const browserGet = { host: `attacker.example:${port}`, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' }
  assert.equal((await raw(artifact, 'GET', browserGet)).status, 403)
  assert.equal((await raw(artifact, 'PUT', { ...rebound, ...octets }, 'EVIL')).status, 403)

  // Build tools send no Origin (turbo's preflight neither); the dashboard's own page may.
  const turboPreflight = await raw(artifact, 'OPTIONS', { 'access-control-request-method': 'PUT' })
  assert.equal(turboPreflight.status, 200)
  assert.match(String(turboPreflight.headers['access-control-allow-headers']), /Authorization/)
  assert.equal((await raw(artifact, 'PUT', octets, 'ok')).status, 202)
  assert.equal((await raw(artifact, 'PUT', { origin: `http://127.0.0.1:${port}`, ...octets }, 'own')).status, 202, 'the own origin')
  for (const host of [`localhost:${port}`, `LOCALHOST:${port}`, `ci.localhost:${port}`, `127.0.0.1:${port}`])
    assert.equal((await raw(artifact, 'GET', { host, 'sec-fetch-mode': 'cors' })).text, 'own', host)
  // A build tool may name this host anything (an /etc/hosts alias): no browser, no check.
  assert.equal((await raw(artifact, 'GET', { host: `cache.internal:${port}` })).text, 'own')
})

test("no token: another site's <img>, <script> or no-cors fetch (a GET with no Origin) is refused; a navigation is served", async () => {
  // Found by a review: these carry no Origin, and were served, so another site's page learnt a
  // hit from a miss (onload, onerror) and, with --origin, had the server fetch and store.
  const { url } = await startServer()
  const artifact = `${url}/v8/artifacts/${HASH}?slug=web`
  assert.equal((await raw(artifact, 'PUT', { 'content-type': 'application/octet-stream' }, 'ok')).status, 202)
  const script = { 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'script' }
  for (const site of ['cross-site', 'same-site']) {
    const answer = await raw(artifact, 'GET', { ...script, 'sec-fetch-site': site })
    assert.equal(answer.status, 403, site)
    assert.equal((JSON.parse(answer.text) as ErrorAnswer).error.code, 'ERR_FORBIDDEN_ORIGIN')
  }
  assert.equal((await raw(`${url}/api/cache/k`, 'GET', { ...script, 'sec-fetch-site': 'cross-site' })).status, 403, 'the cache API too')
  // The dashboard's own requests, a typed URL, and a link followed (the user sees the answer).
  assert.equal((await raw(artifact, 'GET', { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' })).text, 'ok')
  assert.equal((await raw(artifact, 'GET', { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate' })).text, 'ok')
  const link = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }
  assert.equal((await raw(`${url}/`, 'GET', link)).status, 200)
})

test('with tokens, the token is what guards: a page without it gets 401, and a client that holds it may send an Origin', async () => {
  const { url } = await startServer({ tokens: ['W-token'] })
  const artifact = `${url}/v8/artifacts/${HASH}?slug=web`
  const headers = { origin: 'http://dashboard.example', 'content-type': 'application/octet-stream' }
  assert.equal((await raw(artifact, 'PUT', headers, 'x')).status, 401)
  assert.equal((await raw(artifact, 'PUT', { ...headers, ...bearer('W-token') }, 'x')).status, 202)
})

test('a namespace token the cache API refuses is refused before its JSON body is parsed', async () => {
  const { url } = await startServer({
    tokens: ['SERVER'],
    readTokens: ['READ'],
    namespaceTokens: [
      { namespace: 'nx:web', token: 'NX', access: 'write' },
      { namespace: 'api', token: 'APIREAD', access: 'read' },
      { namespace: 'api', token: 'READ', access: 'read' },
    ],
  })
  // A body that does not parse: parsed first, every one of these was a 400 about the JSON.
  const body = '{"value": not json'
  const json = { 'content-type': 'application/json' }
  for (const [token, code] of [
    ['NX', 'ERR_FORBIDDEN_NAMESPACE'],
    ['APIREAD', 'ERR_READ_ONLY_TOKEN'],
    ['READ', 'ERR_READ_ONLY_TOKEN'],
  ] as const) {
    for (const [method, at] of [
      ['PUT', `${url}/api/cache/k`],
      ['POST', `${url}/api/cache/invalidate`],
    ] as const) {
      const answer = await call(at, { method, body, headers: { ...json, ...bearer(token) } })
      assert.equal(answer.status, 403, `${token} ${method}`)
      assert.equal(answer.json<ErrorAnswer>().error.code, code, `${token} ${method}`)
    }
  }
  const allowed = await call(`${url}/api/cache/k`, { method: 'PUT', body, headers: { ...json, ...bearer('SERVER') } })
  assert.equal(allowed.status, 400, 'a token that may write gets the answer about its body')
})

test('--origin: a redirect is not followed (502), and JSON nested too deeply to store or send is a 502, not a 500', async () => {
  const target = http.createServer((_request, response) => response.end(JSON.stringify({ secret: 1 })))
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve))
  const origin = http.createServer((request, response) => {
    if (request.url?.endsWith('/moved')) {
      response.writeHead(302, { location: `http://127.0.0.1:${(target.address() as { port: number }).port}/secret` })
      return response.end()
    }
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end('['.repeat(100_000) + ']'.repeat(100_000))
  })
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
  let reached = 0
  target.on('request', () => reached++)
  try {
    const { url } = await startServer({ origin: `http://127.0.0.1:${(origin.address() as { port: number }).port}` })
    const moved = await call(`${url}/api/cache/moved`)
    assert.equal(moved.status, 502)
    assert.match(moved.json<ErrorAnswer>().error.message, /302/)
    assert.equal(reached, 0, 'the address the redirect named was never fetched')
    const deep = await call(`${url}/api/cache/deep`)
    assert.equal(deep.status, 502)
    assert.match(deep.json<ErrorAnswer>().error.message, /nested too deeply/)
  } finally {
    target.close()
    origin.close()
  }
})
