/**
 * Issue 10's second round of speed work on the Redis, bus and stack paths (W8), asserted by
 * what reaches Redis and each connection, by state and by order, never by time (the figures
 * are in bench/results/2026-12-02-w8-speed-2.md).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { decodeMessage, encodeMessage, type BusMessage } from '../../src/bus/messages.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

/** A caller's ioredis client that logs, in order, each command it sends (marked when another
 *  is still awaiting its reply: sent behind it, in the same round trip) and each reply. */
function roundTripLog(): { client: Redis; log: string[] } {
  const client = new Redis(server.url)
  const log: string[] = []
  let inFlight = 0
  const send = client.sendCommand.bind(client)
  client.sendCommand = (command) => {
    log.push(`send ${command.name}${inFlight > 0 ? ' (behind another)' : ''}`)
    inFlight++
    command.promise.then(
      () => {
        inFlight--
        log.push(`reply ${command.name}`)
      },
      () => {
        inFlight--
        log.push(`failed ${command.name}`)
      },
    )
    return send(command)
  }
  return { client, log }
}

describe('getOrSet({ lock: true }) of a missing key: three round trips after its first read, not five', { skip }, () => {
  const prefix = `lk${process.pid}:`
  let cache: Larder
  let side: ReturnType<typeof roundTripLog>
  let probe: Redis
  before(async () => {
    side = roundTripLog()
    probe = new Redis(server.url)
    cache = await Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { client: side.client, prefix } })
    await cache.set('warm', 0) // the set script is loaded (EVAL once per server) outside what is logged
    await cache.getOrSet('warm-lock', () => 0, { lock: true }) // and the lock's scripts
    assert.ok(await eventually(async () => (await probe.exists(`${prefix}default:\0lock:warm-lock`)) === 0))
  })
  after(async () => {
    await cache?.close()
    side?.client.disconnect()
    probe?.disconnect()
  })

  test("the read after taking the lock goes out behind the lock's script, and the release is not waited for", async () => {
    side.log.length = 0
    assert.equal(await cache.getOrSet('missing', () => 'loaded', { lock: true }), 'loaded')
    side.log.push('resolved')
    assert.deepEqual(side.log, [
      'send getrange', // the first read (memory missed): at most maxValueSize + 1 bytes
      'reply getrange',
      'send evalsha', // the lock (TAKE_LOCK: SET NX PX)
      'send getrange (behind another)', // has a holder before us stored it? (in the same round trip)
      'reply evalsha',
      'reply getrange',
      'send evalsha', // the value stored (write-through)
      'reply evalsha',
      'send evalsha', // the release, sent…
      'resolved', // …but not waited for
    ])
    assert.ok(await eventually(() => side.log.at(-1) === 'reply evalsha'), 'the release was answered')
    assert.equal(await probe.exists(`${prefix}default:\0lock:missing`), 0, 'and the lock is gone')
    assert.equal(await probe.exists(`${prefix}default:missing`), 1, 'the value is in Redis')
  })

  test('a value found by the read behind the lock is returned, and the lock released, without calling the loader', async () => {
    // Another instance stores the key (and has released its lock) after this one's first read
    // missed and before it takes the lock: the read that goes with the lock must see it.
    const other = await Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { url: server.url, prefix } })
    try {
      let loads = 0
      const send = side.client.sendCommand.bind(side.client)
      let raced = false
      side.client.sendCommand = (command) => {
        const reply = send(command)
        if (command.name !== 'getrange' || raced) return reply
        raced = true // the first read: answered (a miss), then the other instance stores
        return (reply as Promise<unknown>).then(async (found) => {
          await other.getOrSet('raced', () => 'theirs', { lock: true })
          return found
        })
      }
      const value = await cache.getOrSet(
        'raced',
        () => {
          loads++
          return 'mine'
        },
        { lock: true },
      )
      side.client.sendCommand = send
      assert.equal(value, 'theirs')
      assert.equal(loads, 0)
      assert.ok(await eventually(async () => (await probe.exists(`${prefix}default:\0lock:raced`)) === 0), 'the lock was released')
    } finally {
      await other.close()
    }
  })
})

describe("a write's bus message, written out directly", () => {
  test('is the text the general encoding gives, and decodes to the message', () => {
    for (const keys of [
      [['k', 1]],
      [['with "quotes" and \\ and \u2028', 1796174896562.123]],
      [
        ['a', 0],
        ['b', 2.5],
      ],
    ] as [string, number][][]) {
      const message: BusMessage = { from: 'A1b2C3d4E5', op: 'keys', keys }
      const text = encodeMessage(message)
      assert.equal(text, JSON.stringify({ from: message.from, op: 'keys', keys }))
      assert.deepEqual(decodeMessage(text), message)
    }
  })
})
