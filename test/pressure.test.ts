/**
 * Memory pressure (`memoryPressure`): a real child with a 64 MiB heap filling a memory tier
 * bounded far beyond it survives by shedding; in process, a high-water mark every process is
 * above shows the shed (least recently used first, down to `shedTo`), the bound held while the
 * pressure lasts, the event, the count, and write-back writing through.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { after, before, describe, it, test } from 'node:test'
import { Worker } from 'node:worker_threads'
import { Redis } from 'ioredis'
import { Larder, LarderError, type PressureReading } from '../src/index.ts'
import { childScript, runScript, repoRoot } from './children/shared.ts'
import { tempDir } from './helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './redis/server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

/** Runs pressure-child.ts with a 64 MiB old generation; its exit, stdout and stderr. */
async function runChild(mode: 'on' | 'off'): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--max-old-space-size=64', '--expose-gc', ...runScript(childScript('pressure-child.ts')), mode], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text))
  child.stderr.setEncoding('utf8').on('data', (text: string) => (err += text))
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
  return { code, signal, out, err }
}

describe('memory pressure', () => {
  it('a process with a 64 MiB heap filling a memory tier bounded at 2.5 GiB sheds and lives; without memoryPressure it dies of OOM', async () => {
    const [on, off] = await Promise.all([runChild('on'), runChild('off')])
    // The control: the same child without memoryPressure runs out of heap, so the test can fail.
    assert.notEqual(off.code, 0, 'without memoryPressure the child dies')
    assert.match(off.err, /heap out of memory/)

    assert.equal(on.code, 0, `the child lived; stderr:\n${on.err.slice(-2000)}`)
    const report = JSON.parse(on.out.trim().split('\n').at(-1)!) as {
      levels: string[]
      shed: number
      memoryEntries: number
      lastServed: boolean
      firstHigh: PressureReading
    }
    assert.equal(report.levels[0], 'high', 'the first event is the pressure rising')
    assert.equal(report.levels.at(-1), 'normal', 'and once the cache is cleared and garbage collected, it ends')
    for (let i = 1; i < report.levels.length; i++) assert.notEqual(report.levels[i], report.levels[i - 1], 'an event per change of level')
    assert.ok(report.shed > 0, 'entries were shed')
    assert.ok(report.memoryEntries < 480, 'the memory tier holds less than was written')
    assert.ok(report.lastServed, 'the newest value is still served from memory')
    const first = report.firstHigh
    assert.equal(first.heapLimit, 64 * 1024 * 1024, 'the old generation limit, from --max-old-space-size')
    assert.ok(first.heapUsed / first.heapLimit >= 0.85 || first.rss / first.rssLimit >= 0.85, 'the reading is above the high-water mark')
    assert.ok(first.rssLimit > 0 && first.rss > 0)
  })

  it('above highWater the memory tier sheds its least recently used entries down to shedTo, then holds that bound; an event carries the reading', async () => {
    // Every process uses more than 0.01 % of its heap limit: the first reading is high.
    const cache = await Larder.open({
      dir: false,
      memory: { maxEntries: 1000 },
      memoryPressure: { interval: 20, highWater: 0.0001, shedTo: 0.5 },
    })
    const high = once(cache, 'pressure') as Promise<[PressureReading]>
    // A memory-only set never waits for I/O, so no reading can come between these writes.
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, i)
    await cache.get('k0') // now the most recently used
    const [reading] = await high
    // Everything below runs before the next reading (microtasks only).
    assert.equal(reading.level, 'high')
    for (const field of ['heapUsed', 'heapLimit', 'rss', 'rssLimit'] as const) assert.ok(reading[field] > 0, field)
    const stats = await cache.stats()
    assert.equal(stats.memoryEntries, 50)
    assert.equal(stats.tiers.memory!.shed, 50)
    assert.equal(await cache.get('k0'), 0, 'the most recently used survived')
    assert.equal(await cache.get('k99'), 99)
    assert.equal(await cache.get('k1'), undefined, 'the least recently used went')
    for (let i = 100; i < 120; i++) await cache.set(`k${i}`, i)
    assert.equal((await cache.stats()).memoryEntries, 50, 'while high, a new entry takes an old one’s place')
    assert.equal(await cache.get('k119'), 119)
    await cache.close()
  })

  it('is on by default with the memory tier, off without it; thresholds are checked', async () => {
    const on = await Larder.open({ dir: false })
    assert.deepEqual(on.options.memoryPressure, { interval: 1000, highWater: 0.85, lowWater: 0.7, shedTo: 0.5 })
    await on.close()
    const off = await Larder.open({ dir: tempDir() })
    assert.equal(off.options.memoryPressure, false)
    await off.close()
    const bad: [unknown, string][] = [
      [{ highWater: 1.5 }, 'memoryPressure.highWater'],
      [{ highWater: 0.5, lowWater: 0.6 }, 'memoryPressure.lowWater'],
      [{ shedTo: -0.1 }, 'memoryPressure.shedTo'],
      [{ interval: 0 }, 'memoryPressure.interval'],
      [{ every: '1s' }, 'memoryPressure.every'],
      ['yes', 'memoryPressure'],
    ]
    for (const [memoryPressure, field] of bad) {
      await assert.rejects(
        Larder.open({ dir: false, memoryPressure } as never),
        (error: unknown) => error instanceof LarderError && error.code === 'ERR_INVALID_OPTION' && error.field === field,
        field,
      )
    }
  })

  describe('with write-back', { skip }, () => {
    let raw: Redis
    before(() => {
      raw = new Redis(server.url)
    })
    after(() => raw?.quit())

    it('under pressure the write-back queue stops growing: a set goes through to Redis before it resolves', async () => {
      const prefix = `pressure${process.pid}:`
      const options = { dir: tempDir(), memory: true, maintenance: false as const, writeStrategy: 'write-back' as const }
      const calm = await Larder.open({ ...options, redis: { url: server.url, prefix }, writeBack: { maxDelay: '1h' } })
      await calm.set('queued', 'v')
      assert.equal((await calm.stats()).tiers.redis!.queued, 1, 'without pressure, write-back queues')
      assert.equal(await raw.exists(`${prefix}default:queued`), 0)
      await calm.close()

      const cache = await Larder.open({
        ...options,
        redis: { url: server.url, prefix },
        writeBack: { maxDelay: '1h' },
        memoryPressure: { interval: 20, highWater: 0.0001 },
      })
      await once(cache, 'pressure')
      await cache.set('through', 'v')
      assert.equal((await cache.stats()).tiers.redis!.queued, 0, 'nothing queued')
      assert.equal(await raw.exists(`${prefix}default:through`), 1, 'Redis has it when set() resolves')
      assert.equal(await cache.get('through'), 'v')
      await cache.close()
    })
  })
})

test("in a worker thread with resourceLimits, the heap limit judged is the worker's old generation, not the process's", async () => {
  const worker = new Worker(new URL('./children/heap-limit.mjs', import.meta.url), {
    resourceLimits: { maxOldGenerationSizeMb: 64 },
  })
  const [limit] = (await once(worker, 'message')) as [number]
  await worker.terminate()
  assert.equal(limit, 64 * 1024 * 1024)
})
