/**
 * larder/undici's read path (issue 12's bench goal): a response that varies on nothing, most
 * of them, is stored without a tag, so its hit asks no tag clock; `delete` still forgets it
 * (by key) and every variant (by the URL's tag), as another instance on the directory sees.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Larder } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { keyOf, valueOf, write } from './undici-fixtures.ts'

const origin = 'http://localhost'

describe('larder/undici: what a hit costs', () => {
  let dir: string
  let cache: Larder
  let store: LarderCacheStore
  let other: Larder
  before(async () => {
    dir = tempDir('larder-undici-speed')
    cache = await Larder.open({ dir })
    store = new LarderCacheStore(cache)
    other = await Larder.open({ dir })
  })
  after(async () => {
    await store.close()
    await cache.close()
    await other.close()
  })

  /** Tags of every entry stored for `pathname` (as `larder ls` lists them), by entry key. */
  async function tagsOf(pathname: string): Promise<Record<string, string[]>> {
    const entries = await cache.entries({ prefix: `undici:GET ${origin}${pathname}` })
    return Object.fromEntries(entries.map((entry) => [entry.key, entry.tags]))
  }

  test('a response that varies on nothing carries no tag; a variant carries its URL tag', async () => {
    await write(store, keyOf('/plain'), valueOf(), ['plain'])
    await write(store, keyOf('/varied', { 'accept-language': 'en' }), valueOf({ vary: { 'accept-language': 'en' } }), ['en'])
    assert.deepEqual(await tagsOf('/plain'), { [`undici:GET ${origin}/plain`]: [] })
    const varied = Object.values(await tagsOf('/varied'))
    assert.deepEqual(varied, [[`undici:${origin}/varied`]])
  })

  test('delete forgets an untagged response, buffered or streamed, for another instance too; variants by their tag', async () => {
    // The variant first: a variant stored after the response that varies on nothing replaces it.
    await write(store, keyOf('/small', { 'accept-language': 'fr' }), valueOf({ vary: { 'accept-language': 'fr' } }), ['fr'])
    await write(store, keyOf('/small'), valueOf(), ['small'])
    await write(store, keyOf('/small', {}, 'HEAD'), valueOf(), [])
    await write(store, keyOf('/large'), valueOf(), [Buffer.alloc(200 * 1024, 7)])
    const seenElsewhere = new LarderCacheStore(other)
    assert.notEqual(await seenElsewhere.get(keyOf('/small')), undefined)
    assert.notEqual(await seenElsewhere.get(keyOf('/large')), undefined)

    await store.delete(keyOf('/small', {}, 'POST'))
    await store.delete(keyOf('/large', {}, 'PUT'))
    for (const key of [keyOf('/small'), keyOf('/small', {}, 'HEAD'), keyOf('/small', { 'accept-language': 'fr' }), keyOf('/large')]) {
      assert.equal(await store.get(key), undefined, `${key.method} ${key.path} ${JSON.stringify(key.headers)} here`)
      assert.equal(
        await seenElsewhere.get(key),
        undefined,
        `${key.method} ${key.path} ${JSON.stringify(key.headers)} in the other instance`,
      )
    }
    assert.deepEqual(await tagsOf('/large'), {}, 'the streamed entry file is gone, not only hidden')
    await seenElsewhere.close()
  })
})

describe('larder/undici: parsed heads', () => {
  test('each response reads back with its own head, past the bound of heads kept parsed, and after a replacement (of a head kept parsed too)', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-undici-heads') })
    const store = new LarderCacheStore(cache)
    const count = 300 // more than the heads kept parsed (256)
    for (let i = 0; i < count; i++)
      await write(store, keyOf(`/h${i}`), valueOf({ headers: { 'x-n': String(i) }, statusMessage: `m${i}` }), [`b${i}`])
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < count; i++) {
        const result = await store.get(keyOf(`/h${i}`))
        assert.equal(result?.headers['x-n'], String(i))
        assert.equal(result?.statusMessage, `m${i}`)
      }
    }
    // A small body is a Buffer (undici's Readable.from pushes it whole) whose values() gives it
    // whole, once (what undici writes back when a 304 renews the entry), not byte by byte.
    const { body } = (await store.get(keyOf('/h7')))!
    assert.ok(Buffer.isBuffer(body))
    assert.equal(body.toString(), 'b7')
    assert.deepEqual(
      [...body.values()].map((chunk) => String(chunk)),
      ['b7'],
    )
    await write(store, keyOf('/h0'), valueOf({ headers: { 'x-n': 'replaced' } }), ['new'])
    assert.equal((await store.get(keyOf('/h0')))?.headers['x-n'], 'replaced')
    // A head kept parsed (read just above) and then replaced under the same key: the new one
    // is read, whether its head is as long as the old one or not.
    const times = { cachedAt: Date.now(), staleAt: Date.now() + 60_000, deleteAt: Date.now() + 120_000 }
    for (const value of ['r99', 'r98', 'longer']) {
      await write(store, keyOf('/h299'), valueOf({ headers: { 'x-n': value }, statusMessage: 'm299', ...times }), ['new'])
      assert.equal((await store.get(keyOf('/h299')))?.headers['x-n'], value, `/h299 after its replacement by ${value}`)
    }
    await store.close()
    await cache.close()
  })
})
