/**
 * Issue 10's speed work on the Redis, bus and stack paths (W8), asserted by state and by what
 * reaches Redis, never by time (the figures are in bench/results/*-w8-speed.md).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { decodeMessage, encodeMessage, sentBy, type BusMessage } from '../../src/bus/messages.ts'
import { HEARD_MAX, PromotionGuard } from '../../src/tiers/promotion-guard.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe('own bus messages are recognised by their first bytes', () => {
  const me = '0123456789abcdef'
  const messages: BusMessage[] = [
    { from: me, op: 'keys', keys: [['k', 1]] },
    { from: me, op: 'clear', tier: 'all', at: 2 },
    { from: me, op: 'tags', tags: ['t'], at: 3 },
    { from: me, op: 'all', at: 4 },
  ]

  test('every message as encoded begins with its sender, and decodes to itself', () => {
    for (const message of messages) {
      const text = encodeMessage(message)
      assert.equal(sentBy(me)(text), true, text)
      assert.deepEqual(decodeMessage(text), message)
    }
  })

  test("another instance's message is not taken for one's own, even when it names that id", () => {
    const other = encodeMessage({ from: 'fedcba9876543210', op: 'keys', keys: [[`{"from":"${me}",`, 1]] })
    assert.equal(sentBy(me)(other), false)
    assert.equal(sentBy(me)(`{"op":"keys","from":"${me}","keys":[]}`), false, 'only a message that begins with the sender')
  })
})

describe("the promotion guard's memory of changes heard", () => {
  test('forgets in bulk past its bound and still judges the most recent HEARD_MAX changes key by key', () => {
    const guard = new PromotionGuard()
    const old = guard.ticket()
    guard.heard('old', 101)
    for (let i = 1; i < HEARD_MAX + HEARD_MAX / 4; i++) guard.heard(`filler:${i}`, 1)
    // At the bulk bound, not past it: 'old' is still known by its key.
    assert.equal(guard.mayPromote('unrelated', 100, old), true)
    assert.equal(guard.mayPromote('old', 100, old), false)
    const recent = guard.ticket()
    guard.heard('recent', 201) // past the bound: the oldest go, down to HEARD_MAX
    assert.equal(guard.mayPromote('old', 100, old), false)
    assert.equal(guard.mayPromote('unrelated', 100, old), false, 'a read older than what was forgotten cannot be judged by key')
    assert.equal(guard.mayPromote('recent', 200, recent), false, 'a recent change is still known by its key')
    assert.equal(guard.mayPromote('unrelated', 200, recent), true, '…and does not stop a read of another key')
  })
})

describe('write-through set and getOrSet on Redis', { skip }, () => {
  let a: Larder
  let b: Larder
  let listener: Redis
  const heard: string[] = []
  const prefix = `sp${process.pid}:`
  before(async () => {
    const options = { dir: false as const, memory: { maxEntries: 100 }, maintenance: false as const, redis: { url: server.url, prefix } }
    a = await Larder.open(options)
    b = await Larder.open(options)
    listener = new Redis(server.url)
    listener.on('message', (_channel: string, text: string) => heard.push(text))
    await listener.subscribe(`${prefix}bus:default`)
  })
  after(async () => {
    listener?.disconnect()
    await a?.close()
    await b?.close()
  })

  test("a set is heard by the other instance, and its message begins with the writer's id", async () => {
    await b.set('seen', 'old')
    assert.equal(await b.get('seen'), 'old') // b holds it in memory
    heard.length = 0
    await a.set('seen', 'new')
    assert.ok(await eventually(async () => (await b.get('seen')) === 'new'), 'b dropped its copy and read the new value')
    assert.ok(await eventually(() => heard.length > 0))
    const [text] = heard as [string]
    const message = decodeMessage(text)
    assert.ok(message !== undefined && message.op === 'keys')
    assert.equal(sentBy(message.from)(text), true)
  })

  test('an instance does not act on its own messages: its memory keeps what it just wrote', async () => {
    await a.set('mine', 1)
    await a.set('mine', 2)
    const before = (await a.stats()).tiers.memory!
    assert.equal(await a.get('mine'), 2)
    const after = (await a.stats()).tiers.memory!
    assert.equal(after.hits, before.hits + 1, 'a memory hit: its own message dropped nothing')
  })
})

describe("the memory tier's last entry", { skip }, () => {
  const prefix = `sl${process.pid}:`
  const options = (evictionPolicy: 'lru' | 'random') => ({
    dir: false as const,
    memory: { maxEntries: 3 },
    maintenance: false as const,
    evictionPolicy,
    redis: { url: server.url, prefix: `${prefix}${evictionPolicy}:` },
  })

  for (const policy of ['lru', 'random'] as const) {
    test(`dropped by a bus message, it leaves a tier that misses it and holds what comes next (${policy})`, async () => {
      const a = await Larder.open(options(policy))
      const b = await Larder.open(options(policy))
      try {
        await a.set('only', 1)
        assert.equal(await b.get('only'), 1)
        assert.equal((await b.stats()).memoryEntries, 1, 'b holds one entry: the one the message drops')
        await a.set('only', 2)
        assert.ok(await eventually(async () => (await b.get('only')) === 2), 'b dropped its copy and read the new value')
        for (const key of ['k1', 'k2', 'k3', 'k4']) await b.set(key, key)
        const held = (await b.stats()).memoryEntries
        assert.equal(held, 3, 'the tier is full at its bound, not past it')
        let found = 0
        for (const key of ['only', 'k1', 'k2', 'k3', 'k4']) if ((await b.get(key)) !== undefined) found++
        assert.equal(found, 5, 'every key reads (from memory or Redis)')
      } finally {
        await a.close()
        await b.close()
      }
    })
  }
})
