import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { readAll } from './encryption-helpers.ts'
import { entryFiles, tempDir } from './helpers.ts'

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'v2')
const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'manifest.json'), 'utf8')) as {
  key: string
  options: object
  expect: unknown
  kind: string
}[]
// The fixture keys (fixtures/make-v2.ts): derived from fixed strings, they protect nothing.
const keys = {
  one: crypto.createHash('sha256').update('larder fixture key one').digest('hex'),
  two: crypto.createHash('sha256').update('larder fixture key two').digest('hex'),
}
const sha256 = (bytes: Buffer): string => crypto.createHash('sha256').update(bytes).digest('hex')

describe('entry format v2 (namespace id, sealed entries)', () => {
  test('every v2 fixture written by an earlier build reads back as recorded: the sealed ones with both keys listed, the unsealed one without keys', async () => {
    const dir = tempDir('larder-fixtures-v2')
    fs.cpSync(path.join(fixtures, 'cache'), dir, { recursive: true })
    for (const fixture of manifest) {
      // A cache with keys reads an unsealed entry as a forgery (test/encryption.test.ts).
      const encryption = fixture.key.startsWith('sealed:') ? { keys, activeKey: 'one' } : undefined
      const cache = await Larder.open({ dir, namespace: 'fixtures-v2', ...fixture.options, encryption })
      if (fixture.kind === 'stream') {
        const bytes = (await readAll(await cache.getStream(fixture.key)))!
        const expect = fixture.expect as { bytes: number; line: string; sha256: string }
        assert.equal(bytes.length, expect.bytes, fixture.key)
        assert.ok(bytes.toString().startsWith(expect.line))
        assert.equal(sha256(bytes), expect.sha256, fixture.key)
      } else {
        const value = await cache.get(fixture.key)
        const comparable =
          fixture.kind === 'msgpack-map'
            ? [...(value as Map<string, number>)]
            : fixture.kind === 'sha256'
              ? { sha256: sha256(Buffer.from(value as string)) }
              : value
        assert.deepEqual(comparable, fixture.expect, fixture.key)
      }
      assert.equal((await cache.stats()).corrupt, 0)
      await cache.close()
    }
    const files = entryFiles(dir)
    assert.equal(files.length, manifest.length)
    for (const file of files) assert.equal(fs.readFileSync(file)[4], 2, 'format v2')
  })

  test('under another namespace name, every v2 fixture copied there is a corrupt miss', async () => {
    const dir = tempDir('larder-fixtures-v2')
    fs.cpSync(path.join(fixtures, 'cache'), dir, { recursive: true })
    const [nsDir] = fs.readdirSync(path.join(dir, 'v1'))
    const other = await Larder.open({ dir, namespace: 'elsewhere', encryption: { keys, activeKey: 'one' } })
    await other.set('probe', 1) // creates its namespace directory
    const otherDir = fs.readdirSync(path.join(dir, 'v1')).find((d) => d !== nsDir && d.startsWith('ns-'))!
    for (const file of entryFiles(path.join(dir, 'v1', nsDir!))) {
      const partition = path.join(dir, 'v1', otherDir, path.basename(path.dirname(file)))
      fs.mkdirSync(partition, { recursive: true, mode: 0o700 })
      fs.copyFileSync(file, path.join(partition, path.basename(file)))
    }
    const reasons: string[] = []
    other.on('corrupt', (info) => reasons.push(info.reason))
    for (const fixture of manifest) assert.equal(await other.get(fixture.key), undefined, fixture.key)
    assert.equal(reasons.length, manifest.length)
    for (const reason of reasons) assert.match(reason, /another namespace/)
    await other.close()
  })
})
