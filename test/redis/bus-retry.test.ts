/**
 * The bus's outbox is left not only when Redis comes back (the breaker closing, the connection
 * ready again): a publish that failed while Redis still answers (a command timeout on a loaded
 * host, say) is tried again by itself. Seen in CI as test/redis/cluster.test.ts 'deleteMany is
 * split by slot, and the bus tells the other instance' failing under load: the delete's
 * message waited in the outbox for an event that never came, and the other instance kept
 * serving its copies.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Bus } from '../../src/bus/bus.ts'
import { DiskBreaker } from '../../src/resilience/disk-breaker.ts'
import { eventually, redisAvailable, startRedis } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'

test('a publish that failed while Redis still answers is sent again without any other event', { skip }, async () => {
  const server = await startRedis()
  const url = `redis://127.0.0.1:${server.port}`
  const [client, subscriber, listener] = [new Redis(url), new Redis(url), new Redis(url)]
  after(() => Promise.all([client.quit(), subscriber.quit(), listener.quit()]))
  const heard: string[] = []
  listener.on('message', (_channel: string, text: string) => heard.push(text))
  await listener.subscribe('larder-test:bus')
  const breaker = new DiskBreaker(
    { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeout: 5000, rollingCountTimeout: 10_000, timeout: 0 },
    () => {},
    () => true,
  )
  const bus = new Bus({
    client,
    breaker,
    subscriber,
    channel: 'larder-test:bus',
    received: () => {},
    beforeFlush: async () => {},
    connected: () => {},
    lost: () => {},
  })
  await bus.start(2000)

  // A real refusal by a connection that stays up: in subscriber mode, PUBLISH is not allowed.
  await client.subscribe('elsewhere')
  bus.publish({ op: 'keys', keys: [['user:1', 1]] })
  assert.ok(await eventually(() => bus.queued === 1), 'the failed publish waits in the outbox')
  assert.equal(breaker.state, 'closed', 'one failure does not open the breaker')
  await client.unsubscribe('elsewhere') // answers again: no reconnect, no breaker change, no other publish

  assert.ok(await eventually(() => heard.length === 1, 3000), 'the message went out by itself')
  assert.match(heard[0]!, /user:1/)
  assert.equal(bus.queued, 0)
  bus.close()
})
