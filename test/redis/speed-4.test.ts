/**
 * Issue 10's fourth round of speed work on the Redis, bus and stack paths (W8), asserted by what
 * reaches Redis and by state, never by time (the figures are in
 * bench/results/2026-12-02-w8-speed-4.md): the versioned write stores a key Redis does not hold
 * with one `SET … NX` inside its script, reading a version only when the key is taken; the bus
 * recognises an instance's own message from the bytes Redis delivered and still applies every
 * other instance's.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { MonitorRecorder } from './monitor-recorder.ts'
import { listenTo, readFromRedis } from './readers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

/** The script's commands in `seen` on `name`: [NAME, the options after the value]. */
function onKey(seen: string[][], name: string): string[][] {
  return seen
    .filter(([, key]) => key === name)
    .map(([command, , ...rest]) => (command === 'set' ? [command, ...rest.slice(1)] : [command!]))
}

/** 16-byte head of an entry of ours (`LRDR`) whose version is `at`, then some bytes. */
function planted(at: number): Buffer {
  const head = Buffer.alloc(16)
  head.write('LRDR', 0, 'latin1')
  head.writeDoubleLE(at, 8)
  return Buffer.concat([head, Buffer.from('payload that is not read')])
}

describe('the versioned write: a key Redis does not hold is one SET NX inside the script', { skip }, () => {
  const prefix = `s4${process.pid}:`
  const name = (key: string): string => `${prefix}default:${key}`
  const recorder = new MonitorRecorder(server.url, 'scripts')
  let cache: Larder
  let probe: Redis
  let listener: Redis
  const heard: string[] = []
  before(async () => {
    probe = new Redis(server.url)
    listener = await listenTo(server.url, `${prefix}bus:default`, heard)
    cache = await Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { url: server.url, prefix } })
    await cache.set('warm', 0) // the script is loaded before anything is recorded
    await recorder.start()
  })
  after(async () => {
    recorder.stop()
    await cache?.close()
    probe?.disconnect()
    listener?.disconnect()
  })

  test('a new key: SET NX alone (no version read), stored, and the message published after it', async () => {
    const seen = await recorder.during(() => cache.set('fresh', { v: 1 }))
    assert.deepEqual(onKey(seen, name('fresh')), [['set', 'NX']], 'one SET NX, no GETRANGE')
    const publish = seen.findIndex(([command]) => command === 'publish')
    assert.ok(publish > seen.findIndex(([command, key]) => command === 'set' && key === name('fresh')), 'published after the write')
    const held = await probe.getBuffer(name('fresh'))
    assert.equal(held?.subarray(0, 4).toString('latin1'), 'LRDR')
    assert.ok(await eventually(() => heard.some((text) => text.includes('"fresh"'))))
  })

  test('a new key with a ttl: SET PXAT NX, and Redis expires it at its time', async () => {
    const before = Date.now()
    const seen = await recorder.during(() => cache.set('timed', 1, { ttl: 60_000 }))
    const [set] = onKey(seen, name('timed'))
    assert.deepEqual([set![0], set![1], set![3]], ['set', 'PXAT', 'NX'])
    const at = Number(set![2])
    assert.ok(at >= before + 60_000 && at <= Date.now() + 60_001, `expires at its time (${at})`)
    const ttl = await probe.pttl(name('timed'))
    assert.ok(ttl > 0 && ttl <= 60_000, `Redis's expiry is set (${ttl} ms)`)
  })

  test('a key holding an older entry: SET NX refused, its version read, then replaced', async () => {
    await probe.set(name('older'), planted(1))
    const seen = await recorder.during(() => cache.set('older', 'newer value'))
    assert.deepEqual(onKey(seen, name('older')), [['set', 'NX'], ['getrange'], ['set']])
    const held = await probe.getBuffer(name('older'))
    assert.ok(held !== null && held.readDoubleLE(8) > 1, "this write's version")
  })

  test('a key holding a newer entry: SET NX refused, its version read, kept; the message still goes', async () => {
    const newer = planted(Date.now() + 3_600_000)
    await probe.set(name('newer'), newer)
    const seen = await recorder.during(() => cache.set('newer', 'late value'))
    assert.deepEqual(onKey(seen, name('newer')), [['set', 'NX'], ['getrange']])
    assert.deepEqual(await probe.getBuffer(name('newer')), newer, 'the newer entry stays')
    assert.ok(await eventually(() => heard.some((text) => text.includes('"newer"'))))
  })

  test('a key holding a value of another type: replaced by the entry', async () => {
    await probe.hset(name('hash'), 'field', 'value')
    await cache.set('hash', 'an entry')
    assert.equal(await probe.type(name('hash')), 'string')
    assert.equal(await readFromRedis(server.url, prefix, 'hash'), 'an entry')
  })

  test('write-back batches go through the same script', async () => {
    const back = await Larder.open({
      dir: false,
      memory: { maxEntries: 100 },
      maintenance: false,
      writeStrategy: 'write-back',
      redis: { url: server.url, prefix },
    })
    try {
      const seen = await recorder.during(async () => {
        await back.set('queued', 1)
        await back.flush()
      })
      assert.deepEqual(onKey(seen, name('queued')), [['set', 'NX']])
    } finally {
      await back.close()
    }
  })
})

describe("the bus: an instance's own message recognised from its bytes, every other one applied", { skip }, () => {
  const prefix = `b4${process.pid}:`
  const channel = `${prefix}bus:default`
  let a: Larder
  let b: Larder
  let probe: Redis
  let listener: Redis
  const heard: string[] = []
  before(async () => {
    probe = new Redis(server.url)
    listener = await listenTo(server.url, channel, heard)
    const open = (): Promise<Larder> =>
      Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { url: server.url, prefix } })
    a = await open()
    b = await open()
  })
  after(async () => {
    await a?.close()
    await b?.close()
    probe?.disconnect()
    listener?.disconnect()
  })

  /** Whether `cache` answers `key` from its memory tier (a memory hit counted). */
  async function inMemory(cache: Larder, key: string): Promise<boolean> {
    const before = (await cache.stats()).tiers.memory!.hits
    await cache.get(key)
    return (await cache.stats()).tiers.memory!.hits === before + 1
  }

  test("a message that begins with A's own start is A's: A keeps its copy, B drops its own", async () => {
    const key = 'ключ-ü' // not ASCII: the bytes are decoded as the UTF-8 they are
    await a.set(key, 'value')
    assert.ok(await eventually(() => heard.some((text) => text.includes(key))))
    assert.equal(await b.get(key), 'value') // B reads it from Redis and holds it in memory
    assert.ok(await inMemory(a, key))
    assert.ok(await inMemory(b, key))
    // A's own message, as if about a change after both copies were made.
    const own = heard.find((text) => text.includes(key))!
    const later = own.replace(/,\d+(\.\d+)?\]\]\}$/, `,${Date.now() + 60_000}]]}`)
    assert.notEqual(later, own)
    await a.set('marker', 1)
    assert.ok(await inMemory(a, 'marker'))
    await probe.publish(channel, later)
    // Another sender's message behind it on the same channel: once A has acted on that one, it
    // has heard (and ignored) its own.
    await probe.publish(channel, JSON.stringify({ from: 'someone-else', op: 'keys', keys: [['marker', Date.now() + 60_000]] }))
    assert.ok(await eventually(async () => !(await inMemory(b, key))), 'B applied it: its copy is gone')
    assert.ok(await eventually(async () => !(await inMemory(a, 'marker'))), 'A heard what came after it')
    assert.ok(await inMemory(a, key), 'A recognised its own message and kept its copy')
  })

  test("another sender's message is decoded from its bytes and applied", async () => {
    await a.set('plain', 1)
    assert.ok(await inMemory(a, 'plain'))
    await probe.publish(channel, JSON.stringify({ from: 'someone-else', op: 'keys', keys: [['plain', Date.now() + 60_000]] }))
    assert.ok(await eventually(async () => !(await inMemory(a, 'plain'))), "A dropped its copy on another's message")
  })
})

describe('the outage rule at open: a local entry found valid is remembered, without a cache made at open', { skip }, () => {
  const prefix = `o4${process.pid}:`
  const recorder = new MonitorRecorder(server.url, 'clients')
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'larder-speed4-'))
    await recorder.start()
  })
  after(async () => {
    recorder.stop()
    await rm(dir, { recursive: true, force: true })
  })

  test('the first read of an older file entry asks Redis its version; the next one does not', async () => {
    const open = (): Promise<Larder> =>
      Larder.open({ dir, memory: { maxEntries: 10 }, maintenance: false, redis: { url: server.url, prefix } })
    const first = await open()
    await first.set('kept', 'value')
    await first.close()
    const again = await open() // its subscription at open is a reconnect: older file entries are re-validated
    try {
      const asked = await recorder.during(async () => assert.equal(await again.get('kept'), 'value'))
      assert.deepEqual(naming(asked, 'kept'), ['getrange'], "the file entry's version checked against Redis")
      await again.clear({ tier: 'memory' })
      const remembered = await recorder.during(async () => assert.equal(await again.get('kept'), 'value'))
      assert.deepEqual(naming(remembered, 'kept'), [], 'found valid once: read from its file without asking Redis')
      assert.equal((await again.stats()).tiers.file!.hits, 2)
    } finally {
      await again.close()
    }
  })
})

/** The names of the commands in `sent` that name `key`. */
function naming(sent: string[][], key: string): string[] {
  return sent.filter(([, ...args]) => args.some((a) => a.endsWith(`:${key}`))).map(([name]) => name!)
}
