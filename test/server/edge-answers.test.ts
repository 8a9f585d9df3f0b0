/**
 * Answers at the edges of `larder serve` that an adversarial review found wrong (each case
 * reproduced against the server before it was fixed): a ttl past what a date holds, read-only
 * clients naming teams until the server refused new ones, a CAS name that skipped its check,
 * log lines naming artifact hashes and keys, fastify's own error shapes, and JSON bodies a read
 * token could make the server parse whole.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as sleepMs } from 'node:timers/promises'
import { API_MEMORY_BYTES, MAX_NAMESPACES, Namespaces } from '../../src/server/namespaces.ts'
import { createServer } from '../../src/server/app.ts'
import { serveOptions } from '../../src/server/options.ts'
import { tempDir } from '../helpers.ts'
import { bearer, call, type ErrorAnswer, eventually, metric, startServer } from './helpers.ts'

const json = { 'content-type': 'application/json' }
const octets = { 'content-type': 'application/octet-stream' }

test('a cache API ttl beyond 100 years is a 400 naming ttl, and nothing is stored; a tiny positive ttl still expires', async () => {
  const { url } = await startServer()
  for (const ttl of [1e16, 8.64e12, 1e300]) {
    const put = await call(`${url}/api/cache/session`, { method: 'PUT', headers: json, body: JSON.stringify({ value: 'v', ttl }) })
    assert.equal(put.status, 400, `ttl ${ttl}`)
    assert.equal(put.json<ErrorAnswer>().error.code, 'ERR_INVALID_TTL')
    assert.match(put.json<ErrorAnswer>().error.message, /ttl/)
  }
  assert.equal((await call(`${url}/api/cache/session`)).status, 404, 'nothing was stored')
  const tiny = await call(`${url}/api/cache/tiny`, { method: 'PUT', headers: json, body: JSON.stringify({ value: 'v', ttl: 1e-9 }) })
  assert.equal(tiny.status, 200)
  assert.notEqual(tiny.json<{ expires_at: string | null }>().expires_at, null, 'a positive ttl is never "never expires"')
})

test('reads naming teams that never wrote open nothing: a read token cannot use up the team namespaces, nor fail /readyz', async () => {
  const { url, dir } = await startServer({ tokens: ['w'], readTokens: ['r'] })
  const namespaceDirs = (): number => (fs.existsSync(path.join(dir, 'v1')) ? fs.readdirSync(path.join(dir, 'v1')).length : 0)
  const before = namespaceDirs()
  for (let i = 0; i < MAX_NAMESPACES + 10; i++) {
    const team = `junk${i}`
    const at = i % 2 === 0 ? `${url}/v8/artifacts/abc0123?slug=${team}` : `${url}/nx/${team}/v1/cache/0123`
    assert.equal((await call(at, { headers: bearer('r') })).status, 404, team)
  }
  const query = await call(`${url}/v8/artifacts?slug=junk-q`, {
    method: 'POST',
    headers: { ...json, ...bearer('r') },
    body: JSON.stringify({ hashes: ['abc0123'] }),
  })
  assert.deepEqual(query.json(), { abc0123: null })
  assert.equal(namespaceDirs(), before, 'no namespace directory was made')
  const upload = await call(`${url}/v8/artifacts/abc0123?slug=real`, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('w') } })
  assert.equal(upload.status, 202, 'a new team can still upload')
  assert.equal((await call(`${url}/v8/artifacts/abc0123?slug=real`, { headers: bearer('r') })).text, 'x')
  assert.equal((await call(`${url}/readyz`)).status, 200)
})

test("the server's own namespaces open whatever the teams took", async () => {
  const { url } = await startServer()
  for (let i = 0; i < MAX_NAMESPACES; i++) {
    const put = await call(`${url}/v8/artifacts/abc0123?slug=t${i}`, { method: 'PUT', body: 'x', headers: octets })
    assert.equal(put.status, 202)
  }
  const more = await call(`${url}/v8/artifacts/abc0123?slug=one-more`, { method: 'PUT', body: 'x', headers: octets })
  assert.equal(more.status, 202, 'past the bound, an idle team is closed to make room')
  assert.equal((await call(`${url}/v1/cache/0123`, { method: 'PUT', body: 'x', headers: octets })).status, 200, 'nx')
  assert.equal((await call(`${url}/ccache/ab/cdef`, { method: 'PUT', body: 'x', headers: octets })).status, 200, 'ccache')
  const api = await call(`${url}/api/cache/k`, { method: 'PUT', headers: json, body: JSON.stringify({ value: 1 }) })
  assert.equal(api.status, 200, 'the cache API')
  assert.equal((await call(`${url}/readyz`)).status, 200)
})

/** A request left open: the upload's headers and `sent` bytes of its body, never the rest. */
function heldUpload(url: string, length: number, sent: Buffer): { request: http.ClientRequest; answer: Promise<number> } {
  const request = http.request(url, { method: 'PUT', headers: { ...octets, 'content-length': String(length) } })
  const answer = new Promise<number>((resolve, reject) => {
    request.on('response', (response) => {
      response.resume()
      resolve(response.statusCode!)
    })
    request.on('error', reject)
  })
  request.write(sent)
  return { request, answer }
}

test('past --max-teams, the idle team used least recently is closed to make room (its artifacts stay), never one a request is using; only when every team is busy is a new one refused', async () => {
  const first = await startServer({ maxTeams: 3 })
  const put = (url: string, team: string, body: string | Buffer = 'x') =>
    call(`${url}/v8/artifacts/abc0123?slug=${team}`, { method: 'PUT', body, headers: octets })
  const get = (url: string, team: string) => call(`${url}/v8/artifacts/abc0123?slug=${team}`)
  assert.equal((await put(first.url, 'early')).status, 202)
  assert.equal((await call(`${first.url}/nx/early/v1/cache/0123`, { method: 'PUT', body: 'x', headers: octets })).status, 200)

  // Another server on the directory (a restart) fills its bound with other teams first.
  const second = await startServer({ dir: first.dir, maxTeams: 3 })
  for (const team of ['a', 'b', 'c', 'd']) assert.equal((await put(second.url, team, team)).status, 202, team)
  // Past the bound, each team still answers: the one used least recently is closed for it.
  assert.equal((await get(second.url, 'early')).text, 'x', 'turbo GET of a team the server had not opened')
  assert.equal((await call(`${second.url}/nx/early/v1/cache/0123`)).text, 'x', 'nx GET')
  for (const team of ['a', 'b', 'c', 'd']) assert.equal((await get(second.url, team)).text, team, `${team} reopened`)
  const teamsClosed = async (): Promise<number> =>
    Number(/^larder_team_namespaces_closed_total (\d+)/m.exec((await call(`${second.url}/metrics`)).text)?.[1])
  const closed = await teamsClosed()
  assert.ok(closed >= 6, `idle teams closed to make room: ${closed}`)

  // A download in progress holds its team: teams cycling past the bound do not close it.
  const big = Buffer.alloc(8 * 1024 * 1024, 7)
  assert.equal((await put(second.url, 'big', big)).status, 202)
  const download = await fetch(`${second.url}/v8/artifacts/abc0123?slug=big`)
  assert.equal(download.status, 200)
  for (const team of ['e', 'f', 'g', 'h', 'a', 'b']) assert.equal((await put(second.url, team)).status, 202, team)
  const got = Buffer.from(await download.arrayBuffer())
  assert.ok(got.equals(big), 'the download in progress finished whole')

  // Three uploads in progress hold three teams: a fourth team's upload is refused, its read a
  // miss (never a 5xx: nx fails its run on one); when they end, it is served again.
  const closedBefore = await teamsClosed()
  const held = ['p', 'q', 'r'].map((team) => heldUpload(`${second.url}/v8/artifacts/abc0123?slug=${team}`, 2, Buffer.from('p')))
  // Each held upload has its team once the server opened it (closing an idle one): waited for,
  // not slept on (300 ms was not always enough under load).
  await eventually(async () => (await teamsClosed()) >= closedBefore + 3, 'the three held uploads opened their teams')
  const refused = await put(second.url, 'a')
  assert.equal(refused.status, 507, 'every team busy: a new one is refused')
  assert.match(refused.json<ErrorAnswer>().error.message, /already serves 3 team namespaces, each answering a request now .*--max-teams/)
  assert.equal((await get(second.url, 'a')).status, 404, 'turbo GET: a miss')
  assert.equal((await call(`${second.url}/v8/artifacts/abc0123?slug=a`, { method: 'HEAD' })).status, 404, 'turbo HEAD: a miss')
  const query = await call(`${second.url}/v8/artifacts?slug=a`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ hashes: ['abc0123'] }),
  })
  assert.deepEqual(query.json(), { abc0123: null })
  assert.equal((await call(`${second.url}/nx/early/v1/cache/0123`)).status, 404, 'nx GET: a miss')
  const nxPut = await call(`${second.url}/nx/zz/v1/cache/0123`, { method: 'PUT', body: 'x', headers: octets })
  assert.equal(nxPut.status, 403, 'nx PUT: a skipped upload (it was a 507, on which nx fails its run)')
  assert.equal(nxPut.headers.get('content-type'), 'text/plain')
  for (const { request } of held) request.end('q')
  assert.deepEqual(await Promise.all(held.map((h) => h.answer)), [202, 202, 202])
  assert.equal((await get(second.url, 'a')).text, 'x', 'served again once the uploads ended')
  assert.equal((await get(second.url, 'p')).text, 'pq')
})

test('a Bazel CAS name that is not a sha256 is a 400, never stored unchecked', async () => {
  const { url } = await startServer()
  for (const name of ['A'.repeat(64), 'foo', 'ab'.repeat(31)]) {
    const put = await call(`${url}/cas/${name}`, { method: 'PUT', body: 'not-the-content', headers: octets })
    assert.equal(put.status, 400, name)
    assert.equal(put.json<ErrorAnswer>().error.code, 'ERR_INVALID_HASH')
    assert.equal((await call(`${url}/cas/${name}`)).status, 400)
  }
})

test('log lines name routes, never artifact hashes or cache keys', async () => {
  const { url, logs } = await startServer({ logRequests: true })
  await call(`${url}/v8/artifacts/secrethash01?slug=t`, { method: 'PUT', body: 'x', headers: octets })
  await call(`${url}/v8/artifacts/secrethash01?slug=t`)
  await call(`${url}/api/cache/user:alice@example.com`, { method: 'PUT', headers: json, body: JSON.stringify({ value: 1 }) })
  await call(`${url}/api/cache/user:alice@example.com`)
  assert.ok(
    logs.some((line) => line.startsWith('GET /v8/artifacts/:hash 200')),
    logs.join('\n'),
  )
  assert.ok(
    logs.some((line) => line.startsWith('PUT /api/cache/:key 200')),
    logs.join('\n'),
  )
  for (const line of logs) assert.doesNotMatch(line, /secrethash01|alice/)
})

test("a URL that does not decode, or a key too long, answers in the server's own error shape without repeating the URL", async () => {
  const { url } = await startServer()
  const bad = await call(`${url}/api/cache/%ff%fe`)
  assert.equal(bad.status, 400)
  assert.equal(bad.json<ErrorAnswer>().error.code, 'ERR_BAD_URL')
  const long = 'k'.repeat(3000)
  const tooLong = await call(`${url}/api/cache/${long}`)
  assert.equal(tooLong.status, 414)
  assert.equal(tooLong.json<ErrorAnswer>().error.code, 'ERR_URL_TOO_LONG')
  assert.doesNotMatch(tooLong.text, /kkkkkkkk/)
})

test('a URL that does not decode, or a key too long, has its request log line and its place in the duration histogram, as every request has', async () => {
  const { url, logs } = await startServer({ logRequests: true })
  assert.equal((await call(`${url}/api/cache/%ff%fe`)).status, 400)
  assert.equal((await call(`${url}/api/cache/${'k'.repeat(3000)}`)).status, 414)
  await eventually(() => logs.length >= 2, 'two request log lines')
  assert.deepEqual(
    logs.map((line) => line.replace(/ [\d.]+ms$/, '')),
    ['GET (no route) 400', 'GET (no route) 414'],
  )
  for (const status of ['400', '414'])
    assert.equal(await metric(url, `larder_http_request_duration_seconds_count{method="GET",route="unmatched",status="${status}"}`), 1)
})

test("a request Node's parser refuses answers in the server's error shape too", async () => {
  const { url } = await startServer()
  const { port } = new URL(url)
  const raw = (request: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.end(request))
      let text = ''
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()))
      socket.on('end', () => resolve(text))
      socket.on('error', reject)
    })
  const negative = await raw('PUT /api/cache/k HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n')
  assert.match(negative, /^HTTP\/1\.1 400/)
  assert.match(negative, /\{"error":\{"code":"ERR_BAD_REQUEST","message":"[^"]+"\}\}$/)
  const headers = await raw(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(80 * 1024)}\r\n\r\n`)
  assert.match(headers, /^HTTP\/1\.1 431/)
  assert.match(headers, /"code":"ERR_HEADERS_TOO_LARGE"/)
})

test("headers that trickle in past Node's headersTimeout are a 408 in the server's error shape, not a 400 'does not parse'", async () => {
  const server = await createServer(serveOptions({ dir: path.join(tempDir('larder-serve'), 'cache'), port: 0, rateLimit: 0 }), () => {})
  // Node's own timer (60 s, checked every 30 s by default), shortened for the test before listening.
  server.app.server.headersTimeout = 300
  // (read when it starts listening; not in @types/node as a property)
  ;(server.app.server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = 50
  try {
    const { port } = await server.listen()
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\n'))
      // A header line now and then: never idle, never complete.
      const trickle = setInterval(() => socket.writable && socket.write('x-a: b\r\n'), 50)
      let text = ''
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()))
      socket.on('close', () => {
        clearInterval(trickle)
        resolve(text)
      })
      socket.on('error', () => {}) // a header line written after the answer closed it: what was read is the answer
    })
    assert.match(answer, /^HTTP\/1\.1 408/)
    assert.match(answer, /\{"error":\{"code":"ERR_REQUEST_TIMEOUT","message":"[^"]+"\}\}$/)
  } finally {
    await server.close()
  }
})

test('a request that arrives while the server stops is refused in its own shape: turbo a JSON 503, nx a text/plain miss (never a 5xx), a URL the router refuses a 503 too', async () => {
  const { url, server } = await startServer()
  const { port } = new URL(url)
  const connect = async (): Promise<{ socket: net.Socket; answer: Promise<string> }> => {
    const socket = net.connect(Number(port), '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    let text = ''
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()))
    socket.on('error', () => {})
    return { socket, answer: new Promise((resolve) => socket.once('close', () => resolve(text))) }
  }
  // Each connection is busy with a request whose headers are not all there when the stop begins.
  const nx = await connect()
  nx.socket.write('GET /v1/cache/123 HTTP/1.1\r\nhost: x\r\n')
  const turbo = await connect()
  turbo.socket.write('GET /v8/artifacts/abc0123?slug=team HTTP/1.1\r\nhost: x\r\n')
  const unrouted = await connect()
  unrouted.socket.write('GET /api/cache/%ff HTTP/1.1\r\nhost: x\r\n')
  await sleepMs(100)
  const stopped = server.close()
  await sleepMs(100)
  for (const { socket } of [nx, turbo, unrouted]) socket.write('\r\n')
  const [nxAnswer, turboAnswer, unroutedAnswer] = await Promise.all([nx.answer, turbo.answer, unrouted.answer])
  await stopped
  assert.match(unroutedAnswer, /^HTTP\/1\.1 503/)
  assert.match(unroutedAnswer, /\{"error":\{"code":"ERR_STOPPING","message":"[^"]+"\}\}$/)
  assert.match(nxAnswer, /^HTTP\/1\.1 404/)
  assert.match(nxAnswer, /content-type: text\/plain\r\n/)
  assert.match(turboAnswer, /^HTTP\/1\.1 503/)
  assert.match(turboAnswer, /\{"error":\{"code":"ERR_STOPPING","message":"[^"]+"\}\}$/)
})

test("turbo's query and events bodies are bounded at 1 MiB, whatever the token", async () => {
  const { url } = await startServer()
  const big = JSON.stringify([{ source: 'LOCAL', event: 'HIT', pad: 'x'.repeat(2 * 1024 * 1024) }])
  const events = await call(`${url}/v8/artifacts/events?slug=t`, { method: 'POST', headers: json, body: big })
  assert.equal(events.status, 413)
  const query = await call(`${url}/v8/artifacts?slug=t`, { method: 'POST', headers: json, body: JSON.stringify({ hashes: [], pad: big }) })
  assert.equal(query.status, 413)
})

test("turbo's query and events refused for their size name their own 1 MiB limit, not the JSON bodies' 64 MiB", async () => {
  const { url } = await startServer()
  const big = JSON.stringify({ hashes: [], pad: 'x'.repeat(2 * 1024 * 1024) })
  for (const path of ['/v8/artifacts/events?slug=t', '/v8/artifacts?slug=t']) {
    const answer = await call(`${url}${path}`, { method: 'POST', headers: json, body: big })
    assert.equal(answer.status, 413, path)
    assert.equal(answer.json<ErrorAnswer>().error.code, 'ERR_BODY_TOO_LARGE', path)
    assert.match(answer.json<ErrorAnswer>().error.message, /\b1048576 bytes/, path)
  }
  // The cache API's bodies keep the server's JSON limit in their message.
  const value = await call(`${url}/api/cache/k`, { method: 'PUT', headers: json, body: 'x'.repeat(64 * 1024 * 1024 + 1) })
  assert.equal(value.status, 413)
  assert.match(value.json<ErrorAnswer>().error.message, /\b67108864 bytes \(--max-body/)
})

test("the cache API's memory tier is bounded in bytes as well as entries", () => {
  const namespaces = new Namespaces(serveOptions({ dir: '/nonexistent', port: 0 }), () => {})
  const memory = namespaces.optionsOf('api', 'api').memory as { maxEntries: number; maxSize: number }
  assert.equal(memory.maxSize, API_MEMORY_BYTES)
  assert.ok(memory.maxEntries > 0)
})

test('an upload that trickles (a byte now and then, never idle) is cut with 408 once it averages under 1 KiB/s over an idle timeout; the next upload of its key is stored', async () => {
  const { url, dir } = await startServer({ idleTimeout: 600 })
  const { port } = new URL(url)
  const socket = net.connect(Number(port), '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  let answer = ''
  socket.on('data', (d: Buffer) => (answer += d.toString()))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  socket.write(
    'PUT /v8/artifacts/abc0456?slug=team HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n',
  )
  // A byte every 100 ms: never idle for 600 ms, so the idle timeout alone never cut it.
  const trickle = setInterval(() => socket.writable && socket.write('x'), 100)
  try {
    assert.equal(await Promise.race([closed.then(() => 'closed'), sleepMs(10_000).then(() => 'open')]), 'closed')
  } finally {
    clearInterval(trickle)
  }
  assert.match(answer, /^HTTP\/1\.1 408 /)
  assert.match(answer, /ERR_UPLOAD_TOO_SLOW/)
  const again = await call(`${url}/v8/artifacts/abc0456?slug=team`, {
    method: 'PUT',
    body: 'whole',
    headers: { 'content-type': 'application/octet-stream' },
    signal: AbortSignal.timeout(5_000),
  })
  assert.equal(again.status, 202, 'the next upload of the key is stored')
  assert.equal((await call(`${url}/v8/artifacts/abc0456?slug=team`)).text, 'whole')
  const temps = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((name) => name.endsWith('.tmp'))
  assert.deepEqual(temps, [], 'no temp file left')
})

test('an upload stalled mid-body is cut after idleTimeout: its temp file goes, and the next upload of its key is not held behind it', async () => {
  const { url, dir } = await startServer({ idleTimeout: 400 })
  const { port } = new URL(url)
  const socket = net.connect(Number(port), '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  socket.write(
    'PUT /v8/artifacts/abc0123?slug=team HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 10000000\r\n\r\n' +
      'x'.repeat(100),
  )
  // Nothing more is sent: the server closes the connection (it never would before).
  assert.equal(await Promise.race([closed.then(() => 'closed'), sleepMs(10_000).then(() => 'open')]), 'closed')
  const again = await call(`${url}/v8/artifacts/abc0123?slug=team`, {
    method: 'PUT',
    body: 'whole',
    headers: { 'content-type': 'application/octet-stream' },
    signal: AbortSignal.timeout(5_000),
  })
  assert.equal(again.status, 202, 'the next upload of the key is stored')
  assert.equal((await call(`${url}/v8/artifacts/abc0123?slug=team`)).text, 'whole')
  const temps = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((name) => name.endsWith('.tmp'))
  assert.deepEqual(temps, [], 'no temp file left')
})

test('an upload refused for its length (411, 413; nx: 403) opens no team: nothing is created for a team never seen', async () => {
  const { url, dir } = await startServer({ maxBody: 1000 })
  const files = (): string[] => (fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).sort() : [])
  const before = files()
  for (let i = 0; i < 5; i++) {
    const chunked = await new Promise<number>((resolve, reject) => {
      const request = http.request(`${url}/v8/artifacts/abc0123?slug=junk${i}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
      })
      request.on('response', (response) => {
        response.resume()
        resolve(response.statusCode!)
      })
      request.on('error', reject)
      request.write('x') // no Content-Length: chunked
      request.end()
    })
    assert.equal(chunked, 411)
    const big = await call(`${url}/nx/junk${i}/v1/cache/0123`, {
      method: 'PUT',
      body: 'x'.repeat(2000),
      headers: { 'content-type': 'application/octet-stream' },
    })
    assert.equal(big.status, 403, 'nx is told 403 (a 413 would fail its run), the message naming the limit')
    assert.match(big.text, /1000 bytes/)
  }
  assert.deepEqual(files(), before, 'no team directory or file was made')
})

test('an upload over what the --max-size budget keeps (413; nx: 403) opens no team either', async () => {
  const { url, dir } = await startServer({ maxSize: 100_000 })
  const files = (): string[] => (fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).sort() : [])
  const before = files()
  const upload = (path: string) =>
    call(`${url}${path}`, { method: 'PUT', body: 'x'.repeat(50_000), headers: { 'content-type': 'application/octet-stream' } })
  const turbo = await upload('/v8/artifacts/abc0123?slug=big')
  assert.equal(turbo.status, 413)
  assert.match(turbo.text, /--max-size/)
  const nx = await upload('/nx/big/v1/cache/0123')
  assert.equal(nx.status, 403, 'nx is told 403 (a 413 would fail its run), the message naming the limit')
  assert.match(nx.text, /--max-size/)
  assert.deepEqual(files(), before, 'no team directory or file was made')
})

test("turbo's query answers every hash it was asked, `__proto__` too; a 404 for an unknown route does not repeat the path", async () => {
  const { url } = await startServer()
  const octets = { 'content-type': 'application/octet-stream' }
  assert.equal((await call(`${url}/v8/artifacts/__proto__?slug=t`, { method: 'PUT', body: 'p', headers: octets })).status, 202)
  const query = await call(`${url}/v8/artifacts?slug=t`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hashes: ['__proto__', 'abc0123'] }),
  })
  const answer = JSON.parse(query.text) as Record<string, unknown>
  assert.ok(Object.hasOwn(answer, '__proto__'), query.text)
  assert.equal((answer['__proto__'] as { size: number }).size, 1)
  assert.equal(answer.abc0123, null)
  const unknown = await call(`${url}/no/such/route/feedface0123`)
  assert.equal(unknown.status, 404)
  assert.doesNotMatch(unknown.text, /feedface0123/)
})
