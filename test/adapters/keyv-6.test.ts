/**
 * larder/keyv with the real Keyv 6, which needs Node >= 22.19: run by the Node 24 pass,
 * skipped on Node 20. Keyv 6 lives in its own install (test/adapters/keyv-6/, put there by
 * scripts/test-peers.mjs) beside the root's Keyv 5. The same class serves both: Keyv 6 asks a
 * store for its `capabilities`, and the adapter then speaks Keyv 6's contract (absolute
 * expiry, keys without the namespace, a boolean per key from the batches). Keyv 6's own
 * conformance suite is not published (npm's @keyv/test-suite is Keyv 5's, which keyv.test.ts
 * runs), so these tests cover its contract's cases: the API through Keyv, namespaces kept apart
 * and cleared alone (in every instance sharing the directory), the iterator, expiry as the
 * entry's own, the batches' answers, keys larder would refuse, a restart, and a failing disk.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { describe, test } from 'node:test'
import { Larder } from 'larder'
import { KeyvLarder } from 'larder/keyv'
import { tempDir } from '../helpers.ts'
import { clearCase, failingDiskCase } from './keyv-fixtures.ts'

const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
const supported = major > 22 || (major === 22 && minor >= 19)
const skip = supported ? false : `Keyv 6 needs Node >= 22.19 (this is ${process.version}): the Node 24 pass runs these`
const INSTALL = path.join(import.meta.dirname, 'keyv-6', 'node_modules', 'keyv')

/** Keyv 6 as these tests use it (its declarations are in the separate install, which the
 *  root's type check does not see). */
interface Keyv6 {
  get(key: string): Promise<unknown>
  get(keys: string[]): Promise<unknown[]>
  set(key: string, value: unknown, ttl?: number): Promise<boolean>
  setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<boolean[]>
  has(key: string): Promise<boolean>
  hasMany(keys: string[]): Promise<boolean[]>
  delete(key: string): Promise<boolean>
  deleteMany(keys: string[]): Promise<boolean[] | boolean>
  clear(): Promise<void>
  iterator(): AsyncGenerator<[string, unknown]>
  disconnect(): Promise<void>
  on(event: 'error', listener: (error: unknown) => void): unknown
  store: unknown
}
type Keyv6Class = new (options: { store: unknown; namespace?: string }) => Keyv6

async function loadKeyv6(): Promise<Keyv6Class> {
  if (!fs.existsSync(path.join(INSTALL, 'package.json')))
    throw new Error(`Keyv 6 is not installed in ${path.dirname(path.dirname(INSTALL))}: run \`node scripts/test-peers.mjs\``)
  const version = (JSON.parse(fs.readFileSync(path.join(INSTALL, 'package.json'), 'utf8')) as { version: string }).version
  assert.match(version, /^6\./, `Keyv 6, found ${version}`)
  return ((await import(pathToFileURL(path.join(INSTALL, 'dist', 'index.mjs')).href)) as { Keyv: Keyv6Class }).Keyv
}

const Keyv = supported ? await loadKeyv6() : (undefined as unknown as Keyv6Class)

async function listed(keyv: Keyv6): Promise<Array<[string, unknown]>> {
  const out: Array<[string, unknown]> = []
  for await (const entry of keyv.iterator()) out.push(entry)
  return out.sort(([a], [b]) => a.localeCompare(b))
}

describe('larder/keyv on Keyv 6', { skip }, () => {
  test('Keyv 6 takes the store as it is (no bridge around it): get, set, has, delete, values of every JSON type', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-keyv6-api') })
    const store = new KeyvLarder(cache)
    const keyv = new Keyv({ store, namespace: 'app' })
    assert.equal(keyv.store, store, 'used directly: its capabilities declare the v6 contract')
    const values: unknown[] = ['text', 42, 0, false, null, [1, 'two'], { nested: { deep: [true] } }, '']
    for (const [i, value] of values.entries()) assert.equal(await keyv.set(`k${i}`, value), true)
    for (const [i, value] of values.entries()) assert.deepEqual(await keyv.get(`k${i}`), value)
    assert.equal(await keyv.has('k1'), true)
    assert.equal(await keyv.has('missing'), false)
    assert.equal(await keyv.get('missing'), undefined)
    assert.equal(await keyv.delete('k1'), true)
    assert.equal(await keyv.delete('k1'), false)
    assert.equal(await keyv.get('k1'), undefined)
    assert.ok((await cache.info('app::k0')) !== undefined, "stored under the namespace, as Keyv 6's own adapters join it")
    await keyv.disconnect()
    await cache.close()
  })

  test('namespaces are kept apart by the store: the same key in two namespaces and in none; the iterator lists its own', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-keyv6-ns') })
    const users = new Keyv({ store: new KeyvLarder(cache), namespace: 'users' })
    const posts = new Keyv({ store: new KeyvLarder(cache), namespace: 'posts' })
    const plain = new Keyv({ store: new KeyvLarder(cache) })
    await users.set('1', 'ada')
    await posts.set('1', 'hello')
    await plain.set('1', 'no namespace')
    assert.deepEqual([await users.get('1'), await posts.get('1'), await plain.get('1')], ['ada', 'hello', 'no namespace'])
    assert.deepEqual(await listed(users), [['1', 'ada']], 'keys as Keyv gave them')
    assert.deepEqual(await listed(plain), [['1', 'no namespace']])
    await users.clear()
    assert.deepEqual([await users.get('1'), await posts.get('1'), await plain.get('1')], [undefined, 'hello', 'no namespace'])
    await cache.close()
  })

  test('clear() empties its namespace in every instance sharing the directory, and nothing else', () =>
    clearCase((store, namespace) => new Keyv({ store, namespace })))

  test("Keyv 6's absolute expiry becomes the entry's own (maintenance reclaims it); a value read past it is gone", async () => {
    const cache = await Larder.open({ dir: tempDir('larder-keyv6-ttl') })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'ns' })
    const before = Date.now()
    await keyv.set('long', 'v', 3_600_000)
    await keyv.set('short', 'v', 30)
    await keyv.set('never', 'v')
    const expiresAt = (await cache.info('ns::long'))?.expiresAt ?? 0
    assert.ok(
      expiresAt >= before + 3_599_000 && expiresAt <= Date.now() + 3_600_000,
      `expiresAt ${expiresAt}: a ttl, not the timestamp taken as one`,
    )
    assert.equal((await cache.info('ns::never'))?.expiresAt, null)
    await sleep(60)
    assert.equal(await keyv.get('short'), undefined)
    await cache.prune()
    assert.deepEqual((await cache.entries()).map((e) => e.key).sort(), ['ns::long', 'ns::never'])
    await cache.close()
  })

  test('the batches answer a boolean per key: setMany (an expiry already past deletes), getMany, hasMany, deleteMany', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-keyv6-batch') })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'ns' })
    assert.deepEqual(
      await keyv.setMany([
        { key: 'a', value: 1 },
        { key: 'b', value: { two: 2 }, ttl: 60_000 },
        { key: 'c', value: 'three' },
      ]),
      [true, true, true],
    )
    assert.deepEqual(await keyv.get(['a', 'b', 'c', 'd']), [1, { two: 2 }, 'three', undefined])
    assert.deepEqual(await keyv.hasMany(['a', 'd']), [true, false])
    assert.deepEqual(await keyv.deleteMany(['a', 'd', 'c']), [true, false, true])
    assert.deepEqual(await keyv.get(['a', 'b', 'c']), [undefined, { two: 2 }, undefined])
    const store = keyv.store as KeyvLarder
    await store.set('ns::kept', 'x') // as Keyv would: under the namespace
    await (store as unknown as { setMany(e: Array<{ key: string; value: unknown; expires?: number }>): Promise<unknown> }).setMany([
      { key: 'b', value: 'gone', expires: Date.now() - 1 },
    ])
    assert.equal(await cache.info('ns::b'), undefined, 'an expiry already past deletes the key')
    await cache.close()
  })

  test('keys larder would refuse (over 8 KiB, a NUL) are stored hashed: read, listed and deleted as Keyv knows them', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-keyv6-keys') })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'ns' })
    const long = 'k'.repeat(9000)
    const nul = 'a\0b'
    await keyv.set(long, 'long')
    await keyv.set(nul, 'nul')
    assert.deepEqual([await keyv.get(long), await keyv.get(nul)], ['long', 'nul'])
    assert.deepEqual(
      (await listed(keyv)).map(([key, value]) => [key.length, value]),
      [
        [3, 'nul'],
        [9000, 'long'],
      ].sort(([a], [b]) => String(a).localeCompare(String(b))),
    )
    assert.equal(await keyv.delete(long), true)
    assert.equal(await keyv.get(long), undefined)
    await cache.close()
  })

  test('values survive a restart: a new Keyv over a store opened from options reads them', async () => {
    const dir = tempDir('larder-keyv6-restart')
    const first = new Keyv({ store: new KeyvLarder({ dir }), namespace: 'app' })
    await first.set('user:1', { name: 'ada' }, 60_000)
    await first.disconnect()
    const second = new Keyv({ store: new KeyvLarder({ dir }), namespace: 'app' })
    assert.deepEqual(await second.get('user:1'), { name: 'ada' })
    await second.disconnect()
  })

  test('a failing disk: reads miss, writes are dropped, nothing throws into Keyv 6, and its error event hears of it', () =>
    failingDiskCase((store, namespace) => new Keyv({ store, namespace })))
})
