/**
 * A Redis larder cannot reach says why. While the command connection is not connected, ioredis
 * fails every command with "Stream isn't writeable and enableOfflineQueue options is false",
 * which names neither a wrong password nor a refused port: the error larder reports (the
 * `error` event, ERR_UNAVAILABLE with failOpen false, the CLI's message) carries what the
 * connection itself last said, with the URL's password never in it.
 */
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { Larder, LarderError } from '../../src/index.js'
import { tempDir } from '../helpers.js'
import { eventually, redisAvailable, startRedis } from './server.js'

const skip = redisAvailable() ? false : 'redis-server is not installed'
const PASSWORD = 'right-horse-battery'
const WRONG = 'wrong-s3cret%21pass'

async function failureOf(url: string): Promise<{ thrown: LarderError }> {
  const cache = await Larder.open({ dir: false, redis: { url, commandTimeout: '300ms' }, failOpen: false, memory: false })
  after(() => cache.close())
  // the connection's own error arrives once its first attempt fails: wait for a command to say so
  let thrown: LarderError | undefined
  assert.ok(
    await eventually(async () => {
      thrown = await cache.set('k', 1).then(
        () => undefined,
        (error: LarderError) => error,
      )
      return thrown !== undefined && /not connected: /.test(thrown.message)
    }, 5000),
    `the error names the cause: ${thrown?.message}`,
  )
  return { thrown: thrown! }
}

test('a wrong password is named (WRONGPASS), and the password given is not', { skip }, async () => {
  const server = await startRedis(['--requirepass', PASSWORD])
  const { thrown } = await failureOf(`redis://:${WRONG}@127.0.0.1:${server.port}`)
  assert.equal(thrown.code, 'ERR_UNAVAILABLE')
  assert.match(thrown.message, /^Shared tier \(Redis\) unavailable: (circuit breaker is open \()?not connected: WRONGPASS/)
  assert.ok(!thrown.message.includes('s3cret'), thrown.message)
})

test('a refused port is named (ECONNREFUSED)', { skip }, async () => {
  const server = await startRedis()
  const port = server.port
  await server.stop() // a port that was just free, now with nothing listening
  const { thrown } = await failureOf(`redis://127.0.0.1:${port}`)
  assert.match(thrown.message, /not connected: .*ECONNREFUSED/)
})

test('once connected, a failure is told as it is, with no stale cause', { skip }, async () => {
  const server = await startRedis()
  const dir = tempDir('conn-errors')
  const cache = await Larder.open({ dir, redis: `redis://127.0.0.1:${server.port}`, failOpen: false })
  after(() => cache.close())
  await cache.set('k', 1)
  assert.equal(await cache.get('k'), 1)
  server.cli('CONFIG', 'SET', 'maxmemory', '1')
  server.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
  const thrown = await cache.set('big', 'x'.repeat(1000)).then(
    () => undefined,
    (error: LarderError) => error,
  )
  assert.ok(thrown instanceof LarderError)
  assert.match(thrown.message, /OOM/)
  assert.ok(!/not connected/.test(thrown.message), thrown.message)
})

test('a connection dropped after a command timed out says so until it is back', { skip }, async () => {
  const server = await startRedis()
  const cache = await Larder.open({ dir: false, redis: { url: server.url, commandTimeout: '300ms' }, failOpen: false, memory: false })
  after(() => cache.close())
  await cache.set('k', 1)
  // Paused: the get times out and its connection is dropped; the set comes as it is opened again.
  server.cli('CLIENT', 'PAUSE', '3000', 'ALL')
  const first = await cache.get('k').then(
    () => undefined,
    (error: LarderError) => error,
  )
  assert.match(first?.message ?? '', /Command timed out/)
  const next = await cache.set('k', 2).then(
    () => undefined,
    (error: LarderError) => error,
  )
  server.cli('CLIENT', 'UNPAUSE')
  assert.ok(next instanceof LarderError)
  assert.equal(next.code, 'ERR_UNAVAILABLE')
  assert.ok(!/Stream isn't writeable/.test(next.message), next.message)
  assert.match(next.message, /not connected: Command timed out/)
})
