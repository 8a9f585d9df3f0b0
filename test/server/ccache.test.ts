import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { call, type ErrorAnswer, metric, startServer } from './helpers.ts'

const octets = { 'content-type': 'application/octet-stream' }

test('ccache: the HEAD before an upload (after the GET that missed) is not a second miss, nor a HEAD of what is there a hit', async () => {
  const { url } = await startServer()
  const at = `${url}/ccache/98/6fgiqfs6knpcovnajt9eu05fngibj1u`
  const counted = async (): Promise<number[]> => [
    await metric(url, 'larder_cache_hits_total{protocol="ccache"'),
    await metric(url, 'larder_cache_misses_total{protocol="ccache"}'),
  ]
  assert.equal((await call(at)).status, 404)
  assert.equal((await fetch(at, { method: 'HEAD' })).status, 404)
  assert.deepEqual(await counted(), [0, 1], 'one miss: the GET')
  assert.equal((await call(at, { method: 'PUT', body: 'object', headers: octets })).status, 200)
  assert.equal((await fetch(at, { method: 'HEAD' })).status, 200)
  assert.equal((await call(at)).text, 'object')
  assert.deepEqual(await counted(), [1, 1], 'one hit: the GET')
})

test('ccache and bazel: a HEAD that misses has the headers of the GET that misses (Content-Type, Content-Length), and no body', async () => {
  const { url } = await startServer()
  for (const path of ['/ccache/98/6fgiqfs6knpcovnajt9eu05fngibj1u', '/ac/0123abcd', `/cas/${'0'.repeat(64)}`]) {
    const get = await fetch(`${url}${path}`)
    await get.arrayBuffer()
    const head = await fetch(`${url}${path}`, { method: 'HEAD' })
    assert.equal(head.status, 404, path)
    for (const name of ['content-type', 'content-length']) assert.equal(head.headers.get(name), get.headers.get(name), `${path}: ${name}`)
    assert.equal((await head.arrayBuffer()).byteLength, 0, path)
  }
})

test('ccache: GET, HEAD, PUT and DELETE under /ccache in the subdirs, flat and bazel layouts', async () => {
  const { url } = await startServer()
  for (const path of ['98/6fgiqfs6knpcovnajt9eu05fngibj1u', '986fgiqfs6knpcovnajt9eu05fngibj1u', `ac/${'ab'.repeat(32)}`]) {
    const at = `${url}/ccache/${path}`
    assert.equal((await call(at)).status, 404, path)
    assert.equal((await fetch(at, { method: 'HEAD' })).status, 404)
    const body = randomBytes(5000)
    assert.equal((await call(at, { method: 'PUT', body, headers: octets })).status, 200)
    const head = await fetch(at, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), '5000')
    const got = await fetch(at)
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(body))
    assert.equal((await call(at, { method: 'DELETE' })).status, 200)
    assert.equal((await call(at, { method: 'DELETE' })).status, 404)
    assert.equal((await call(at)).status, 404)
  }
})

test('bazel: /ac/ and /cas/ are served by the same handler; a CAS upload must match its sha256', async () => {
  const { url } = await startServer()
  const body = Buffer.from('action output')
  const digest = createHash('sha256').update(body).digest('hex')
  assert.equal((await call(`${url}/cas/${digest}`, { method: 'PUT', body, headers: octets })).status, 200)
  assert.equal((await call(`${url}/cas/${digest}`)).text, 'action output')
  const wrong = createHash('sha256').update('other').digest('hex')
  const refused = await call(`${url}/cas/${wrong}`, { method: 'PUT', body, headers: octets })
  assert.equal(refused.status, 400)
  assert.equal(refused.json<ErrorAnswer>().error.code, 'ERR_DIGEST_MISMATCH')
  assert.equal((await call(`${url}/cas/${wrong}`)).status, 404, 'nothing stored under a name its bytes do not have')
  assert.equal((await call(`${url}/ac/${digest}`, { method: 'PUT', body: 'result', headers: octets })).status, 200)
  assert.equal((await call(`${url}/ac/${digest}`)).text, 'result')
  assert.equal((await call(`${url}/ccache/ac/${digest}`)).status, 404, 'ccache and Bazel are separate namespaces')
})

test('ccache: an object path that is not a hash path is a 400', async () => {
  const { url } = await startServer()
  for (const path of ['a/b/c/d/e', 'a%2F..%2Fb', 'a/.b', '%00x', 'x'.repeat(400)]) {
    const answer = await call(`${url}/ccache/${path}`, { method: 'PUT', body: 'x', headers: octets })
    assert.equal(answer.status, 400, path)
  }
})
