import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { Larder } from '../../src/index.ts'
import { entryFiles, tempDir } from '../helpers.ts'
import { bearer, type CacheAnswer, call, eventually, metric, type Running, startCli, startServer, tempFiles } from './helpers.ts'

// Points of issue 11 the other server tests left open (see the audit in the serve-2 report).

const HASH = 'a1b2c3d4e5f60718'
const upload = (body: string | Buffer): RequestInit => ({ method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } })

/** A GET on a connection of its own, read to its close: the answer's status, its
 *  Content-Length and the bytes of body that came (a client takes the answer as whole once it
 *  has Content-Length of them, whatever follows). */
function rawGet(url: string, pathname: string): Promise<{ status: number; length: number; received: number }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = net.connect(Number(port), hostname, () =>
      socket.write(`GET ${pathname} HTTP/1.1\r\nhost: ${hostname}\r\nconnection: close\r\n\r\n`),
    )
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', () => {}) // a reset is the answer cut short
    socket.on('close', () => {
      const all = Buffer.concat(chunks)
      const end = all.indexOf('\r\n\r\n')
      if (end < 0) return reject(new Error('no answer'))
      const head = all.subarray(0, end).toString()
      resolve({
        status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)![1]),
        length: Number(/content-length: (\d+)/i.exec(head)![1]),
        received: all.length - end - 4,
      })
    })
  })
}

/** Uploads a 3 MiB artifact as `hash` of team `t`, then damages one digit of the length its
 *  head records (shorter): the head of an entry this large is read before its checksum (at
 *  the end) can be checked. Returns the entry file. */
async function uploadWithDamagedLength(url: string, dir: string, hash: string): Promise<{ file: string; size: number }> {
  const size = 3 * 1024 * 1024
  assert.equal((await call(`${url}/v8/artifacts/${hash}?slug=t`, upload(Buffer.alloc(size, 'a')))).status, 202)
  const file = entryFiles(dir).find((f) => fs.statSync(f).size > size)!
  const bytes = fs.readFileSync(file)
  const at = bytes.indexOf(`"length":${size}`)
  assert.ok(at > 0, 'the head holds the length')
  bytes.write('"length":1', at)
  fs.writeFileSync(file, bytes)
  return { file, size }
}

/** The corrupt entries the server's namespace `name` counted. */
async function corruptCounted(server: Running['server'], name: string): Promise<number> {
  const found = (await server.context.namespaces.all()).find((n) => n.name === name)
  return found === undefined ? 0 : (await found.cache.stats()).corrupt
}

test('an artifact whose head was damaged to a shorter length is cut short, never a whole answer of its first bytes; then a 404 (removed)', async () => {
  const { url, dir } = await startServer()
  const hash = 'c1b2c3d4e5f60718'
  await uploadWithDamagedLength(url, dir, hash)
  const first = await rawGet(url, `/v8/artifacts/${hash}?slug=t`)
  assert.equal(first.status, 200)
  assert.ok(first.received < first.length, `cut short: ${first.received} of ${first.length} bytes, not a whole answer`)
  await eventually(async () => (await call(`${url}/v8/artifacts/${hash}?slug=t`)).status === 404, 'the damaged entry removed')
})

test('HEAD never reports a damaged large artifact: a 404, the entry removed and counted corrupt', async () => {
  const { url, dir, server } = await startServer()
  const hash = 'd1b2c3d4e5f60718'
  const { file } = await uploadWithDamagedLength(url, dir, hash)
  const head = await fetch(`${url}/v8/artifacts/${hash}?slug=t`, { method: 'HEAD' })
  assert.equal(head.status, 404, `HEAD answered ${head.status} with Content-Length ${head.headers.get('content-length')}`)
  assert.equal(fs.existsSync(file), false, 'the damaged entry is removed')
  assert.equal(await corruptCounted(server, 'turbo:t'), 1)
})

test("turbo's hash query answers from the heads without reading the artifacts through (a dry run); the GET finds a damaged one", async () => {
  const { url, dir, server } = await startServer()
  const hash = 'e1b2c3d4e5f60718'
  const { file, size } = await uploadWithDamagedLength(url, dir, hash)
  const query = async (): Promise<unknown> =>
    (
      await call(`${url}/v8/artifacts?slug=t`, {
        method: 'POST',
        body: JSON.stringify({ hashes: [hash] }),
        headers: { 'content-type': 'application/json' },
      })
    ).json()
  const damagedLength = Number(`1${String(size).slice(1)}`)
  assert.equal(((await query()) as Record<string, { size: number }>)[hash]?.size, damagedLength, 'the head, as stored')
  assert.equal(fs.existsSync(file), true, 'a query reads no artifact through')
  assert.equal(await corruptCounted(server, 'turbo:t'), 0)
  const first = await rawGet(url, `/v8/artifacts/${hash}?slug=t`)
  assert.ok(first.received < first.length, 'the GET is cut short')
  await eventually(async () => ((await query()) as Record<string, unknown>)[hash] === null, 'then the query says it is gone')
})

/** Uploads a 5 MB artifact as `hash` of team `t`, damages a byte near the end of its entry
 *  (found only there, after the answer began), and downloads it: cut short. */
async function cutShortDownload(url: string, dir: string, hash: string): Promise<void> {
  const size = 5_000_000
  assert.equal((await call(`${url}/v8/artifacts/${hash}?slug=t`, upload(Buffer.alloc(size, 'a')))).status, 202)
  const file = entryFiles(dir).find((f) => fs.statSync(f).size > size)!
  const bytes = fs.readFileSync(file)
  bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff
  fs.writeFileSync(file, bytes)
  const answer = await rawGet(url, `/v8/artifacts/${hash}?slug=t`)
  assert.equal(answer.status, 200, 'the answer began before the damage could be known')
  assert.ok(answer.received < answer.length, 'cut short')
}

test('a large download whose entry turns out damaged counts as a miss and an error, not a hit', async () => {
  const { url, dir } = await startServer()
  await cutShortDownload(url, dir, 'f1b2c3d4e5f60718')
  const turbo = async (): Promise<{ hits: number; misses: number; errors: number }> =>
    (await call(`${url}/api/cache/metrics`)).json<{ protocols: { turbo: { hits: number; misses: number; errors: number } } }>().protocols
      .turbo
  await eventually(async () => (await turbo()).misses === 1, 'the failed download counted as a miss')
  assert.deepEqual(await turbo().then(({ hits, misses, errors }) => ({ hits, misses, errors })), { hits: 0, misses: 1, errors: 1 })
  assert.equal(await metric(url, 'larder_cache_hits_total{protocol="turbo"'), 0)
  assert.equal(await metric(url, 'larder_cache_misses_total{protocol="turbo"}'), 1)
})

test('a download cut short has its request log line and its place in the duration histogram, as every request has', async () => {
  const { url, dir, logs } = await startServer({ logRequests: true })
  await cutShortDownload(url, dir, 'f2b2c3d4e5f60718')
  await eventually(() => logs.some((line) => /^GET \/v8\/artifacts\/:hash 200 [\d.]+ms cut short$/.test(line)), 'its log line')
  assert.equal(await metric(url, 'larder_http_request_duration_seconds_count{method="GET",route="/v8/artifacts/:hash",status="200"}'), 1)
})

test('larder serve: CACHE_DEFAULT_TTL (seconds) is the ttl of a value stored without one; a ttl given wins', async () => {
  const dir = path.join(tempDir('larder-serve-audit'), 'cache')
  const server = await startCli(['--dir', dir, 'serve'], { LARDER_PORT: '0', LARDER_TOKEN: 't', CACHE_DEFAULT_TTL: '90' })
  const put = (body: object) =>
    call(`${server.url}/api/cache/k`, {
      method: 'PUT',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...bearer('t') },
    })
  assert.equal((await put({ value: 1 })).status, 200)
  const got = (await call(`${server.url}/api/cache/k`, { headers: bearer('t') })).json<CacheAnswer>()
  assert.equal(Date.parse(got.expires_at) - Date.parse(got.cached_at), 90_000)
  await put({ value: 2, ttl: 5 })
  const given = (await call(`${server.url}/api/cache/k`, { headers: bearer('t') })).json<CacheAnswer>()
  assert.equal(Date.parse(given.expires_at) - Date.parse(given.cached_at), 5_000)
  assert.equal(await server.stop(), 0)
})

test('an artifact whose entry file was damaged is never served: a miss, an error or a cut-short body, then a 404 (removed)', async () => {
  const { url, dir } = await startServer()
  // Small: the checksum fails before the answer starts; large: after most bytes went out.
  for (const [hash, size] of [
    [HASH, 200_000],
    ['b1b2c3d4e5f60718', 5_000_000],
  ] as const) {
    const slug = `t${size}`
    assert.equal((await call(`${url}/v8/artifacts/${hash}?slug=${slug}`, upload(Buffer.alloc(size, 'a')))).status, 202)
    const file = entryFiles(dir).find((f) => fs.statSync(f).size > size && fs.statSync(f).size < size + 4096) // body + head + header
    assert.ok(file !== undefined, 'the artifact is an entry file')
    const bytes = fs.readFileSync(file)
    for (const at of [bytes.length - 10, Math.floor(bytes.length / 2)]) bytes[at] = bytes[at]! ^ 0xff
    fs.writeFileSync(file, bytes)
    const first = await fetch(`${url}/v8/artifacts/${hash}?slug=${slug}`)
    if (first.status === 200) {
      // Headers went out before the checksum could be checked at the end: the body must fail,
      // never end as if whole.
      await assert.rejects(first.arrayBuffer(), 'a damaged body is cut short, not completed')
    } else {
      // Or the checksum failed before the first byte went out: an error answer, not the bytes.
      assert.ok(first.status === 404 || first.status >= 500, `answered ${first.status}`)
      assert.doesNotMatch(await first.text(), /aaaa|\n\s+at /)
    }
    assert.equal((await call(`${url}/v8/artifacts/${hash}?slug=${slug}`)).status, 404, 'the damaged entry was removed')
  }
})

test('an entry in an artifact namespace that is not an artifact (empty head) reads as a miss, for GET, HEAD and the batch query', async () => {
  const { url, dir } = await startServer()
  assert.equal((await call(`${url}/v8/artifacts/status?slug=t`)).status, 200)
  // Written past the server, as another program sharing the directory could.
  const foreign = await Larder.open({ dir, namespace: 'turbo:t', serializer: 'raw', compression: 'none' })
  await foreign.set(HASH, Buffer.from([0, 0, 0, 0, 1, 2, 3]))
  await foreign.set('0011223344556677', Buffer.from('not an artifact at all'))
  await foreign.close()
  for (const hash of [HASH, '0011223344556677']) {
    assert.equal((await call(`${url}/v8/artifacts/${hash}?slug=t`)).status, 404)
    assert.equal((await fetch(`${url}/v8/artifacts/${hash}?slug=t`, { method: 'HEAD' })).status, 404)
  }
  const batch = await call(`${url}/v8/artifacts?slug=t`, {
    method: 'POST',
    body: JSON.stringify({ hashes: [HASH] }),
    headers: { 'content-type': 'application/json' },
  })
  assert.deepEqual(batch.json(), { [HASH]: null })
})

test('shutdown is bounded: an upload that stalls past the grace is cut, the stop completes, and nothing of it is stored', async () => {
  const { url, dir, close } = await startServer({ shutdownGrace: 300 })
  const target = new URL(`${url}/v8/artifacts/${HASH}?slug=t`)
  const stalled = http.request(target, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': '1000000' },
  })
  const ended = new Promise<string>((resolve) => {
    stalled.on('response', (response) => resolve(`answered ${response.statusCode}`))
    stalled.on('error', () => resolve('cut'))
  })
  stalled.write(Buffer.alloc(1000, 'x')) // and then nothing more: a client that hangs
  await eventually(() => tempFiles(dir).length > 0, 'the upload under way')
  await close() // resolves only because the grace ran out and the connection was cut
  assert.equal(await ended, 'cut')
  assert.deepEqual(tempFiles(dir), [])
  const reopened = await Larder.open({ dir, namespace: 'turbo:t', serializer: 'raw', compression: 'none' })
  assert.equal(await reopened.has(HASH), false)
  await reopened.close()
})
