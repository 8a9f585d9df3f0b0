/**
 * `rekey` with `redis`: the values Redis holds for the namespace are rewritten under the active
 * key too, keeping their version and expiry, so that once the report shows nothing left under
 * the old key, the old key can go and no instance misses a value. A value changed while it is
 * rewritten is left as the writer made it; values under keys not listed, damaged ones and other
 * namespaces' are left. The CLI's `larder rekey --redis` does the same.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { Redis } from 'ioredis'
import { Larder, type LarderOptions } from '../../src/index.ts'
import type { EncryptionOptions } from '../../src/crypto/keys.ts'
import { repoRoot, runBin } from '../cli-runner.ts'
import { A_THEN_B, KEY_A, KEY_B, ONLY_A, ONLY_B, rechecksum } from '../encryption-helpers.ts'
import { tempDir } from '../helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)
const BIN = path.join(repoRoot, 'dist', 'cli.js')

/** The fingerprint each key id leaves in a sealed entry (bytes 40–47), learnt in before(). */
const FINGERPRINTS: Record<'a' | 'b', Buffer> = { a: Buffer.alloc(0), b: Buffer.alloc(0) }

/** The key a value's bytes are sealed under: 'a', 'b', 'plain' (not sealed) or 'unknown'. */
function sealedUnder(bytes: Buffer): string {
  if ((bytes[7]! & 2) === 0) return 'plain'
  for (const id of ['a', 'b'] as const) if (bytes.subarray(40, 48).equals(FINGERPRINTS[id])) return id
  return 'unknown'
}

describe('rekey with redis: the values Redis holds are rewritten under the active key', { skip }, () => {
  let prefix = ''
  let n = 0
  const name = (key: string): string => `${prefix}default:${key}`
  let raw: Redis
  const open = (encryption: EncryptionOptions | undefined, extra: Partial<LarderOptions> = {}) =>
    Larder.open({
      dir: false,
      memory: false,
      maintenance: false,
      redis: { url: server.url, prefix },
      ...(encryption ? { encryption } : {}),
      ...extra,
    })

  before(async () => {
    raw = new Redis(server.url)
    // The fingerprint each key id leaves in a sealed entry, learnt from an entry of each.
    prefix = `rkfp${process.pid}:`
    for (const [id, keys] of [
      ['a', ONLY_A],
      ['b', ONLY_B],
    ] as const) {
      const cache = await open(keys)
      await cache.set('probe', id)
      await cache.close()
      FINGERPRINTS[id] = Buffer.from((await raw.getBuffer(name('probe')))!.subarray(40, 48))
    }
    assert.ok(!FINGERPRINTS.a.equals(FINGERPRINTS.b))
  })
  after(async () => {
    await raw?.quit()
  })
  const fresh = (): void => {
    prefix = `rk${process.pid}-${n++}:`
  }

  test('entries under the old key and unsealed ones are rewritten, keeping value, version and expiry; the old key can then go', async () => {
    fresh()
    const plain = await open(undefined)
    await plain.set('plain', { was: 'not sealed' }, { tags: ['t'] })
    await plain.close()
    const old = await open(ONLY_A)
    const values = new Map<string, unknown>()
    for (let i = 0; i < 30; i++) {
      values.set(`k${i}`, { i, text: 'x'.repeat(i * 40) })
      await old.set(`k${i}`, values.get(`k${i}`), i % 2 === 0 ? { ttl: '1h' } : {})
    }
    await old.close()
    values.set('plain', { was: 'not sealed' })
    const before = new Map<string, { version: number; ttl: number }>()
    for (const key of values.keys()) {
      const bytes = (await raw.getBuffer(name(key)))!
      before.set(key, { version: bytes.readDoubleLE(8), ttl: await raw.pttl(name(key)) })
    }

    const rotating = await open(A_THEN_B)
    await rotating.set('new', 'already under b')
    const unsealed = await rotating.rekey()
    assert.equal(unsealed.redis!.unsealed, 1, 'without sealPlain, the value written before encryption is left')
    const report = await rotating.rekey({ sealPlain: true })
    await rotating.close()
    assert.deepEqual(report.redis, { scanned: 32, rekeyed: 1, current: 31, missingKey: 0, unsealed: 0, corrupt: 0, changed: 0 })
    assert.equal(report.scanned, 0, 'no directory (dir: false)')

    const onlyNew = await open(ONLY_B)
    for (const [key, value] of values) {
      const bytes = (await raw.getBuffer(name(key)))!
      assert.equal(sealedUnder(bytes), 'b', `${key} is sealed under b`)
      assert.equal(bytes.readDoubleLE(8), before.get(key)!.version, `${key} keeps its version (createdAt)`)
      const ttl = await raw.pttl(name(key))
      if (before.get(key)!.ttl === -1) assert.equal(ttl, -1, `${key} still never expires`)
      else assert.ok(ttl > 0 && ttl <= before.get(key)!.ttl, `${key} keeps its expiry (${ttl} after ${before.get(key)!.ttl})`)
      assert.deepEqual(await onlyNew.get(key), value, `${key} reads back under the new key alone`)
    }
    await onlyNew.invalidateTags(['t'])
    assert.equal(await onlyNew.get('plain'), undefined, 'its tags came along')
    assert.equal((await onlyNew.stats()).corrupt, 0)
    await onlyNew.close()

    const again = await open(A_THEN_B)
    const second = await again.rekey()
    await again.close()
    assert.equal(second.redis!.rekeyed, 0, 'a second rekey has nothing left to do')
    assert.equal(second.redis!.current, second.redis!.scanned)
  })

  test('values under keys not listed, damaged values, tombstones and other namespaces are left as they are', async () => {
    fresh()
    const onlyA = await open(ONLY_A)
    await onlyA.set('under-a', 1)
    await onlyA.close()
    const other = await open(ONLY_A, { namespace: 'other' })
    await other.set('elsewhere', 2)
    await other.close()
    const onlyB = await open(ONLY_B)
    await onlyB.set('damaged', 'will be edited')
    await onlyB.set('deleted', 'gone')
    await onlyB.delete('deleted') // leaves a tombstone
    await onlyB.close()
    const damaged = (await raw.getBuffer(name('damaged')))!
    damaged.writeDoubleLE(damaged.readDoubleLE(16) + 1000, 16) // an expiry it was not written with
    await raw.set(name('damaged'), rechecksum(damaged))
    await raw.set(name('foreign'), 'not an entry of ours')
    const otherNames = await raw.keys(`${prefix}ns-*`)
    assert.equal(otherNames.length, 1)
    const otherBefore = (await raw.getBuffer(otherNames[0]!))!

    const rotating = await open({ keys: { b: KEY_B, c: Buffer.from(KEY_A.map((x) => x ^ 1)) }, activeKey: 'c' })
    const report = await rotating.rekey()
    await rotating.close()
    assert.deepEqual(report.redis, { scanned: 3, rekeyed: 0, current: 0, missingKey: 1, unsealed: 0, corrupt: 2, changed: 0 })
    assert.equal(sealedUnder((await raw.getBuffer(name('under-a')))!), 'a', 'left under a key not listed')
    assert.deepEqual(await raw.getBuffer(name('damaged')), damaged, 'a damaged value is left for readers')
    assert.equal(await raw.get(name('foreign')), 'not an entry of ours')
    assert.deepEqual(await raw.getBuffer(otherNames[0]!), otherBefore, 'another namespace is not touched')
    assert.equal((await raw.getBuffer(name('deleted')))!.length, 16, 'the tombstone stays')
    const reader = await open(ONLY_A)
    assert.equal(await reader.get('under-a'), 1)
    await reader.close()
  })

  test('a value rewritten while rekey reads it keeps the writer’s version', async () => {
    fresh()
    const old = await open(ONLY_A)
    for (let i = 0; i < 200; i++) await old.set(`k${i}`, { i, old: true })
    await old.close()
    const rotating = await open(A_THEN_B)
    const writer = await open(A_THEN_B)
    // The writer overwrites every key while the rekey runs: each key ends either rekeyed
    // (then overwritten, or overwritten first and then current) or changed under the rekey.
    const writes = (async () => {
      for (let i = 0; i < 200; i++) await writer.set(`k${i}`, { i, old: false })
    })()
    const report = await rotating.rekey()
    await writes
    assert.equal(report.redis!.scanned, 200)
    assert.equal(report.redis!.rekeyed + report.redis!.current + report.redis!.changed, 200)
    const reader = await open(ONLY_B)
    for (let i = 0; i < 200; i++) assert.deepEqual(await reader.get(`k${i}`), { i, old: false }, `k${i} is the writer's value`)
    await Promise.all([rotating.close(), writer.close(), reader.close()])
  })

  test('a cancelled rekey rejects with ERR_ABORTED and a report of what it did', async () => {
    fresh()
    const old = await open(ONLY_A)
    for (let i = 0; i < 50; i++) await old.set(`k${i}`, i)
    await old.close()
    const rotating = await open(A_THEN_B)
    const controller = new AbortController()
    let seen = 0
    const error = await rotating
      .rekey({
        signal: controller.signal,
        onProgress: (p) => {
          if (p.phase === 'redis' && ++seen === 10) controller.abort()
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e as { code?: string; report?: { redis?: { rekeyed: number } } },
      )
    await rotating.close()
    assert.equal(error?.code, 'ERR_ABORTED')
    assert.ok(error.report?.redis !== undefined && error.report.redis.rekeyed >= 10 && error.report.redis.rekeyed < 50)
  })

  test('with a directory, both are rewritten: report.redis beside the files’ counts', async () => {
    fresh()
    const dir = tempDir('larder-rekey-redis')
    const old = await open(ONLY_A, { dir })
    for (let i = 0; i < 5; i++) await old.set(`k${i}`, i)
    await old.close()
    const rotating = await open(A_THEN_B, { dir })
    const report = await rotating.rekey()
    await rotating.close()
    assert.equal(report.rekeyed, 5, 'the entry files')
    assert.equal(report.redis!.rekeyed, 5, 'the Redis values')
  })

  test('larder rekey --redis rewrites the Redis values and reports them; without --redis it touches only the directory', async () => {
    fresh()
    const dir = tempDir('larder-rekey-redis-cli')
    const old = await open(ONLY_A, { dir })
    for (let i = 0; i < 4; i++) await old.set(`k${i}`, i)
    await old.close()
    const env = { LARDER_ENCRYPTION_KEYS: `b:${KEY_B.toString('hex')},a:${KEY_A.toString('hex')}` }
    const local = await runBin(BIN, ['--dir', dir, '--json', 'rekey'], { env })
    assert.equal(local.code, 0, local.stderr)
    assert.equal((JSON.parse(local.text) as { redis?: unknown }).redis, undefined)
    assert.equal(sealedUnder((await raw.getBuffer(name('k0')))!), 'a', 'Redis untouched without --redis')
    const shared = await runBin(BIN, ['--dir', dir, '--json', 'rekey', '--redis', server.url, '--redis-prefix', prefix], { env })
    assert.equal(shared.code, 0, shared.stderr)
    const report = JSON.parse(shared.text) as { current: number; redis: { rekeyed: number } }
    assert.equal(report.current, 4, 'the files were done by the first run')
    assert.equal(report.redis.rekeyed, 4)
    for (let i = 0; i < 4; i++) assert.equal(sealedUnder((await raw.getBuffer(name(`k${i}`)))!), 'b')
    const human = await runBin(BIN, ['--dir', dir, 'rekey', '--redis', server.url, '--redis-prefix', prefix], { env })
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.text, /Redis: checked 4 entries: 0 rewritten under key b, 4 already under it/)
    for (const text of [shared.text, shared.stderr, human.text, human.stderr])
      for (const key of [KEY_A, KEY_B]) assert.ok(!text.includes(key.toString('hex').slice(4, 40)))
  })
})
