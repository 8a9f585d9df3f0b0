import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { bearer, call, startServer } from './helpers.ts'
import { entryFiles } from '../helpers.ts'

const HASH = '2353663766214665608'
const octets = { 'content-type': 'application/octet-stream' }

test('nx: a miss is a 404, an upload answers exactly 200, and the artifact comes back', async () => {
  const { url } = await startServer()
  assert.equal((await call(`${url}/v1/cache/${HASH}`)).status, 404)
  const put = await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', body: 'tar.gz bytes', headers: octets })
  assert.equal(put.status, 200)
  const got = await call(`${url}/v1/cache/${HASH}`)
  assert.equal(got.status, 200)
  assert.equal(got.text, 'tar.gz bytes')
  assert.equal(got.headers.get('content-type'), 'application/octet-stream')
  assert.equal(got.headers.get('content-length'), '12')
})

test('nx: an existing hash is immutable: a second upload is a 409 and the first stays', async () => {
  const { url } = await startServer()
  assert.equal((await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', body: 'good', headers: octets })).status, 200)
  assert.equal((await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', body: 'poisoned', headers: octets })).status, 409)
  assert.equal((await call(`${url}/v1/cache/${HASH}`)).text, 'good')
})

test('nx: two uploads of one new hash at once: one 200, one 409, and the one answered 200 is served', async () => {
  const { url } = await startServer()
  /** A PUT whose body follows its headers a moment later, as a real upload's does. */
  const put = (path: string, body: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const request = http.request(
        `${url}${path}`,
        { method: 'PUT', headers: { ...octets, 'content-length': body.length } },
        (response) => {
          response.resume()
          resolve(response.statusCode!)
        },
      )
      request.on('error', reject)
      request.flushHeaders()
      setTimeout(() => request.end(body), 50)
    })
  for (let round = 0; round < 5; round++) {
    // A fresh team each round: both requests wait for its namespace to open, then race.
    const path = `/nx/race${round}/v1/cache/${HASH}`
    const [first, second] = await Promise.all([put(path, 'first'), put(path, 'second')])
    assert.deepEqual([first, second].sort(), [200, 409], `round ${round}: ${first}, ${second}`)
    assert.equal((await call(`${url}${path}`)).text, first === 200 ? 'first' : 'second', `round ${round}`)
  }
})

test('nx: a second upload of a hash in flight waits for it: stored by the second when the first fails', async () => {
  const { url } = await startServer()
  const path = `/v1/cache/${HASH}`
  // The first upload sends half its body and stops; the second arrives whole meanwhile.
  const first = http.request(`${url}${path}`, { method: 'PUT', headers: { ...octets, 'content-length': 10 } })
  first.on('error', () => {}) // destroyed below
  first.write('half!')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const second = call(`${url}${path}`, { method: 'PUT', body: 'the second', headers: octets })
  let answered = false
  void second.then(() => (answered = true))
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(answered, false, 'the second waits while the first is in flight (it was a 409 at once)')
  first.destroy() // the first client goes away mid-upload: nothing of it is stored
  assert.equal((await second).status, 200)
  assert.equal((await call(`${url}${path}`)).text, 'the second')
})

/** An upload of `kib` KiB sent 1 KiB every 50 ms (20 KiB/s: slow, but far above the floor);
 *  resolves to its status. */
function trickledUpload(url: string, kib: number): { status: Promise<number>; request: http.ClientRequest } {
  const request = http.request(url, { method: 'PUT', headers: { ...octets, 'content-length': kib * 1024 } })
  const status = new Promise<number>((resolve, reject) => {
    request.on('response', (response) => resolve(response.resume().statusCode!))
    request.on('error', reject)
  })
  let sent = 0
  const tick = setInterval(() => {
    if (request.destroyed || ++sent > kib) return clearInterval(tick)
    request.write(Buffer.alloc(1024, 1))
    if (sent === kib) request.end()
  }, 50)
  return { status, request }
}

test('nx: an upload waiting behind a slow one of its hash is answered, however long past the idle timeout it waited', async () => {
  const { url } = await startServer({ idleTimeout: 200 })
  const path = `${url}/v1/cache/${HASH}`
  const first = trickledUpload(path, 16) // 800 ms, four idle timeouts
  await new Promise((resolve) => setTimeout(resolve, 100))
  // The second sends everything at once, then nothing while it waits: Node's idle timer cut
  // it with no answer, and real nx failed its task.
  const second = await call(path, { method: 'PUT', body: 'the second', headers: octets })
  assert.equal(await first.status, 200)
  assert.equal(second.status, 409)
  assert.equal((await call(path)).text.length, 16 * 1024)
})

test('nx: an upload waits at most ten idle timeouts behind another of its hash, then is skipped (403)', async () => {
  // A chunk every 50 ms against a 250 ms idle timeout: the first upload stays alive on a
  // loaded machine (at 100 ms, a stall of its timer ended it, and the second was stored: 200).
  const { url } = await startServer({ idleTimeout: 250 })
  const path = `${url}/v1/cache/${HASH}`
  const first = trickledUpload(path, 100) // 5 s
  first.status.catch(() => {}) // destroyed below
  await new Promise((resolve) => setTimeout(resolve, 100))
  const started = Date.now()
  const second = await call(path, { method: 'PUT', body: 'the second', headers: octets })
  assert.equal(second.status, 403)
  assert.match(second.text, /still in flight/)
  assert.ok(Date.now() - started >= 2250, `answered after ${Date.now() - started} ms`)
  first.request.destroy()
})

test('nx: 401 is text/plain exactly, a read-only token reads and gets 403 on upload', async () => {
  const { url } = await startServer({ tokens: ['writer'], readTokens: ['reader'] })
  const anonymous = await call(`${url}/v1/cache/${HASH}`)
  assert.equal(anonymous.status, 401)
  assert.equal(anonymous.headers.get('content-type'), 'text/plain')
  const wrong = await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('nope') } })
  assert.equal(wrong.status, 401)
  assert.equal(wrong.headers.get('content-type'), 'text/plain')
  const denied = await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('reader') } })
  assert.equal(denied.status, 403)
  assert.equal((await call(`${url}/v1/cache/${HASH}`, { headers: bearer('reader') })).status, 404)
  assert.equal(
    (await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', body: 'x', headers: { ...octets, ...bearer('writer') } })).status,
    200,
  )
  assert.equal((await call(`${url}/v1/cache/${HASH}`, { headers: bearer('reader') })).text, 'x')
})

test('nx: an upload without Content-Length is refused (403: nx would fail its run on a 411) and stores nothing', async () => {
  const { url } = await startServer()
  const status = await new Promise<number>((resolve, reject) => {
    const request = http.request(
      `${url}/v1/cache/${HASH}`,
      { method: 'PUT', headers: { ...octets, 'transfer-encoding': 'chunked' } },
      (response) => {
        response.resume()
        resolve(response.statusCode!)
      },
    )
    request.on('error', reject)
    request.end('chunked body')
  })
  assert.equal(status, 403)
  assert.equal((await call(`${url}/v1/cache/${HASH}`)).status, 404)
})

test('nx: a team prefix in the server URL is a namespace of its own', async () => {
  const { url } = await startServer()
  await call(`${url}/nx/alpha/v1/cache/${HASH}`, { method: 'PUT', body: 'alpha', headers: octets })
  assert.equal((await call(`${url}/nx/alpha/v1/cache/${HASH}`)).text, 'alpha')
  assert.equal((await call(`${url}/v1/cache/${HASH}`)).status, 404)
  assert.equal((await call(`${url}/nx/beta/v1/cache/${HASH}`)).status, 404)
})

test('nx: what the server will not do is a skipped upload (403) or a miss (404), never a status that fails the run: over --max-body, over --max-size, the rate limit', async () => {
  const { url } = await startServer({ maxBody: 10_000, rateLimit: 6 })
  const big = await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', headers: octets, body: Buffer.alloc(20_000) })
  assert.equal(big.status, 403)
  assert.match(big.text, /10000|too large/i)
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await call(`${url}/v1/cache/${HASH}`)).status)
  assert.deepEqual(statuses, [404, 404, 404, 404, 404, 404], 'the 6th is past the limit: a miss, not a 429')
  const limited = await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', headers: octets, body: 'x' })
  assert.equal(limited.status, 403)
  assert.match(limited.text, /Too many requests/)
  const { url: small } = await startServer({ maxSize: 100_000 })
  const over = await call(`${small}/v1/cache/${HASH}`, { method: 'PUT', headers: octets, body: Buffer.alloc(60_000) })
  assert.equal(over.status, 403)
  assert.match(over.text, /budget/)
})

test('nx: a damaged artifact over 2 MiB is a miss (404), never a 200 whose body is cut short', async () => {
  const { url, dir } = await startServer()
  const body = randomBytes(3 << 20)
  assert.equal((await call(`${url}/v1/cache/${HASH}`, { method: 'PUT', headers: octets, body })).status, 200)
  const [file] = entryFiles(dir)
  const fd = fs.openSync(file!, 'r+')
  fs.writeSync(fd, Buffer.from([1, 2, 3]), 0, 3, 1_500_000)
  fs.closeSync(fd)
  const read = await call(`${url}/v1/cache/${HASH}`)
  assert.equal(read.status, 404)
  assert.equal(fs.existsSync(file!), false, 'the damaged entry is removed')
})
