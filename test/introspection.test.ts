/**
 * Looking into a cache without reading values: info(), entries(), usage() and activity().
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Larder, isLarderError } from '../src/index.ts'

const dirs: string[] = []
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'larder-inspect-'))
  dirs.push(dir)
  return dir
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

test('info() describes an entry without counting a hit; undefined for misses and expired entries', async () => {
  const cache = await Larder.open({ dir: await freshDir(), maintenance: false })
  const before = Date.now()
  await cache.set('user:1', { name: 'ada', bio: 'x'.repeat(10_000) }, { ttl: '1h', tags: ['users'] })
  await cache.setStream('blob', Readable.from([Buffer.alloc(200_000, 7)]))
  await cache.set('short', 1, { ttl: 1 })
  const info = await cache.info('user:1')
  assert.ok(info !== undefined)
  assert.equal(info.key, 'user:1')
  assert.equal(info.codec, 'json')
  assert.equal(info.compression, 'deflate')
  assert.deepEqual(info.tags, ['users'])
  assert.ok(info.logicalSize > 10_000 && info.size < info.logicalSize, `${info.size} on disk for ${info.logicalSize}`)
  assert.ok(info.createdAt >= before && info.expiresAt! - info.createdAt === 3_600_000)
  const blob = await cache.info('blob')
  assert.equal(blob?.codec, 'stream')
  assert.equal(blob?.logicalSize, 200_000)
  assert.equal(blob?.expiresAt, null)
  await new Promise((resolve) => setTimeout(resolve, 5))
  assert.equal(await cache.info('short'), undefined)
  assert.equal(await cache.info('absent'), undefined)
  const stats = await cache.stats()
  assert.equal(stats.hits + stats.misses, 0, 'info() is not a read')
  await assert.rejects(cache.info(''), (e: unknown) => isLarderError(e, 'ERR_INVALID_KEY'))
  await cache.close()
})

test('entries() lists live entries with filters; usage() counts them by age; both validate input', async () => {
  const cache = await Larder.open({ dir: await freshDir(), maintenance: false })
  for (let i = 0; i < 50; i++) await cache.set(`k:${i}`, { i }, { tags: i % 5 === 0 ? ['five'] : [] })
  await cache.set('gone', 1, { ttl: 1 })
  await cache.set('other', 'x')
  await new Promise((resolve) => setTimeout(resolve, 5))
  assert.equal((await cache.entries()).length, 51)
  assert.equal((await cache.entries({ prefix: 'k:1' })).length, 11)
  assert.equal((await cache.entries({ pattern: 'k:?' })).length, 10)
  assert.deepEqual((await cache.entries({ tags: ['five'] })).map((e) => e.key).sort(), [
    'k:0',
    'k:10',
    'k:15',
    'k:20',
    'k:25',
    'k:30',
    'k:35',
    'k:40',
    'k:45',
    'k:5',
  ])
  const progress: string[] = []
  const usage = await cache.usage({ onProgress: (p) => progress.push(`${p.operation}:${p.phase}`) })
  assert.equal(usage.entries, 51)
  assert.equal(usage.expired, 1)
  assert.equal(usage.byAge[0]!.label, '1h')
  assert.equal(usage.byAge[0]!.entries, 51)
  assert.equal(
    usage.storedBytes,
    (await cache.entries()).reduce((sum, e) => sum + e.size, 0),
  )
  assert.ok(progress.length > 0 && progress.every((p) => p === 'usage:scan'))
  for (const bad of [{ prefix: '' }, { pattern: 5 }, { tags: 'five' }, { limit: 3 }]) {
    await assert.rejects(cache.entries(bad as never), (e: unknown) => isLarderError(e) && /^ERR_INVALID/.test(e.code), JSON.stringify(bad))
  }
  const controller = new AbortController()
  controller.abort()
  await assert.rejects(cache.usage({ signal: controller.signal }), (e: unknown) => isLarderError(e, 'ERR_ABORTED'))
  await cache.close()
})

test('activity() sums what closed instances of every process did, and survives a prune that folds the records', async () => {
  const dir = await freshDir()
  // Two other processes use the cache and exit without close(): their exit hook records them.
  const script = `
    const { Larder } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)})
    const cache = await Larder.open({ dir: process.argv[1], maintenance: false })
    await cache.set('a', 1); await cache.get('a'); await cache.get('a'); await cache.get('nope')
  `
  for (let i = 0; i < 2; i++) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir], { encoding: 'utf8' })
    assert.equal(child.status, 0, child.stderr)
  }
  const cache = await Larder.open({ dir, maintenance: false })
  let activity = await cache.activity()
  assert.deepEqual([activity.runs, activity.hits, activity.misses, activity.sets], [2, 4, 2, 2])
  assert.equal(activity.lastRun?.breaker, 'closed')
  assert.ok(Math.abs(activity.hitRate - 4 / 6) < 1e-9)
  await cache.prune()
  activity = await cache.activity()
  assert.deepEqual([activity.runs, activity.hits, activity.misses, activity.sets], [2, 4, 2, 2], 'folded, not lost or doubled')
  await cache.get('a')
  await cache.close()
  const reopened = await Larder.open({ dir, maintenance: false })
  activity = await reopened.activity()
  assert.deepEqual([activity.runs, activity.hits], [3, 5])
  await reopened.close()
})

test('activity records of a cache nobody prunes are folded by closing instances once they pile up', async () => {
  const dir = await freshDir()
  const first = await Larder.open({ dir, maintenance: false })
  await first.close()
  const records = path.join(dir, 'v1', 'default', 'meta', 'activity')
  fs.mkdirSync(records, { recursive: true })
  const record = {
    pid: 1,
    openedAt: 1_000,
    closedAt: 2_000,
    breaker: 'closed',
    hits: 1,
    misses: 1,
    memoryHits: 0,
    sets: 1,
    deletes: 0,
    expired: 0,
    corrupt: 0,
    errors: 0,
    dropped: 0,
    bytesRead: 0,
    bytesWritten: 0,
  }
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(records, `${1000 + i}.x${i}.json`), JSON.stringify(record))
  // One close in 16 looks; 400 closes miss it with probability (15/16)^400 ≈ 6e-12.
  for (let i = 0; i < 400 && fs.readdirSync(records).length > 1; i++) await (await Larder.open({ dir, maintenance: false })).close()
  assert.deepEqual(fs.readdirSync(records), ['total.json'])
  const cache = await Larder.open({ dir, maintenance: false })
  const activity = await cache.activity()
  await cache.close()
  assert.deepEqual([activity.runs, activity.hits, activity.misses, activity.sets], [300, 300, 300, 300])
})
