import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { entryFiles } from '../helpers.ts'
import { call, type ErrorAnswer, startServer } from './helpers.ts'

const HASH = 'f3ba1d44d2f1d3af'

test('turbo: status is enabled, a missing artifact is a 404, an uploaded one comes back byte for byte with its duration, tag and length', async () => {
  const { url } = await startServer()
  assert.deepEqual((await call(`${url}/v8/artifacts/status?slug=team`)).json(), { status: 'enabled' })
  assert.equal((await call(`${url}/v8/artifacts/${HASH}?slug=team`)).status, 404)
  const body = randomBytes(300_000)
  const put = await call(`${url}/v8/artifacts/${HASH}?slug=team`, {
    method: 'PUT',
    body,
    headers: { 'content-type': 'application/octet-stream', 'x-artifact-duration': '141', 'x-artifact-tag': 'c2lnbmVk' },
  })
  assert.equal(put.status, 202)
  assert.deepEqual(put.json(), { urls: [HASH] })
  const got = await fetch(`${url}/v8/artifacts/${HASH}?slug=team`)
  assert.equal(got.status, 200)
  assert.equal(got.headers.get('content-length'), String(body.length))
  assert.equal(got.headers.get('x-artifact-duration'), '141')
  assert.equal(got.headers.get('x-artifact-tag'), 'c2lnbmVk')
  assert.ok(Buffer.from(await got.arrayBuffer()).equals(body))
  const head = await fetch(`${url}/v8/artifacts/${HASH}?slug=team`, { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(head.headers.get('content-length'), String(body.length))
  assert.equal(head.headers.get('x-artifact-duration'), '141')
  assert.equal((await fetch(`${url}/v8/artifacts/0000000000000000?slug=team`, { method: 'HEAD' })).status, 404)
})

test('turbo: a re-upload of a hash replaces it (turbo re-uploads after a signature miss)', async () => {
  const { url } = await startServer()
  for (const content of ['first', 'second, longer']) {
    assert.equal(
      (
        await call(`${url}/v8/artifacts/${HASH}?slug=t`, {
          method: 'PUT',
          body: content,
          headers: { 'content-type': 'application/octet-stream' },
        })
      ).status,
      202,
    )
  }
  assert.equal((await call(`${url}/v8/artifacts/${HASH}?slug=t`)).text, 'second, longer')
})

test('turbo: teams are isolated namespaces, by slug or by teamId', async () => {
  const { url } = await startServer()
  await call(`${url}/v8/artifacts/${HASH}?slug=alpha`, {
    method: 'PUT',
    body: 'alpha',
    headers: { 'content-type': 'application/octet-stream' },
  })
  await call(`${url}/v8/artifacts/${HASH}?teamId=team_beta`, {
    method: 'PUT',
    body: 'beta',
    headers: { 'content-type': 'application/octet-stream' },
  })
  assert.equal((await call(`${url}/v8/artifacts/${HASH}?slug=alpha`)).text, 'alpha')
  assert.equal((await call(`${url}/v8/artifacts/${HASH}?teamId=team_beta`)).text, 'beta')
  assert.equal((await call(`${url}/v8/artifacts/${HASH}?slug=gamma`)).status, 404)
  const missing = await call(`${url}/v8/artifacts/${HASH}`)
  assert.equal(missing.status, 400)
  assert.equal(missing.json<ErrorAnswer>().error.code, 'ERR_MISSING_TEAM')
  const badTeam = await call(`${url}/v8/artifacts/${HASH}?slug=${encodeURIComponent('../etc')}`)
  assert.equal(badTeam.status, 400)
  assert.match(badTeam.json<ErrorAnswer>().error.message, /slug/)
})

test('turbo: a doubled leading slash (TURBO_API with a trailing slash) is routed like one', async () => {
  const { url } = await startServer()
  assert.equal(
    (
      await call(`${url}//v8/artifacts/${HASH}?slug=t`, {
        method: 'PUT',
        body: 'x',
        headers: { 'content-type': 'application/octet-stream' },
      })
    ).status,
    202,
  )
  assert.equal((await call(`${url}//v8/artifacts/${HASH}?slug=t`)).text, 'x')
  assert.equal((await call(`${url}//v8/artifacts/status?slug=t`)).status, 200)
})

test('turbo: the batch query answers size, duration and tag per hash, null for a miss; events are accepted', async () => {
  const { url } = await startServer()
  await call(`${url}/v8/artifacts/${HASH}?slug=t`, {
    method: 'PUT',
    body: 'abcd',
    headers: { 'content-type': 'application/octet-stream', 'x-artifact-duration': '77', 'x-artifact-tag': 'tag' },
  })
  const query = await call(`${url}/v8/artifacts?slug=t`, {
    method: 'POST',
    body: JSON.stringify({ hashes: [HASH, '00ba000000000000'] }),
    headers: { 'content-type': 'application/json' },
  })
  assert.deepEqual(query.json(), { [HASH]: { size: 4, taskDurationMs: 77, tag: 'tag' }, '00ba000000000000': null })
  const events = await call(`${url}/v8/artifacts/events?slug=t`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ sessionId: 'x', source: 'REMOTE', event: 'HIT', hash: HASH, duration: 77 }]),
  })
  assert.equal(events.status, 200)
  const metrics = await call(`${url}/metrics`)
  assert.match(metrics.text, /larder_turbo_events_total\{source="REMOTE",event="HIT"\} 1/)
})

test('turbo: a CORS preflight allows Authorization (else turbo drops the token)', async () => {
  const { url } = await startServer({ tokens: ['secret'] })
  const preflight = await fetch(`${url}/v8/artifacts/${HASH}?slug=t`, {
    method: 'OPTIONS',
    headers: { 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization, content-type' },
  })
  assert.equal(preflight.status, 200)
  assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Authorization/)
  assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /PUT/)
})

test('turbo: an invalid hash is a 400 naming the field, never a path', async () => {
  const { url, dir } = await startServer()
  for (const hash of ['..%2F..%2Fetc%2Fpasswd', 'a'.repeat(200), 'has%20space']) {
    const answer = await call(`${url}/v8/artifacts/${hash}?slug=t`, {
      method: 'PUT',
      body: 'x',
      headers: { 'content-type': 'application/octet-stream' },
    })
    assert.equal(answer.status, 400, hash)
    assert.equal(answer.json<ErrorAnswer>().error.code, 'ERR_INVALID_HASH')
    assert.match(answer.json<ErrorAnswer>().error.message, /hash/)
  }
  assert.deepEqual(entryFiles(dir), [], 'nothing written')
})
