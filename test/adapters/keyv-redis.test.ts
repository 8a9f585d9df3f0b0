/**
 * larder/keyv over the Redis shared tier: Keyv's `iterator()` lists a namespace as every host
 * sharing Redis sees it, against a real redis-server.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { setTimeout } from 'node:timers/promises'
import { after, describe, test } from 'node:test'
import Keyv from 'keyv'
import { Larder, type LarderOptions } from 'larder'
import { KeyvLarder } from 'larder/keyv'
import { tempDir } from '../helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from '../redis/server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

let n = 0
const fresh = (): string => `kr${process.pid}-${n++}:`
const caches: Larder[] = []
after(async () => {
  for (const cache of caches) await cache.close()
})

/** A host: a cache of its own over the shared Redis, and a Keyv of `namespace` on it. */
async function host(prefix: string, namespace: string, options: Partial<LarderOptions> = {}): Promise<{ keyv: Keyv; errors: unknown[] }> {
  const cache = await Larder.open({ dir: tempDir(), redis: { url: server.url, prefix }, maintenance: false, ...options })
  caches.push(cache)
  const keyv = new Keyv({ store: new KeyvLarder(cache), namespace })
  const errors: unknown[] = []
  keyv.on('error', (error) => errors.push(error))
  return { keyv, errors }
}

async function listed(keyv: Keyv): Promise<Record<string, unknown>> {
  const found: Record<string, unknown> = {}
  for await (const [key, value] of keyv.iterator!(undefined) as AsyncIterable<[string, unknown]>) found[key] = value
  return found
}

describe('larder/keyv over Redis', { skip }, () => {
  test("iterator() lists what other hosts wrote to Redis, with a directory or none, and only the namespace's live keys", async () => {
    const prefix = fresh()
    const writer = await host(prefix, 'users')
    const others = await host(prefix, 'posts')
    for (const id of [1, 2, 3]) await writer.keyv.set(String(id), { id })
    await others.keyv.set('9', { id: 9 })
    const expected = { '1': { id: 1 }, '2': { id: 2 }, '3': { id: 3 } }

    const reader = await host(prefix, 'users') // its own directory, which never held these
    assert.deepEqual(await listed(reader.keyv), expected, 'a host with its own directory lists what Redis holds')
    const bare = await host(prefix, 'users', { dir: false })
    assert.deepEqual(await listed(bare.keyv), expected, 'a host with no directory too')
    assert.deepEqual(await listed(writer.keyv), expected, 'the writer: its files and Redis, each key once')
    assert.deepEqual(await listed(others.keyv), { '9': { id: 9 } })

    await writer.keyv.delete('2')
    // The bare host's memory holds '2' (its listing read it): the bus drops it, as for a get.
    while ((await bare.keyv.get('2')) !== undefined) await setTimeout(5)
    assert.deepEqual(await listed(bare.keyv), { '1': { id: 1 }, '3': { id: 3 } }, 'a deleted key is gone')
    await writer.keyv.clear()
    assert.deepEqual(await listed(reader.keyv), {}, 'a cleared namespace lists nothing')
    while ((await bare.keyv.get('1')) !== undefined) await setTimeout(5) // the bus, as above
    assert.deepEqual(await listed(bare.keyv), {})
    assert.deepEqual(await listed(others.keyv), { '9': { id: 9 } }, 'the other namespace keeps its key')
    assert.deepEqual([...writer.errors, ...others.errors, ...reader.errors, ...bare.errors], [], 'no error event')
  })

  test('cache-aside: the writer, which keeps nothing locally, lists what it wrote', async () => {
    const writer = await host(fresh(), 'jobs', { writeStrategy: 'cache-aside' })
    await writer.keyv.set('a', 'A')
    await writer.keyv.set('b', 'B')
    assert.deepEqual(await listed(writer.keyv), { a: 'A', b: 'B' })
    assert.deepEqual(writer.errors, [])
  })

  test('Redis gone: the listing ends with what the directory held, and Keyv hears why', async () => {
    const dying = await startRedis()
    const cache = await Larder.open({
      dir: tempDir(),
      redis: { url: dying.url, prefix: fresh(), commandTimeout: '100ms' },
      maintenance: false,
    })
    caches.push(cache)
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'n' })
    const errors: unknown[] = []
    cache.on('error', (error) => errors.push(error)) // a cache passed in: its owner hears failures
    await keyv.set('local', 1)
    await dying.kill()
    const before = (await cache.stats()).tiers.redis!.errors
    assert.deepEqual(await listed(keyv), { local: 1 })
    assert.ok(errors.length > 0, 'the failed listing of Redis is reported')
    assert.ok((await cache.stats()).tiers.redis!.errors > before, 'and counted as a Redis error')
  })

  test('failOpen false: Redis failing the listing throws ERR_UNAVAILABLE, as a failed get does', async () => {
    const dying = await startRedis()
    const cache = await Larder.open({
      dir: tempDir(),
      redis: { url: dying.url, prefix: fresh(), commandTimeout: '100ms' },
      maintenance: false,
      failOpen: false,
    })
    caches.push(cache)
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'n' })
    await keyv.set('local', 1)
    await dying.kill()
    await assert.rejects(listed(keyv), (error: Error & { code?: string }) => error.code === 'ERR_UNAVAILABLE')
  })

  test('dir: false: values only the memory tier holds are listed (over maxValueSize; queued by write-back)', async () => {
    const prefix = fresh()
    const big = randomBytes(3000).toString('base64') // incompressible: over 1 KiB in Redis too
    const bare = await host(prefix, 'm', { dir: false, redis: { url: server.url, prefix, maxValueSize: '1KiB' } })
    await bare.keyv.set('big', big)
    await bare.keyv.set('small', 's')
    const queued = await host(prefix, 'm', {
      dir: false,
      writeStrategy: 'write-back',
      writeBack: { maxDelay: '1h' },
      redis: { url: server.url, prefix, maxValueSize: '1KiB' },
    })
    await queued.keyv.set('later', 'l')
    assert.deepEqual(await listed(bare.keyv), { big, small: 's' }, 'the value too large for Redis, from memory')
    assert.deepEqual(await listed(queued.keyv), { small: 's', later: 'l' }, 'the value write-back has not sent yet')
    assert.deepEqual([...bare.errors, ...queued.errors], [])
  })

  test('dir: false and no Redis: a memory-only Keyv lists its namespace', async () => {
    const cache = await Larder.open({ dir: false, maintenance: false })
    caches.push(cache)
    const users = new Keyv({ store: new KeyvLarder(cache), namespace: 'users' })
    const posts = new Keyv({ store: new KeyvLarder(cache), namespace: 'posts' })
    await users.set('1', 'one')
    await users.set('2', 'two')
    await posts.set('1', 'post')
    assert.deepEqual(await listed(users), { '1': 'one', '2': 'two' })
    await users.clear()
    assert.deepEqual(await listed(users), {})
    assert.deepEqual(await listed(posts), { '1': 'post' })
  })
})
