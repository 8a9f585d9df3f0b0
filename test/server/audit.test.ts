import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { Larder } from '../../src/index.ts'
import { entryFiles, tempDir } from '../helpers.ts'
import { bearer, type CacheAnswer, call, eventually, startCli, startServer, tempFiles } from './helpers.ts'

// Points of issue 11 the other server tests left open (see the audit in the serve-2 report).

const HASH = 'a1b2c3d4e5f60718'
const upload = (body: string | Buffer): RequestInit => ({ method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } })

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
