/**
 * The Redis tier holds the entry file's bytes: with `encryption`, sealed ones. Values round
 * trip through Redis alone, nothing of them is readable in Redis, an instance without the key
 * misses without deleting, and one failing authentication (a re-checksummed edit) deletes.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import xxhash from 'xxhash-wasm'
import { Larder } from '../../src/index.ts'
import type { EncryptionOptions } from '../../src/crypto/keys.ts'
import { A_THEN_B, ONLY_A, ONLY_B } from '../encryption-helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)
const SECRET = 'a value nobody may read in Redis'

describe('encryption in the Redis tier', { skip }, () => {
  const prefix = `enc${process.pid}:`
  const name = (key: string): string => `${prefix}default:${key}`
  let raw: Redis
  const open = (encryption?: EncryptionOptions) =>
    Larder.open({
      dir: false,
      memory: false,
      maintenance: false,
      redis: { url: server.url, prefix },
      ...(encryption ? { encryption } : {}),
    })
  before(() => {
    raw = new Redis(server.url)
  })
  after(async () => {
    await raw?.quit()
  })

  test('values round trip through Redis sealed; Redis holds no plain text', async () => {
    const cache = await open(ONLY_A)
    for (const [key, value] of [
      ['small', { note: SECRET }],
      ['large', SECRET.repeat(5000)],
    ] as const) {
      await cache.set(key, value)
      const bytes = (await raw.getBuffer(name(key)))!
      assert.equal(bytes[7]! & 2, 2, 'SEALED')
      assert.ok(!bytes.includes(SECRET))
      assert.deepEqual(await cache.get(key), value)
    }
    await cache.close()
  })

  test('an instance without the key misses (reason key) and leaves the value; one with it reads it', async () => {
    const writer = await open(ONLY_A)
    await writer.set('k', 'under a')
    await writer.close()
    const other = await open(ONLY_B)
    const reasons: string[] = []
    other.on('corrupt', (r) => reasons.push(`${r.reason}:${r.detail}`))
    assert.equal(await other.get('k'), undefined)
    assert.deepEqual(reasons, ['key:missing key'])
    assert.ok((await raw.getBuffer(name('k'))) !== null, 'left in Redis')
    await other.close()
    const both = await open(A_THEN_B)
    assert.equal(await both.get('k'), 'under a')
    await both.close()
  })

  test('a sealed value edited and re-checksummed fails authentication: a miss, deleted', async () => {
    const cache = await open(ONLY_A)
    await cache.set('k', { note: SECRET })
    const bytes = (await raw.getBuffer(name('k')))!
    bytes.writeDoubleLE(Date.now() + 3_600_000, 16) // an expiry it was not written with
    const hasher = await xxhash()
    bytes.writeBigUInt64LE(hasher.h64Raw(bytes.subarray(0, bytes.length - 8), 0n), bytes.length - 8)
    await raw.set(name('k'), bytes)
    const reasons: string[] = []
    cache.on('corrupt', (r) => reasons.push(`${r.reason}:${r.detail}`))
    assert.equal(await cache.get('k'), undefined)
    assert.deepEqual(reasons, ['key:authentication failed'])
    assert.equal(await raw.getBuffer(name('k')), null, 'deleted')
    await cache.close()
  })
})
