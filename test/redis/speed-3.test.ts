/**
 * Issue 10's third round of speed work on the Redis, bus and stack paths (W8), asserted by what
 * reaches Redis and by state, never by time (the figures are in
 * bench/results/2026-12-02-w8-speed-3.md): the versioned write and delete judge what Redis holds
 * by one unpack of its first 16 bytes; a write-through set sends one EVALSHA whose arguments are
 * the entry, its version, its expiry and its bus message; a write's message is encoded from its
 * sender's fixed start; an entry is encoded straight into one buffer.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { decodeMessage, encodeMessage, encoderFor, type BusMessage } from '../../src/bus/messages.ts'
import { checksum, loadHasher } from '../../src/format/checksum.ts'
import { decodeEntry, encodeEntry, encodeTags, FLAG_FRAMED, type EntryMeta } from '../../src/format/entry-format.ts'
import { readFromRedis } from './readers.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

/** 16-byte head of a value of ours (`LRDR` entry, `LRDT` tombstone) whose version is `at`,
 *  followed by `tail`. */
function planted(magic: 'LRDR' | 'LRDT', at: number, tail = 'payload that is not read'): Buffer {
  const head = Buffer.alloc(16)
  head.write(magic, 0, 'latin1')
  head.writeDoubleLE(at, 8)
  return Buffer.concat([head, Buffer.from(tail)])
}

/** A caller's ioredis client that records every command it sends, with its arguments. */
function recordingClient(): { client: Redis; sent: { name: string; args: unknown[] }[] } {
  const client = new Redis(server.url)
  const sent: { name: string; args: unknown[] }[] = []
  const send = client.sendCommand.bind(client)
  client.sendCommand = (command) => {
    sent.push({ name: command.name, args: [...command.args] })
    return send(command)
  }
  return { client, sent }
}

describe('the versioned write and delete: what Redis holds judged by one unpack of its head', { skip }, () => {
  const prefix = `v3${process.pid}:`
  const name = (key: string): string => `${prefix}default:${key}`
  let cache: Larder
  let probe: Redis
  let listener: Redis
  const heard: BusMessage[] = []
  before(async () => {
    probe = new Redis(server.url)
    listener = new Redis(server.url)
    listener.on('message', (_channel: string, text: string) => {
      const message = decodeMessage(text)
      if (message !== undefined) heard.push(message)
    })
    await listener.subscribe(`${prefix}bus:default`)
    cache = await Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { url: server.url, prefix } })
  })
  after(async () => {
    await cache?.close()
    probe?.disconnect()
    listener?.disconnect()
  })

  const heardOf = (key: string): boolean => heard.some((m) => m.op === 'keys' && m.keys.some(([k]) => k === key))

  test('a set keeps a newer entry or tombstone that Redis holds, and still publishes its message', async () => {
    for (const magic of ['LRDR', 'LRDT'] as const) {
      const key = `newer-${magic}`
      const newer = planted(magic, Date.now() + 3_600_000)
      await probe.set(name(key), newer)
      await cache.set(key, 'late')
      assert.deepEqual(await probe.getBuffer(name(key)), newer, `the newer ${magic} stays`)
      assert.ok(await eventually(() => heardOf(key)), 'the message went out all the same')
    }
  })

  test('a set replaces an older entry, a short value that begins like one, a foreign string and a value of another type', async () => {
    const olds: [string, () => Promise<unknown>][] = [
      ['older', () => probe.set(name('older'), planted('LRDR', 1))],
      ['older-tombstone', () => probe.set(name('older-tombstone'), planted('LRDT', 1))],
      ['short', () => probe.set(name('short'), 'LRDR\x02\x02\x00\x00')],
      ['foreign', () => probe.set(name('foreign'), 'a string that is not an entry of ours')],
      ['hash', () => probe.hset(name('hash'), 'field', 'value')],
    ]
    for (const [key, plant] of olds) {
      await plant()
      await cache.set(key, { replaced: key })
      const held = await probe.getBuffer(name(key))
      assert.ok(held !== null && held.subarray(0, 4).toString('latin1') === 'LRDR', `${key}: an entry of ours now`)
      assert.ok(held.readDoubleLE(8) > 1, `${key}: with this write's version`)
      assert.deepEqual(await readFromRedis(server.url, prefix, key), { replaced: key }, `${key}: read back from Redis`)
    }
  })

  test('a delete says an entry was there only for an entry, and keeps a newer version', async () => {
    await cache.set('gone', 1)
    assert.equal(await cache.delete('gone'), true, 'an entry was there')
    assert.equal(await cache.delete('gone'), false, 'a tombstone is not an entry')
    await probe.set(name('short-del'), 'LRDRxx')
    assert.equal(await cache.delete('short-del'), false, 'six bytes that begin like an entry are not one')
    const newer = planted('LRDR', Date.now() + 3_600_000)
    await probe.set(name('newer-del'), newer)
    assert.equal(await cache.delete('newer-del'), false, 'a newer entry is not deleted by an older delete')
    assert.deepEqual(await probe.getBuffer(name('newer-del')), newer)
  })
})

describe('a write-through set: one EVALSHA carrying the entry, its version, its expiry and its bus message', { skip }, () => {
  const prefix = `w3${process.pid}:`
  let side: ReturnType<typeof recordingClient>
  let probe: Redis
  let cache: Larder
  let capped: Larder
  before(async () => {
    side = recordingClient()
    probe = new Redis(server.url)
    cache = await Larder.open({ dir: false, memory: { maxEntries: 100 }, maintenance: false, redis: { client: side.client, prefix } })
    capped = await Larder.open({
      dir: false,
      memory: { maxEntries: 100 },
      maintenance: false,
      namespace: 'capped',
      redis: { client: side.client, prefix, ttl: '1m' },
    })
    await cache.set('warm', 0) // the script is loaded (EVAL once per server) before what is recorded
  })
  after(async () => {
    await cache?.close()
    await capped?.close()
    side?.client.disconnect()
    probe?.disconnect()
  })

  /** The one command `set` sent, as [key name, entry bytes, expiry, channel, message]. */
  async function setAlone(target: Larder, key: string, value: unknown, ttl?: number): Promise<unknown[]> {
    side.sent.length = 0
    await target.set(key, value, ttl === undefined ? undefined : { ttl })
    assert.deepEqual(
      side.sent.map((c) => c.name),
      ['evalsha'],
      'one command, nothing before or after it',
    )
    const [, keys, ...rest] = side.sent[0]!.args
    assert.equal(String(keys), '1')
    return rest
  }

  test('without a ttl: expiry 0 (no PXAT), no version beside the entry (its head carries it), the message names this write', async () => {
    const sent = await setAlone(cache, 'plain', { n: 1 })
    assert.equal(sent.length, 5, 'the key, the bytes, the expiry, the channel and the message: no version as text')
    const [keyName, bytes, expiry, channel, text] = sent
    assert.equal(keyName, `${prefix}default:plain`)
    assert.ok(Buffer.isBuffer(bytes))
    const createdAt = bytes.readDoubleLE(8)
    assert.equal(expiry, '0')
    assert.equal(channel, `${prefix}bus:default`)
    const message = decodeMessage(String(text))
    assert.ok(message !== undefined && message.op === 'keys')
    assert.deepEqual(message.keys, [['plain', createdAt]])
    assert.equal(await probe.pttl(`${prefix}default:plain`), -1, 'stored without an expiry')
    assert.deepEqual(await probe.getBuffer(`${prefix}default:plain`), bytes, 'the very bytes sent')
  })

  test('with a ttl: the expiry is the entry’s own, and Redis drops it then', async () => {
    const [keyName, bytes, expiry] = await setAlone(cache, 'timed', 'v', 3_600_000)
    assert.ok(Buffer.isBuffer(bytes))
    const expiresAt = bytes.readDoubleLE(16)
    assert.ok(expiresAt > Date.now())
    assert.equal(expiry, String(Math.ceil(expiresAt)))
    assert.equal(await probe.call('PEXPIRETIME', String(keyName)), Math.ceil(expiresAt))
  })

  test('with redis.ttl: an entry that never expires is kept in Redis for that long only', async () => {
    const before = Date.now()
    const [keyName, , expiry] = await setAlone(capped, 'capped', 'v')
    const until = Number(expiry)
    assert.ok(until >= before + 60_000 && until <= Date.now() + 60_000, `expiry ${until} is now + 1 minute`)
    assert.equal(await probe.call('PEXPIRETIME', String(keyName)), until)
  })
})

describe("a write's bus message, encoded from its sender's fixed start", () => {
  test('is the text encodeMessage gives for every kind of message', () => {
    const from = 'A1b2C3d4E5f60718'
    const encode = encoderFor(from)
    const messages = [
      { op: 'keys', keys: [['k', 1]] },
      { op: 'keys', keys: [['with "quotes" and \\ and \u2028', 1796174896562.123]] },
      {
        op: 'keys',
        keys: [
          ['a', 0],
          ['b', 2.5],
        ],
      },
      { op: 'clear', tier: 'memory', at: 5 },
      { op: 'tags', tags: ['t1', 't"2'], at: 6.5 },
      { op: 'all', at: 7 },
    ] as const
    for (const message of messages) {
      const full = { ...message, from } as BusMessage
      assert.equal(encode(message as Parameters<typeof encode>[0]), encodeMessage(full))
      assert.deepEqual(decodeMessage(encode(message as Parameters<typeof encode>[0])), full)
    }
  })
})

/** The entry layout written out plainly (zeroed buffers, BigInt lengths): the oracle the
 *  one-buffer encoding is held to. */
function plainEncoding(meta: EntryMeta, payload: Buffer, logicalLength: number, flags: number): Buffer {
  const key = Buffer.from(meta.key)
  const tags = encodeTags(meta.tags)
  const fixed = meta.namespaceId === undefined ? 32 : 64
  const head = Buffer.alloc(fixed + key.length + tags.length)
  head.write('LRDR', 0, 'latin1')
  head[4] = meta.namespaceId === undefined ? 1 : 2
  head[5] = meta.codec
  head[6] = meta.compression
  head[7] = flags
  head.writeDoubleLE(meta.createdAt, 8)
  head.writeDoubleLE(meta.expiresAt, 16)
  head.writeUInt32LE(key.length, 24)
  head.writeUInt32LE(tags.length, 28)
  if (meta.namespaceId !== undefined) {
    head.writeBigUInt64LE(meta.namespaceId, 32)
    if (meta.keyId !== undefined) head.writeBigUInt64LE(meta.keyId, 40)
    meta.nonce?.copy(head, 48)
  }
  key.copy(head, fixed)
  tags.copy(head, fixed + key.length)
  const trailer = Buffer.alloc(32)
  trailer.writeBigUInt64LE(BigInt(payload.length), 0)
  trailer.writeBigUInt64LE(BigInt(logicalLength), 8)
  trailer.write('LRDE', 16, 'latin1')
  if ((meta.grace ?? 0) > 0) trailer.writeUInt32LE(Math.min(0xffffffff, Math.ceil(meta.grace! / 1000)), 20)
  const file = Buffer.concat([head, payload, trailer])
  file.writeBigUInt64LE(checksum(file.subarray(0, file.length - 8)), file.length - 8)
  return file
}

describe('an entry encoded straight into one buffer', () => {
  test('is byte for byte the plain layout, whatever the memory it was made in held before', async () => {
    await loadHasher()
    let seed = 7
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const keys = ['k', 'a longer key with spaces', 'ключ-ü-😀', 'x'.repeat(300)]
    for (let i = 0; i < 400; i++) {
      // Fill the allocation pool with garbage first, so a byte the encoder leaves unwritten shows.
      for (let j = 0; j < 6; j++) Buffer.allocUnsafe(1500).fill(0xa5)
      const v2 = random(5) !== 0
      const sealedLike = v2 && random(3) === 0
      const meta: EntryMeta = {
        key: keys[random(keys.length)]!,
        codec: random(7),
        compression: random(4),
        createdAt: 1_796_000_000_000 + random(1_000_000) + random(1000) / 1000,
        expiresAt: random(2) === 0 ? 0 : 1_797_000_000_000 + random(1_000_000),
        tags: ['t1', 'tag two', 'ü'].slice(0, random(4)),
        grace: [0, 1, 1500, 2 ** 45][random(4)],
        namespaceId: v2 ? BigInt(random(2 ** 30)) * 4_294_967_296n + BigInt(random(2 ** 30)) : undefined,
        keyId: sealedLike ? 0x1234_5678_9abc_def0n : undefined,
        nonce: sealedLike ? Buffer.from('0123456789ab') : undefined,
      }
      const payload = Buffer.alloc(random(300), random(256))
      const logicalLength = [payload.length, 2 ** 33 + random(1000), random(1_000_000)][random(3)]!
      const flags = [0, FLAG_FRAMED][random(2)]!
      const file = encodeEntry(meta, Buffer.from(meta.key), encodeTags(meta.tags), payload, logicalLength, flags)
      assert.deepEqual(file, plainEncoding(meta, payload, logicalLength, flags), `entry ${i}`)
    }
    // And it reads back.
    const meta: EntryMeta = { key: 'k', codec: 1, compression: 0, createdAt: 5, expiresAt: 0, tags: ['t'], grace: 0, namespaceId: 9n }
    const entry = decodeEntry(encodeEntry(meta, Buffer.from('k'), encodeTags(['t']), Buffer.from('"v"'), 3, 0))
    assert.equal(entry.key, 'k')
    assert.deepEqual(entry.tags, ['t'])
    assert.equal(entry.payload.toString(), '"v"')
  })
})
