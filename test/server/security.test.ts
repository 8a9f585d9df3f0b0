import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { entryFiles } from '../helpers.ts'
import { bearer, call, type ErrorAnswer, eventually, startServer, tempFiles } from './helpers.ts'

const octets = { 'content-type': 'application/octet-stream' }
const HASH = 'abcdef0123456789'

test('auth: with tokens, no token or a wrong one is a 401, a read-only token reads but cannot write (403), and tokens of any length compare correctly', async () => {
  const { url } = await startServer({ tokens: ['w-token-0123456789'], readTokens: ['r'] })
  const at = `${url}/v8/artifacts/${HASH}?slug=t`
  for (const headers of [
    {},
    bearer('w-token-012345678'),
    bearer('w-token-01234567890'),
    bearer(''),
    { authorization: 'w-token-0123456789' },
  ]) {
    const answer = await call(at, { headers })
    assert.equal(answer.status, 401, JSON.stringify(headers))
    assert.equal(answer.json<ErrorAnswer>().error.code, 'ERR_UNAUTHORIZED')
  }
  const readOnly = await call(at, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('r') } })
  assert.equal(readOnly.status, 403)
  assert.equal(readOnly.json<ErrorAnswer>().error.code, 'ERR_READ_ONLY_TOKEN')
  assert.equal((await call(at, { headers: bearer('r') })).status, 404, 'the read token reads')
  assert.equal((await call(at, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('w-token-0123456789') } })).status, 202)
  assert.equal((await call(at, { headers: bearer('r') })).text, 'x')
  // ccache's http://user:token@host form: the token as the Basic password.
  const basic = { authorization: `Basic ${Buffer.from('ci:r').toString('base64')}` }
  assert.equal((await call(`${url}/ccache/ab/cdef`, { headers: basic })).status, 404)
  assert.equal((await call(`${url}/api/cache/metrics`)).status, 401, 'the figures need a token too')
  assert.equal((await call(`${url}/metrics`, { headers: bearer('r') })).status, 200)
  assert.equal((await call(`${url}/healthz`)).status, 200, 'health needs no token')
  assert.equal((await call(`${url}/`)).status, 200, 'the dashboard page holds no data and needs no token')
  assert.equal((await call(`${url}/dashboard/data`)).status, 401)
})

test('limits: a body over --max-body is a 413 naming the limit, for artifacts and JSON alike, and stores nothing', async () => {
  const { url, dir } = await startServer({ maxBody: 1000 })
  const artifact = await call(`${url}/v8/artifacts/${HASH}?slug=t`, { method: 'PUT', body: randomBytes(2000), headers: octets })
  assert.equal(artifact.status, 413)
  assert.match(artifact.json<ErrorAnswer>().error.message, /1000 bytes/)
  const nx = await call(`${url}/v1/cache/123`, { method: 'PUT', body: randomBytes(2000), headers: octets })
  assert.equal(nx.status, 403, 'nx fails its run on a 413: a skipped upload')
  assert.match(nx.text, /1000 bytes/)
  const value = await call(`${url}/api/cache/k`, {
    method: 'PUT',
    body: JSON.stringify({ value: 'x'.repeat(2000) }),
    headers: { 'content-type': 'application/json' },
  })
  assert.equal(value.status, 413)
  assert.match(value.json<ErrorAnswer>().error.message, /1000 bytes/)
  assert.equal(
    (await call(`${url}/v8/artifacts/${HASH}?slug=t`, { method: 'PUT', body: randomBytes(900), headers: octets })).status,
    202,
    'under the limit is fine',
  )
  assert.equal(entryFiles(dir).length, 1)
})

test('limits: the per-address rate limit answers 429 with a JSON error; health checks are not limited', async () => {
  const { url } = await startServer({ rateLimit: 5 })
  const statuses: number[] = []
  for (let i = 0; i < 7; i++) statuses.push((await call(`${url}/v8/artifacts/status?slug=t`)).status)
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429])
  const limited = await call(`${url}/v8/artifacts/status?slug=t`)
  assert.equal(limited.json<ErrorAnswer>().error.code, 'ERR_RATE_LIMITED')
  assert.match(limited.json<ErrorAnswer>().error.message, /5 a minute/)
  for (let i = 0; i < 10; i++) assert.equal((await call(`${url}/healthz`)).status, 200)
})

test('errors: no answer carries a stack trace, and unknown routes are JSON 404s', async () => {
  const { url } = await startServer({ maxBody: 100 })
  const answers = await Promise.all([
    call(`${url}/nope`),
    call(`${url}/api/cache/k`, { method: 'PUT', body: '{"value":', headers: { 'content-type': 'application/json' } }),
    call(`${url}/api/cache/k`, { method: 'PUT', body: 'value=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    call(`${url}/v8/artifacts`, { method: 'POST', body: '[]', headers: { 'content-type': 'application/json' } }),
    call(`${url}/v8/artifacts/${HASH}?slug=t`, { method: 'PUT', body: 'x'.repeat(200), headers: octets }),
  ])
  assert.deepEqual(
    answers.map((a) => a.status),
    [404, 400, 415, 400, 413],
  )
  for (const a of answers) {
    assert.doesNotMatch(a.text, /\bat .*\.(ts|js):\d+/, a.text)
    assert.ok(typeof a.json<ErrorAnswer>().error.code === 'string' && typeof a.json<ErrorAnswer>().error.message === 'string', a.text)
  }
})

test('an unknown route is a 404 to every valid token (a read or namespace token was told 403), a 401 without one', async () => {
  const { url } = await startServer({
    tokens: ['W'],
    readTokens: ['R'],
    namespaceTokens: [{ namespace: 'ns1', token: 'N', access: 'write' }],
  })
  for (const token of ['W', 'R', 'N']) {
    const answer = await call(`${url}/nope`, { headers: bearer(token) })
    assert.equal(answer.status, 404, token)
    assert.equal(answer.json<ErrorAnswer>().error.code, 'ERR_NOT_FOUND', token)
  }
  assert.equal((await call(`${url}/nope`)).status, 401)
})

test('no token in any log line: requests with good and bad tokens, logged one line each', async () => {
  const { url, logs } = await startServer({ tokens: ['SECRET-WRITE'], readTokens: ['SECRET-READ'], logRequests: true })
  await call(`${url}/v8/artifacts/${HASH}?slug=t`, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('SECRET-WRITE') } })
  await call(`${url}/v8/artifacts/${HASH}?slug=t`, { headers: bearer('SECRET-READ') })
  await call(`${url}/v8/artifacts/${HASH}?slug=t`, { headers: bearer('SECRET-WRONG') })
  await call(`${url}/v8/artifacts/${HASH}?slug=t&token=SECRET-QUERY`, { headers: bearer('SECRET-READ') })
  assert.ok(logs.length >= 4, logs.join('\n'))
  assert.ok(logs.some((line) => line.startsWith('PUT /v8/artifacts/')))
  for (const line of logs) assert.doesNotMatch(line, /SECRET/)
})

test('a client that disconnects mid-upload leaves no entry and no temp file', async () => {
  const { url, dir } = await startServer()
  for (const path of [`/v8/artifacts/${HASH}?slug=t`, '/v1/cache/42', '/ccache/ab/cdef']) {
    const request = http.request(`${url}${path}`, { method: 'PUT', headers: { ...octets, 'content-length': String(8 * 1024 * 1024) } })
    request.on('error', () => {})
    request.write(randomBytes(2 * 1024 * 1024))
    // The upload is being written: its temp file is on disk.
    await eventually(() => tempFiles(dir).length > 0, `a temp file for ${path}`)
    request.destroy()
    await eventually(() => tempFiles(dir).length === 0, `the temp file of ${path} removed`)
    assert.deepEqual(entryFiles(dir), [], path)
    assert.equal((await call(`${url}${path}`)).status, 404)
  }
})

test('an upload whose body is shorter than its Content-Length is not stored', async () => {
  const { url, dir } = await startServer()
  const status = await new Promise<number>((resolve) => {
    const request = http.request(
      `${url}/v8/artifacts/${HASH}?slug=t`,
      { method: 'PUT', headers: { ...octets, 'content-length': '100' } },
      (response) => resolve(response.statusCode!),
    )
    request.on('error', () => resolve(0))
    request.write('only 20 bytes here..')
    // Half-close: the client says it is done writing; the body stays 80 bytes short.
    if (request.socket) request.socket.end()
    else request.on('socket', (s) => s.end())
  })
  assert.notEqual(status, 202)
  await eventually(() => tempFiles(dir).length === 0, 'no temp file')
  assert.deepEqual(entryFiles(dir), [])
})

test('limits: requests refused for their token count against the rate limit too (no token guessing at full speed)', async () => {
  const { url } = await startServer({ rateLimit: 3, tokens: ['right'] })
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await call(`${url}/v8/artifacts/status?slug=t`, { headers: bearer('wrong') })).status)
  assert.deepEqual(statuses, [401, 401, 401, 429, 429])
  assert.equal((await call(`${url}/v8/artifacts/status?slug=t`, { headers: bearer('right') })).status, 429, 'the address is limited')
})

test('limits: URLs the router refuses (one that does not decode, a key too long) count against the rate limit too', async () => {
  const { url } = await startServer({ rateLimit: 3 })
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await call(`${url}/api/cache/%ff`)).status)
  for (let i = 0; i < 2; i++) statuses.push((await call(`${url}/api/cache/${'k'.repeat(3000)}`)).status)
  assert.deepEqual(statuses, [400, 400, 400, 429, 429])
  const limited = await call(`${url}/api/cache/%ff`)
  assert.equal(limited.json<ErrorAnswer>().error.code, 'ERR_RATE_LIMITED')
  assert.equal((await call(`${url}/v8/artifacts/status?slug=t`)).status, 429, 'the address is limited')
})

/** How many files under `dir` this process holds open (Linux: /proc/self/fd). */
function openFilesUnder(dir: string): number {
  let open = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir)) open++
    } catch {
      // closed since the listing
    }
  }
  return open
}

test('limits: GETs pipelined by a client that reads nothing wait their turn (one file open, not one each), are all answered once it reads, and past 32 waiting the connection is closed', async () => {
  const { url, dir, server } = await startServer()
  const size = 3 * 1024 * 1024
  assert.equal(
    (await call(`${url}/v8/artifacts/${HASH}?slug=t`, { method: 'PUT', body: Buffer.alloc(size, 'a'), headers: octets })).status,
    202,
  )
  const idle = openFilesUnder(dir) // the namespace's own (its change log)
  let requests = 0
  server.app.server.on('request', () => requests++)
  const get = `GET /v8/artifacts/${HASH}?slug=t HTTP/1.1\r\nhost: x\r\n\r\n`
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.write(get.repeat(8))
  await eventually(() => requests === 8, 'the eight requests parsed')
  // Time for any of them to open its artifact (each did, and kept its first MiB queued).
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.ok(openFilesUnder(dir) <= idle + 1, `${openFilesUnder(dir) - idle} entry files open for one connection`)
  const chunks: Buffer[] = []
  let received = 0
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    received += chunk.length
  })
  socket.resume()
  await eventually(() => received >= 8 * size, 'every answer read', 60_000)
  assert.equal(
    Buffer.concat(chunks)
      .toString('latin1')
      .match(/HTTP\/1\.1 200 /g)?.length,
    8,
  )
  socket.destroy()

  const flood = net.connect(Number(new URL(url).port), '127.0.0.1')
  await once(flood, 'connect')
  flood.pause()
  flood.on('error', () => {})
  flood.write(get.repeat(100))
  await once(flood, 'close')
  await eventually(() => openFilesUnder(dir) === idle, 'every entry file closed')
})

test('turbo: an upload refused for a bad header (400) opens and creates no team', async () => {
  const { url, dir } = await startServer()
  const namespaces = (): string[] => (fs.existsSync(path.join(dir, 'v1')) ? fs.readdirSync(path.join(dir, 'v1')) : [])
  const before = namespaces()
  const refused = await call(`${url}/v8/artifacts/${HASH}?slug=never`, {
    method: 'PUT',
    headers: { ...octets, 'x-artifact-tag': 'x'.repeat(2000) },
    body: 'artifact',
  })
  assert.equal(refused.status, 400)
  assert.deepEqual(namespaces(), before)
})

test('a download whose client hung up before its response began (two pipelined GETs, socket closed) has its file closed at once, not by GC', async () => {
  const { url } = await startServer()
  for (const hash of ['aaaaaaaaaaaaaaa1', 'aaaaaaaaaaaaaaa2']) {
    const put = await call(`${url}/v8/artifacts/${hash}?slug=t`, { method: 'PUT', headers: octets, body: randomBytes(3 << 20) })
    assert.equal(put.status, 202)
  }
  const { port } = new URL(url)
  const before = fs.readdirSync('/proc/self/fd').length
  for (let i = 0; i < 20; i++) {
    const socket = net.connect(Number(port), '127.0.0.1')
    await once(socket, 'connect')
    socket.write(
      'GET /v8/artifacts/aaaaaaaaaaaaaaa1?slug=t HTTP/1.1\r\nhost: x\r\n\r\nGET /v8/artifacts/aaaaaaaaaaaaaaa2?slug=t HTTP/1.1\r\nhost: x\r\n\r\n',
    )
    await once(socket, 'data')
    socket.destroy()
  }
  await eventually(() => fs.readdirSync('/proc/self/fd').length <= before + 2, 'the entries opened for the dropped downloads are closed')
})
