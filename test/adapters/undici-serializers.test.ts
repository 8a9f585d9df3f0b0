/**
 * larder/undici over a cache of a custom serializer. Found by an adversarial review
 * (2026-12-06): the README said the store works over any serializer, but over a custom
 * `{ serialize, deserialize }` it cached nothing and said nothing: bytes read back as a
 * Uint8Array (as @msgpack/msgpack and CBOR libraries give them) were taken for no entry and
 * no index, and bytes a serializer cannot give back as bytes (JSON's `{ type: 'Buffer', data }`)
 * could never be read. The first now works; the second is refused at construction.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Larder, type LarderOptions } from 'larder'
import { LarderCacheStore } from 'larder/undici'
import { tempDir } from '../helpers.ts'
import { bodyText, keyOf, valueOf, write } from './undici-fixtures.ts'

type Serializer = Exclude<LarderOptions['serializer'], string | undefined>

/** JSON that keeps bytes as bytes, and gives them back as a Uint8Array (not a Buffer). */
const uint8Json: Serializer = {
  serialize: (value) =>
    new Uint8Array(
      Buffer.from(
        JSON.stringify(value, (_key, x: unknown) =>
          (x as { type?: unknown })?.type === 'Buffer' ? { $bytes: Buffer.from((x as { data: number[] }).data).toString('base64') } : x,
        ),
      ),
    ),
  deserialize: (bytes) =>
    JSON.parse(bytes.toString(), (_key, x: unknown) =>
      (x as { $bytes?: unknown })?.$bytes === undefined ? x : new Uint8Array(Buffer.from((x as { $bytes: string }).$bytes, 'base64')),
    ) as unknown,
}

/** Plain JSON: a Buffer comes back as `{ type: 'Buffer', data: [...] }`, not as bytes. */
const plainJson: Serializer = {
  serialize: (value) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes) => JSON.parse(bytes.toString()) as unknown,
}

describe('larder/undici over a custom serializer', () => {
  test('one that gives bytes back as a Uint8Array: responses are cached, those that vary too, and nothing is reported', async () => {
    for (const memory of [false, true]) {
      const cache = await Larder.open({ dir: tempDir('larder-undici-u8'), serializer: uint8Json, memory, maintenance: false })
      const reported: Error[] = []
      const store = new LarderCacheStore(cache, { errorCallback: (error) => reported.push(error) })
      try {
        for (const [size, vary] of [
          [100, false],
          [100, true],
          [200 * 1024, false],
          [200 * 1024, true],
        ] as const) {
          const key = keyOf(`/u8-${size}-${vary}`, vary ? { 'accept-language': 'en' } : {})
          await write(store, key, valueOf(vary ? { vary: { 'accept-language': 'en' } } : {}), [Buffer.alloc(size, 'u')])
          assert.equal((await bodyText(await store.get(key)))?.length, size, `memory ${memory}, ${size} bytes, vary ${vary}: served`)
          await store.delete(key)
          assert.equal(await store.get(key), undefined, `memory ${memory}, ${size} bytes, vary ${vary}: deleted`)
        }
        assert.deepEqual(reported, [])
      } finally {
        await store.close()
        await cache.close()
      }
    }
  })

  test('one that cannot give bytes back as bytes is refused at construction, naming the field', async () => {
    const refused = (error: unknown): boolean => {
      const e = error as { code?: unknown; field?: unknown }
      assert.equal(e.code, 'ERR_INVALID_OPTION')
      assert.equal(e.field, 'serializer')
      return true
    }
    assert.throws(() => new LarderCacheStore({ dir: tempDir('larder-undici-json-options'), serializer: plainJson }), refused)
    const cache = await Larder.open({ dir: tempDir('larder-undici-json'), serializer: plainJson, maintenance: false })
    try {
      assert.throws(() => new LarderCacheStore(cache), refused)
    } finally {
      await cache.close()
    }
  })
})
