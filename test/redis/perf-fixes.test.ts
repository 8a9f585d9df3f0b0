/**
 * The Redis tier's read and write paths (issue 10's speed work), asserted by what reaches
 * Redis and by state, never by time: a get below memory is one command, a write-through set
 * one command (the bus message goes with it) and a bounded number of promises, a Redis hit is
 * promoted while other keys change,
 * and getMany judges a value of another type like get does.
 */
import { createHook } from 'node:async_hooks'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder, type CorruptReport } from '../../src/index.ts'
import { MonitorRecorder } from './monitor-recorder.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

/** The names of the commands in `sent` that name `key` (any argument ending with it). */
function naming(sent: string[][], key: string): string[] {
  return sent.filter(([, ...args]) => args.some((a) => a.endsWith(`:${key}`))).map(([name]) => name!)
}

describe('the Redis tier: commands per operation', { skip }, () => {
  const prefix = `pf${process.pid}:`
  let writer: Larder
  let reader: Larder
  const recorder = new MonitorRecorder(server.url, 'clients')
  before(async () => {
    writer = await Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { url: server.url, prefix } })
    reader = await Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { url: server.url, prefix } })
    await writer.set('warm', 0) // the script is loaded (EVAL once per server), outside what is counted
    await recorder.start()
  })
  after(async () => {
    recorder.stop()
    await writer?.close()
    await reader?.close()
  })

  test('a write-through set is one command: the versioned write, its bus message published by the same script', async () => {
    await writer.set('one', { n: 1 })
    assert.ok(await eventually(async () => (await reader.get('one')) !== undefined))
    await reader.get('one') // now in the reader's memory
    // Until the reader has heard the message (its memory copy dropped, the new value read), so
    // a publish sent after the write is seen too.
    const sent = await recorder.during(async () => {
      await writer.set('one', { n: 2 })
      assert.ok(await eventually(async () => ((await reader.get('one')) as { n: number }).n === 2), 'the reader heard it')
    })
    assert.deepEqual(
      sent.map(([name]) => name).filter((name) => name !== 'getrange'),
      ['evalsha'],
    )
  })

  test('a get below the memory tier is one GETRANGE (at most maxValueSize + 1 bytes)', async () => {
    await writer.set('two', 2)
    assert.deepEqual(naming(await recorder.during(async () => assert.equal(await reader.get('two'), 2)), 'two'), ['getrange'])
    assert.deepEqual(
      naming(await recorder.during(async () => assert.equal(await reader.get('two'), 2)), 'two'),
      [],
      'promoted: the next get is a memory hit',
    )
  })

  test("a Redis hit is promoted into memory while another key's change is in flight", async () => {
    await writer.set('read-me', 'value')
    const before = (await reader.stats()).tiers.memory!.sets
    const [found] = await Promise.all([reader.get('read-me'), reader.set('busy', 1), reader.delete('busier')])
    assert.equal(found, 'value')
    assert.equal((await reader.stats()).tiers.memory!.sets, before + 2, 'the hit went into memory, beside the set of busy')
    assert.deepEqual(
      naming(await recorder.during(async () => assert.equal(await reader.get('read-me'), 'value')), 'read-me'),
      [],
      'a memory hit',
    )
  })

  test('a change of the same key in flight still stops the promotion', async () => {
    await writer.set('same', 'old')
    const [found] = await Promise.all([reader.get('same'), reader.delete('same')])
    assert.equal(found, 'old', 'called before the delete, the read sees the old value')
    assert.equal(await reader.get('same'), undefined, 'and did not promote it over the delete')
  })
})

describe('the Redis tier: promises per write', { skip }, () => {
  test('a write-through set makes at most 12 promises from its call to its answer (22 before the set path lost its async frames)', async () => {
    // Its own cache, and no MONITOR connection in this process (its replies make promises too).
    const writer = await Larder.open({
      dir: false,
      memory: { maxEntries: 100 },
      maintenance: false,
      redis: { url: server.url, prefix: `pc${process.pid}:` },
    })
    try {
      for (let i = 0; i < 20; i++) await writer.set('counted', i) // the key known, lazy parts made: the count is the steady one
      let made = 0
      const hook = createHook({
        init: (_id, type) => {
          if (type === 'PROMISE') made++
        },
      })
      hook.enable()
      try {
        await writer.set('counted', { n: 1 })
      } finally {
        hook.disable()
      }
      // With the hook on, V8 makes a promise for each await as well: a budget, not a floor.
      assert.ok(made <= 12, `${made} promises`)
      assert.deepEqual(await writer.get('counted'), { n: 1 })
    } finally {
      await writer.close()
    }
  })

  test('a get answered by Redis makes at most 10 promises from its call to its answer (17 before its reads lost their async frames)', async () => {
    const options = {
      dir: false,
      memory: { maxEntries: 100 },
      maintenance: false,
      redis: { url: server.url, prefix: `pg${process.pid}:` },
    } as const
    const writer = await Larder.open(options)
    const reader = await Larder.open(options)
    try {
      for (let i = 0; i < 40; i++) await writer.set(`r${i}`, { i })
      for (let i = 0; i < 20; i++) assert.deepEqual(await reader.get(`r${i}`), { i }) // compiled: the count is the steady one
      let made = 0
      const hook = createHook({
        init: (_id, type) => {
          if (type === 'PROMISE') made++
        },
      })
      hook.enable()
      let value: unknown
      try {
        value = await reader.get('r30')
      } finally {
        hook.disable()
      }
      assert.deepEqual(value, { i: 30 })
      assert.equal((await reader.stats()).tiers.redis!.hits, 21, 'answered by Redis')
      assert.ok(made <= 10, `${made} promises`)
    } finally {
      await writer.close()
      await reader.close()
    }
  })
})

describe('getMany and a value of another Redis type', { skip }, () => {
  const prefix = `pt${process.pid}:`
  const name = (key: string): string => `${prefix}default:${key}`
  let raw: Redis
  let cache: Larder
  const reports: CorruptReport[] = []
  before(async () => {
    raw = new Redis(server.url)
    cache = await Larder.open({ dir: false, memory: false, maintenance: false, redis: { url: server.url, prefix } })
    cache.on('corrupt', (report) => void reports.push(report))
  })
  after(async () => {
    await cache?.close()
    await raw?.quit()
  })

  test('a hash under one of the keys: a counted, reported miss, removed, not a Redis failure; the other keys are read', async () => {
    await cache.setMany([
      { key: 't1', value: 1 },
      { key: 't3', value: 3 },
    ])
    await raw.hset(name('t2'), 'field', 'value')
    const before = await cache.stats()
    assert.deepEqual(await cache.getMany(['t1', 't2', 't3', 'missing']), [1, undefined, 3, undefined])
    const figures = await cache.stats()
    assert.equal(figures.corrupt, before.corrupt + 1, 'counted as a damaged value, as get counts it')
    assert.equal(figures.tiers.redis!.errors, before.tiers.redis!.errors, 'not as a Redis failure')
    assert.ok(
      reports.some((r) => r.key === 't2'),
      'reported',
    )
    assert.equal(await raw.exists(name('t2')), 0, 'removed')
  })
})
