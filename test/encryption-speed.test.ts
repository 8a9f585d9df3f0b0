/**
 * Encryption's hot paths (issue 13's speed goals) keep the on-disk contract: what a buffered
 * entry is authenticated with, and what a read pays for it. The figures themselves are in
 * bench/ (`npm run bench:encryption`); these tests guard the behaviour the speed-ups rely on.
 */
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { KEY_A, layout, ONLY_A, open } from './encryption-helpers.ts'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-encryption-speed-'))
after(() => fs.rmSync(root, { recursive: true, force: true }))
let n = 0
const fresh = (): string => path.join(root, `c${n++}`)

/** Every entry file under a cache directory. */
function entryFiles(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map((name) => path.join(dir, name))
    .filter((file) => fs.statSync(file).isFile() && fs.readFileSync(file).subarray(0, 4).toString() === 'LRDR')
}

describe('sealed buffered entries', () => {
  test('a sealed entry written now opens with plain node:crypto under the documented authenticated data (head · trailer fields)', async () => {
    const dir = fresh()
    const cache = await open(dir, { encryption: ONLY_A, compression: 'none' })
    const value = { rows: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `user ${i}` })) }
    await cache.getOrSet('orm:users', () => Promise.resolve(value), { ttl: '1h', grace: '90s' }) // a grace, so the trailer is not all zeros
    await cache.close()
    const [file] = entryFiles(dir)
    const bytes = fs.readFileSync(file!)
    const { payloadOffset, payloadEnd, nonceAt } = layout(bytes)
    // The authenticated data, built here from the format's own description: every byte before
    // the payload, then the trailer's 24 bytes of fields (lengths, magic, grace).
    const aad = Buffer.concat([bytes.subarray(0, payloadOffset), bytes.subarray(payloadEnd, payloadEnd + 24)])
    const decipher = crypto.createDecipheriv('aes-256-gcm', KEY_A, bytes.subarray(nonceAt, nonceAt + 12), { authTagLength: 16 })
    decipher.setAAD(aad)
    decipher.setAuthTag(bytes.subarray(payloadEnd - 16, payloadEnd))
    const plain = Buffer.concat([decipher.update(bytes.subarray(payloadOffset, payloadEnd - 16)), decipher.final()])
    assert.deepEqual(JSON.parse(plain.toString()), value)
  })
})
