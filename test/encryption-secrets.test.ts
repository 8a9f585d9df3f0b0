/**
 * Encryption's settings at their edges (a review of keys and configuration, each case
 * reproduced before it was fixed): configure() cannot change the keyring (it resolved `[]` and
 * the cache went on writing plaintext), and no message shows a key, whatever the operator's
 * mistake (a key given as the active id, a config written key → id, a config file that is not
 * JSON); an id may be `__proto__`.
 */
import assert from 'node:assert/strict'
import { KeyObject } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { inspect } from 'node:util'
import { describe, test } from 'node:test'
import { Larder, LarderError, type EncryptionOptions } from '../src/index.ts'
import { KEY_A, KEY_B, ONLY_A } from './encryption-helpers.ts'
import { tempDir } from './helpers.ts'

const HEX_A = KEY_A.toString('hex')

/** Rejects with ERR_INVALID_OPTION whose message holds nothing of `secret`. */
async function refusedWithout(secret: string, opening: Promise<unknown>): Promise<string> {
  let message = ''
  await assert.rejects(opening, (error: unknown) => {
    assert.ok(error instanceof LarderError && error.code === 'ERR_INVALID_OPTION', String(error))
    message = error.message + JSON.stringify(error)
    return true
  })
  for (let at = 0; at + 8 <= secret.length; at += 8)
    assert.ok(!message.includes(secret.slice(at, at + 8)), `no part of the key: ${message}`)
  return message
}

describe('encryption settings', () => {
  test('configure() refuses any change of the keyring, naming it', async () => {
    const dir = tempDir('larder-configure-keys')
    const sealed = await Larder.open({ dir, memory: false, encryption: ONLY_A })
    const others: (EncryptionOptions | undefined)[] = [
      { keys: { b: KEY_B }, activeKey: 'b' },
      { keys: { a: KEY_B }, activeKey: 'a' },
      undefined,
    ]
    for (const encryption of others) {
      await assert.rejects(sealed.configure({ encryption }), { code: 'ERR_INVALID_OPTION', field: 'encryption.keys' })
    }
    assert.deepEqual(await sealed.configure({ encryption: ONLY_A }), [], 'the same keyring again changes nothing')
    await sealed.close()

    const plainDir = tempDir('larder-configure-keys')
    const plain = await Larder.open({ dir: plainDir, memory: false })
    await assert.rejects(plain.configure({ encryption: ONLY_A }), { code: 'ERR_INVALID_OPTION', field: 'encryption.keys' })
    await plain.close()
  })

  test('no message shows a key: one given as the active id, a config file written key → id, a config file that is not JSON', async () => {
    const env = { LARDER_ENCRYPTION_KEYS: `k1:${HEX_A}`, LARDER_ENCRYPTION_ACTIVE_KEY: HEX_A }
    const message = await refusedWithout(HEX_A, Larder.open({ dir: tempDir('larder-secrets'), config: { env, file: false } }))
    assert.match(message, /LARDER_ENCRYPTION_ACTIVE_KEY/)
    const folder = tempDir('larder-secrets')
    const file = path.join(folder, 'larder.config.json')
    const open = (): Promise<Larder> => Larder.open({ dir: path.join(folder, 'c'), config: { env: false, cwd: folder } })
    fs.writeFileSync(file, JSON.stringify({ encryption: { keys: { [KEY_A.toString('base64')]: 'a' }, activeKey: 'a' } }), { mode: 0o600 })
    await refusedWithout(KEY_A.toString('base64'), open())
    for (const text of [
      `{ "encryption": { "keys": { "a": "${HEX_A}", }, "activeKey": "a" } }`,
      `{ "encryption": { "keys": { "a": '${HEX_A}' }, "activeKey": "a" } }`,
      `{"encryption":{"keys":{"a":"${HEX_A}}},"activeKey":"a"}}`,
    ]) {
      fs.writeFileSync(file, text)
      assert.match(await refusedWithout(HEX_A, open()), /is not JSON \(a syntax error/)
    }
  })

  test('an id of __proto__ in LARDER_ENCRYPTION_KEYS is an id like another', async () => {
    const dir = tempDir('larder-proto-id')
    const env = { LARDER_ENCRYPTION_KEYS: `__proto__:${HEX_A}` }
    const cache = await Larder.open({ dir, config: { env, file: false } })
    assert.deepEqual(cache.options.encryption?.toJSON(), { keys: ['__proto__'], activeKey: '__proto__' })
    await cache.set('k', 'v')
    await cache.close()
    const again = await Larder.open({ dir, encryption: { keys: { ['__proto__']: KEY_A }, activeKey: '__proto__' } })
    assert.equal(await again.get('k'), 'v')
    await again.close()
  })
})

describe('what cache.options.encryption reaches', () => {
  test('no property, getter or method of the keyring the options show hands out a key', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-keyring-reach'), memory: false, encryption: ONLY_A })
    try {
      const ring = cache.options.encryption!
      const found: string[] = []
      const judge = (name: string, value: unknown): void => {
        const text = value instanceof KeyObject ? value.export().toString('hex') : inspect(value, { depth: 5, showHidden: true })
        if (value instanceof KeyObject || Buffer.isBuffer(value) || text.includes(HEX_A)) found.push(name)
        else if (Array.isArray(value)) value.forEach((item, i) => judge(`${name}[${i}]`, item))
        else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) judge(`${name}.${k}`, v)
      }
      for (
        let proto: object | null = ring;
        proto !== null && proto !== Object.prototype;
        proto = Object.getPrototypeOf(proto) as object | null
      ) {
        for (const name of Reflect.ownKeys(proto)) {
          if (name === 'constructor') continue
          const value: unknown = Reflect.get(ring, name)
          if (typeof value !== 'function') {
            judge(String(name), value)
            continue
          }
          // Called as larder's own code would: with nothing, with the active key's fingerprint.
          for (const args of [[], [ring.activeId]]) {
            try {
              judge(`${String(name)}()`, (value as (...a: unknown[]) => unknown).apply(ring, args))
            } catch {
              // a method that needs other arguments hands out nothing either
            }
          }
        }
      }
      assert.deepEqual(found, [])
      assert.deepEqual(ring.ids, ['a'])
      await cache.set('k', 'sealed') // the cache itself still seals and opens with the key
      assert.equal(await cache.get('k'), 'sealed')
    } finally {
      await cache.close()
    }
  })
})
