/**
 * The test servers' own helper: a port taken by another redis-server between freePort() and
 * the bind is noticed (the PING answered by a server that is not ours), not used. In CI, two
 * test files at once once picked the same port: one file's tests ran against the other's
 * server, then got every command refused when that file ended, and hung.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { freePort, PortTaken, redisAvailable, RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'

describe('RedisServer.start', { skip }, () => {
  const servers: RedisServer[] = []
  after(() => Promise.all(servers.map((s) => s.stop())))

  test('refuses a port another redis-server answers on, and starts on a free one', async () => {
    const port = await freePort()
    const first = new RedisServer(port)
    servers.push(first)
    await first.start()
    const second = new RedisServer(port)
    servers.push(second)
    await assert.rejects(second.start(), PortTaken)
    assert.ok(first.ping(), 'the server that held the port is left running')
    const third = new RedisServer(await freePort())
    servers.push(third)
    await third.start()
    assert.ok(third.ping())
  })
})
