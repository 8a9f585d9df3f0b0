/**
 * Encryption's settings at their edges (a review of keys and configuration, each case
 * reproduced before it was fixed): configure() cannot change the keyring (it resolved `[]` and
 * the cache went on writing plaintext), and no message shows a key, whatever the operator's
 * mistake (a key given as the active id, a config written key → id, a config file that is not
 * JSON); an id may be `__proto__`.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
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
