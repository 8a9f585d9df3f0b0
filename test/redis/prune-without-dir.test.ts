/**
 * prune() of a cache with `redis` and no directory (`dir: false`, the two-level shape: memory
 * and Redis). It used to refuse outright ("needs a cache directory"), and nothing else ran, so
 * an entry without a ttl invalidated by its tag stayed in Redis for good in a fleet where every
 * instance runs without a directory (Redis grew with every Keyv clear or ORM table write).
 * Now prune() does Redis's part (a `pattern`, the dead entries), refuses what only entry files
 * could answer, and `maintenance.interval` runs it.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { Larder, LarderError, type PruneReport } from '../../src/index.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

/** The namespace's entry names Redis holds, as keys (larder's own NUL-led names left out). */
async function keysIn(raw: Redis, prefix: string): Promise<string[]> {
  const base = `${prefix}default:`
  return (await raw.keys(`${base}*`))
    .map((name) => name.slice(base.length))
    .filter((key) => !key.startsWith('\0'))
    .sort()
}

describe('prune() without a directory', { skip }, () => {
  test('removes the entries a tag invalidated from Redis, and the keys a pattern matches everywhere', async () => {
    const prefix = `pwd-${process.pid}-a:`
    const raw = new Redis(server.port, '127.0.0.1')
    const open = (): Promise<Larder> => Larder.open({ dir: false, memory: { maxEntries: 100 }, redis: { url: server.url, prefix } })
    const [a, b] = [await open(), await open()]
    try {
      for (let i = 0; i < 20; i++) await a.set(`row${i}`, i, { tags: ['users'] })
      for (let i = 0; i < 3; i++) await a.set(`x${i}`, i)
      await a.set('live', 'kept')
      for (let i = 0; i < 3; i++) assert.equal(await b.get(`x${i}`), i, 'b holds a copy in memory')
      await a.invalidateTags(['users'])
      assert.equal((await keysIn(raw, prefix)).length, 24, 'Redis still holds the invalidated rows')

      const report = await a.prune({ pattern: 'x*' })
      assert.equal(report.sharedRemoved, 23, 'the 3 keys the pattern matched and the 20 invalidated rows')
      assert.deepEqual(await keysIn(raw, prefix), ['live'])
      assert.equal(report.dryRun, false)
      assert.equal(report.scanned, 0, 'no entry files')
      for (let i = 0; i < 3; i++) assert.equal(await a.get(`x${i}`), undefined, "the pruning instance's memory copy went too")
      await waitFor(async () => (await b.get('x0')) === undefined, "the other instance's copy goes through the bus")
      assert.equal(await b.get('live'), 'kept')
    } finally {
      await a.close()
      await b.close()
      raw.disconnect()
    }
  })

  test('refuses what only entry files could answer, naming the field; without redis, the directory', async () => {
    const cache = await Larder.open({ dir: false, redis: { url: server.url, prefix: `pwd-${process.pid}-b:` } })
    try {
      const refused = [
        { maxSize: '1MB' },
        { maxEntries: 10 },
        { maxAge: '1h' },
        { olderThan: Date.now() },
        { tags: ['t'] },
        { dryRun: true },
        { listKeys: true },
      ]
      for (const options of refused) {
        const field = Object.keys(options)[0]!
        await assert.rejects(cache.prune(options), (error: unknown) => {
          assert.ok(error instanceof LarderError)
          assert.equal(error.code, 'ERR_INVALID_OPTION')
          assert.equal(error.field, field)
          assert.match(error.message, new RegExp(`${field}.*needs a cache directory`))
          return true
        })
      }
      const stopped = new AbortController()
      stopped.abort()
      await assert.rejects(cache.prune({ signal: stopped.signal }), { code: 'ERR_ABORTED' })
      assert.equal((await cache.prune({ dryRun: false })).sharedRemoved, 0)
    } finally {
      await cache.close()
    }
    const memoryOnly = await Larder.open({ dir: false })
    try {
      await assert.rejects(memoryOnly.prune(), { code: 'ERR_INVALID_OPTION', field: 'dir' })
    } finally {
      await memoryOnly.close()
    }
  })

  test('maintenance.interval prunes Redis without being asked (and configure() changes it)', async () => {
    const prefix = `pwd-${process.pid}-c:`
    const raw = new Redis(server.port, '127.0.0.1')
    const cache = await Larder.open({ dir: false, redis: { url: server.url, prefix }, maintenance: { interval: '1h' } })
    try {
      for (let i = 0; i < 10; i++) await cache.set(`row${i}`, i, { tags: ['orders'] })
      await cache.invalidateTags(['orders'])
      await delay(300)
      assert.equal((await keysIn(raw, prefix)).length, 10, 'nothing ran within the hour')
      const reports: PruneReport[] = []
      cache.on('prune', (report) => reports.push(report))
      await cache.configure({ maintenance: { interval: '100ms' } })
      await waitFor(() => Promise.resolve(reports.length > 0), "an automatic prune's report")
      assert.equal(reports[0]!.sharedRemoved, 10)
      assert.deepEqual(await keysIn(raw, prefix), [])
    } finally {
      await cache.close()
      raw.disconnect()
    }
  })
})

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out: ${what}`)
    await delay(20)
  }
}
