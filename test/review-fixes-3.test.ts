/**
 * Five reviews of the public surface (2026-12-06): the API's bad input and semantics, the CLI
 * and configuration, the adapters, the Redis tier and `larder serve`. Each test fails on the
 * code before its fix.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { entryFiles, tempDir } from './helpers.ts'

test('invalidateTags takes more tags than one entry may carry: each is invalidated', async () => {
  const cache = await Larder.open({ dir: tempDir(), maintenance: false })
  const tags = Array.from({ length: 200 }, (_, i) => `t${i}`)
  await cache.set('early', 1, { tags: ['t3'] })
  await cache.set('late', 2, { tags: ['t150'] })
  await cache.set('none', 3, { tags: ['other'] })
  await cache.invalidateTags(tags)
  assert.equal(await cache.get('early'), undefined)
  assert.equal(await cache.get('late'), undefined)
  assert.equal(await cache.get('none'), 3)
  await assert.rejects(cache.set('k', 1, { tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }), {
    code: 'ERR_INVALID_VALUE',
    field: 'tags',
  })
  await cache.close()
})

test('setStream: a source that throws when asked for its iterator (a locked web stream) rejects with its error; the entry it was to replace stays; nothing counted against the disk', async () => {
  const cache = await Larder.open({ dir: tempDir(), maintenance: false })
  await cache.setStream('x', ['previous build'])
  const body = new ReadableStream<Uint8Array>({ start: (c) => c.close() })
  body.getReader() // locked
  await assert.rejects(cache.setStream('x', body), /locked/)
  const stats = await cache.stats()
  assert.equal(stats.errors, 0)
  assert.equal(stats.dropped, 0)
  assert.equal(Buffer.concat(await (await cache.getStream('x'))!.toArray()).toString(), 'previous build')
  await cache.close()
})

test('setStream: a string chunk with a lone surrogate is refused (ERR_INVALID_VALUE, field source), not stored as U+FFFD', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, maintenance: false })
  await assert.rejects(cache.setStream('ls', ['a\uD800b']), { code: 'ERR_INVALID_VALUE', field: 'source' })
  assert.equal(await cache.getStream('ls'), undefined)
  assert.equal(entryFiles(dir).length, 0)
  assert.equal((await cache.stats()).errors, 0)
  await cache.close()
})

test('prune: a dryRun or listKeys that is not a boolean is refused, and nothing is removed', async () => {
  const cache = await Larder.open({ dir: tempDir(), maintenance: false })
  for (let i = 0; i < 5; i++) await cache.set(`user:${i}`, i)
  await assert.rejects(cache.prune({ pattern: 'user:*', dryRun: 'true' as unknown as boolean }), {
    code: 'ERR_INVALID_VALUE',
    field: 'dryRun',
  })
  await assert.rejects(cache.prune({ pattern: 'user:*', listKeys: 1 as unknown as boolean }), {
    code: 'ERR_INVALID_VALUE',
    field: 'listKeys',
  })
  assert.equal((await cache.entries()).length, 5)
  await cache.close()
})

test('close() called twice: the second resolves only once the first is done, with every write in flight on disk', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, maintenance: false })
  const writes = Array.from({ length: 50 }, (_, i) => cache.set(`k${i}`, 'x'.repeat(1000)))
  const first = cache.close()
  await cache.close()
  assert.equal(entryFiles(dir).length, 50, 'every write in flight is on disk when the second close resolves')
  await first
  await Promise.all(writes)
})

test('a setStream close() gave up on (failOpen): a counted drop, and the entry it was to replace is not served afterwards', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, maintenance: false })
  await cache.setStream('latest', ['previous build'])
  async function* slow(): AsyncGenerator<Buffer> {
    yield Buffer.from('new ')
    await delay(60_000)
    yield Buffer.from('build')
  }
  const stored = cache.setStream('latest', slow())
  await delay(100)
  await cache.close()
  await stored // resolves: failOpen's counted drop
  const reopened = await Larder.open({ dir, maintenance: false })
  assert.equal(await reopened.getStream('latest'), undefined, 'neither the old build nor a torn new one')
  await reopened.close()
})

test("set: the tags are those of the call, whatever becomes of the caller's array before the write runs", async () => {
  const cache = await Larder.open({ dir: tempDir(), maintenance: false })
  const first = cache.set('user:1', 'older') // the next write of the key queues behind this one
  const tags = ['user:1']
  const second = cache.set('user:1', { name: 'Ada' }, { tags })
  tags[0] = 'post:9'
  tags.push(...Array.from({ length: 100 }, (_, i) => `t${i}`))
  await Promise.all([first, second])
  assert.deepEqual((await cache.info('user:1'))?.tags, ['user:1'])
  await cache.invalidateTags(['user:1'])
  assert.equal(await cache.get('user:1'), undefined)
  assert.equal((await cache.stats()).corrupt, 0)
  await cache.close()
})

test("open() copies the caller's option groups: an options object changed and reused to open another cache changes nothing in the first", async () => {
  const base = { dir: tempDir(), memory: { maxEntries: 1000 }, maintenance: false as const }
  const a = await Larder.open(base)
  base.memory.maxEntries = 5
  const b = await Larder.open({ ...base, dir: tempDir() })
  const changes = await a.configure({ defaultTtl: '1h' })
  assert.deepEqual(
    changes.map((c) => c.field),
    ['defaultTtl'],
  )
  assert.equal(a.options.memory && a.options.memory.maxEntries, 1000)
  assert.equal(b.options.memory && b.options.memory.maxEntries, 5)
  await a.close()
  await b.close()
})

test('delete and deleteMany remove an entry sealed under a key this instance lacks (another process mid-rotation): it is not served after the delete', async () => {
  const dir = tempDir()
  const a = await Larder.open({ dir, maintenance: false, encryption: { keys: { current: 'a'.repeat(64) }, activeKey: 'current' } })
  const b = await Larder.open({ dir, maintenance: false, encryption: { keys: { current: 'b'.repeat(64) }, activeKey: 'current' } })
  await a.set('user:1', { name: 'old' })
  await a.set('user:2', { name: 'old2' })
  await a.setStream('artifact', [Buffer.alloc(300_000, 7)])
  assert.equal(await b.get('user:1'), undefined, 'b cannot read it')
  await b.delete('user:1')
  assert.equal(await a.get('user:1'), undefined, 'deleted for every process')
  await b.deleteMany(['user:2', 'artifact'])
  assert.equal(await a.get('user:2'), undefined)
  assert.equal(await a.getStream('artifact'), undefined)
  assert.equal(entryFiles(dir).length, 0)
  await a.close()
  await b.close()
})
