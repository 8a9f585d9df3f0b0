/**
 * What the facade's calls mean, taken one promise at a time: a getOrSet load racing an
 * invalidation, grace surviving other readers and maintenance, calls on one key taking
 * effect in call order, batch calls under a low file-descriptor limit, what stats() counts,
 * and the edges of ttl, namespaces, increment and setMany errors. Real files and real child
 * processes; no wall-clock margins (a test waits until a time has passed, then checks state).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Larder, LarderError } from '../src/index.ts'
import { Child, startChild } from './children/harness.ts'
import { childScript, repoRoot, runScript, verifyEntryFile } from './children/shared.ts'
import { eventually } from './eventually.ts'
import { entryFiles, openFileTargets, tempDir } from './helpers.ts'

const children: Child[] = []
after(async () => {
  await Promise.all(children.map((c) => c.shutdown()))
})

async function child(): Promise<Child> {
  const c = await startChild('semantics-child.ts')
  children.push(c)
  return c
}

/** Resolves once the wall clock is past `time` (ms since the epoch). */
async function until(time: number): Promise<void> {
  while (Date.now() <= time) await delay(Math.max(1, time - Date.now() + 1))
}

/** A loader the test holds open: `started` resolves when it runs, `release()` lets it return. */
function heldLoader<T>(value: T): { loader: () => Promise<T>; started: Promise<void>; release: () => void; calls: () => number } {
  let calls = 0
  let begin!: () => void
  let release!: () => void
  const started = new Promise<void>((resolve) => (begin = resolve))
  const gate = new Promise<void>((resolve) => (release = resolve))
  return {
    loader: async () => {
      calls++
      begin()
      await gate
      return value
    },
    started,
    release,
    calls: () => calls,
  }
}

describe('getOrSet and invalidations during its load', () => {
  for (const memory of [false, true]) {
    test(`an entry loaded across invalidateTags does not outlive it (memory tier ${memory ? 'on' : 'off'})`, async () => {
      const cache = await Larder.open({ dir: tempDir(), memory })
      const load = heldLoader('v1')
      const first = cache.getOrSet('user:1', load.loader, { tags: ['users'] })
      await load.started // the loader has read the database: v1
      await cache.invalidateTags(['users']) // the database now holds v2
      load.release()
      assert.equal(await first, 'v1', 'the caller that started before may receive the old value once')
      assert.equal(await cache.get('user:1'), undefined, 'nobody after the invalidation may')
      assert.equal(await cache.getOrSet('user:1', () => 'v2', { tags: ['users'] }), 'v2')
      assert.equal(await cache.get('user:1'), 'v2')
      await cache.close()
    })
  }

  test('a caller arriving after the invalidation does not join the load that began before it', async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: true })
    const load = heldLoader('v1')
    const first = cache.getOrSet('user:1', load.loader, { tags: ['users'] })
    await load.started
    await cache.invalidateTags(['users'])
    const late = cache.getOrSet('user:1', () => 'v2', { tags: ['users'] })
    load.release()
    assert.equal(await first, 'v1')
    assert.equal(await late, 'v2')
    assert.equal(await cache.get('user:1'), 'v2')
    await cache.close()
  })

  test('a set or delete during the load supersedes the loaded value', async () => {
    const cache = await Larder.open({ dir: tempDir(), memory: true })
    const load = heldLoader('loaded')
    const first = cache.getOrSet('k', load.loader)
    await load.started
    await cache.set('k', 'set meanwhile')
    load.release()
    assert.equal(await first, 'loaded')
    assert.equal(await cache.get('k'), 'set meanwhile')

    const again = heldLoader('loaded again')
    const second = cache.getOrSet('gone', again.loader)
    await again.started
    await cache.delete('gone')
    again.release()
    assert.equal(await second, 'loaded again')
    assert.equal(await cache.get('gone'), undefined)
    await cache.close()
  })

  test(
    "across processes: a load in one process that spans another process's invalidateTags stores nothing either sees",
    { timeout: 60_000 },
    async () => {
      const dir = tempDir()
      const a = await child()
      const ha = await a.call<number>('open', { options: { dir, memory: true } })
      const b = await Larder.open({ dir })
      await a.call('startLoad', { h: ha, key: 'user:1', value: 'v1', options: { tags: ['users'] } })
      await a.next('loader-started')
      await b.invalidateTags(['users'])
      assert.equal(await a.call('finishLoad', { key: 'user:1' }), 'v1')
      assert.deepEqual(await a.call('get', { h: ha, key: 'user:1' }), { present: false, value: undefined })
      assert.equal(await b.get('user:1'), undefined)
      const c = await Larder.open({ dir })
      assert.equal(await c.get('user:1'), undefined)
      await c.close()
      await b.close()
    },
  )
  test(
    "across processes: another process's set, delete or clear of the key during the load supersedes it; a change of another key does not",
    { timeout: 60_000 },
    async () => {
      const a = await child()
      for (const memory of [false, true]) {
        for (const change of ['set', 'delete', 'clear', 'other key'] as const) {
          const dir = tempDir()
          const ha = await a.call<number>('open', { options: { dir, memory } })
          const b = await Larder.open({ dir, memory: false })
          await a.call('startLoad', { h: ha, key: 'k', value: 'loaded before', options: {} })
          await a.next('loader-started')
          if (change === 'set') await b.set('k', 'set meanwhile')
          else if (change === 'delete') await b.delete('k')
          else if (change === 'clear') await b.clear()
          else await b.set('other', 'x')
          assert.equal(await a.call('finishLoad', { key: 'k' }), 'loaded before')
          const want = change === 'set' ? 'set meanwhile' : change === 'other key' ? 'loaded before' : undefined
          const label = `${change}, memory tier ${memory ? 'on' : 'off'}`
          assert.equal(await b.get('k'), want, label)
          assert.equal((await a.call<{ value: unknown }>('get', { h: ha, key: 'k' })).value, want, label)
          await b.close()
        }
      }
    },
  )
})

describe('grace', () => {
  test('an expired entry stored with a grace survives plain reads and maintenance, and is served when the loader fails', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    assert.equal(await cache.getOrSet('report', () => 'v1', { ttl: 50, grace: '1h' }), 'v1')
    // info() of an entry already expired (a loaded machine took the 50 ms before it was
    // asked) is undefined: then there is nothing to wait for.
    const expiresAt = (await cache.info('report'))?.expiresAt ?? Date.now()
    await until(expiresAt)
    assert.equal(await cache.get('report'), undefined, 'a read without grace is a miss')
    assert.equal(await cache.has('report'), false)
    assert.deepEqual(await cache.getMany(['report']), [undefined])
    assert.equal(await cache.info('report'), undefined)
    const reader = await Larder.open({ dir }) // another instance, as another process would be
    assert.equal(await reader.get('report'), undefined)
    await reader.close()
    assert.equal(entryFiles(dir).length, 1, 'still on disk')
    const report = await cache.prune()
    assert.equal(report.expired, 0)
    assert.equal(entryFiles(dir).length, 1, 'prune keeps it while its grace lasts')
    assert.deepEqual(await cache.entries(), [], 'it is not live')
    assert.equal((await cache.usage()).expired, 1)
    const served = await cache.getOrSet(
      'report',
      () => {
        throw new Error('database down')
      },
      { ttl: 50, grace: '1h' },
    )
    assert.equal(served, 'v1')
    await cache.close()
  })

  test('once its grace has passed, an expired entry is removed by reads and by prune', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.getOrSet('a', () => 1, { ttl: 500, grace: 20 })
    await cache.getOrSet('b', () => 2, { ttl: 500, grace: 20 })
    // b was stored after a, so it expires last (on a
    // loaded machine, many ms later: the prune below must come after b's grace, not only a's).
    const last = Math.max((await cache.info('a'))!.expiresAt!, (await cache.info('b'))!.expiresAt!)
    // The grace is kept in whole seconds, rounded up: 20 ms keeps the file for 1 s.
    await until(last + 1000)
    assert.equal(await cache.get('a'), undefined)
    assert.equal(entryFiles(dir).length, 1, 'the read removed a')
    const report = await cache.prune()
    assert.equal(report.expired, 1)
    assert.equal(entryFiles(dir).length, 0)
    await cache.close()
  })

  test('an entry with a grace is a valid v1 entry for readers that predate the grace field', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.getOrSet('graced', () => ({ n: 1 }), { ttl: '1h', grace: '1d' })
    await cache.close()
    const [file] = entryFiles(dir)
    const bytes = fs.readFileSync(file!)
    // Bytes end-12 … end-9 were reserved; readers before this change never looked at them.
    assert.equal(bytes.readUInt32LE(bytes.length - 12), 86_400, 'the grace, in seconds')
    assert.equal(await verifyEntryFile(file!), 'graced', 'whole and valid by the v1 layout alone')
    const fixtures = path.join(repoRoot, 'fixtures', 'v1-grace')
    const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'manifest.json'), 'utf8')) as {
      key: string
      expect: unknown
      graceSeconds: number
    }[]
    const copy = tempDir('larder-grace-fixture')
    fs.cpSync(path.join(fixtures, 'cache'), copy, { recursive: true })
    const reader = await Larder.open({ dir: copy })
    for (const f of manifest) assert.deepEqual(await reader.get(f.key), f.expect, f.key)
    for (const entry of entryFiles(copy)) {
      assert.notEqual((await verifyEntryFile(entry)).slice(0, 8), 'INVALID:')
      assert.ok(manifest.some((f) => fs.readFileSync(entry).readUInt32LE(fs.statSync(entry).size - 12) === f.graceSeconds))
    }
    assert.equal((await reader.stats()).corrupt, 0)
    await reader.close()
  })
})

describe('calls on one key take effect in call order', () => {
  for (const memory of [false, true]) {
    test(
      `a delete racing a set wins, in this process and in another (memory tier ${memory ? 'on' : 'off'})`,
      { timeout: 60_000 },
      async () => {
        const dir = tempDir()
        const a = await Larder.open({ dir, memory })
        await Promise.all([a.set('k', 'v1'), a.delete('k')])
        assert.equal(await a.get('k'), undefined)
        const other = await child()
        const h = await other.call<number>('open', { options: { dir } })
        assert.deepEqual(await other.call('get', { h, key: 'k' }), { present: false, value: undefined })
        await a.close()
      },
    )
  }

  test('a set racing a delete issued before it wins', async () => {
    const dir = tempDir()
    const a = await Larder.open({ dir, memory: true })
    await a.set('k', 'v1')
    await Promise.all([a.delete('k'), a.set('k', 'v2')])
    assert.equal(await a.get('k'), 'v2')
    const b = await Larder.open({ dir })
    assert.equal(await b.get('k'), 'v2')
    await Promise.all([a.close(), b.close()])
  })

  test('a get issued after a set sees it, before the set has resolved', async () => {
    for (const memory of [false, true]) {
      const a = await Larder.open({ dir: tempDir(), memory })
      const set = a.set('k', { v: 1 })
      const get = a.get('k')
      const has = a.has('k')
      await set
      assert.deepEqual(await get, { v: 1 }, `memory ${memory}`)
      assert.equal(await has, true)
      await a.close()
    }
  })

  test('a clear removes what was set before it was called, in every tier; a set called after it survives', async () => {
    const dir = tempDir()
    const a = await Larder.open({ dir, memory: true })
    await Promise.all([a.set('c', 'v1'), a.clear(), a.set('after', 'kept')])
    assert.equal(await a.get('c'), undefined)
    assert.equal(await a.get('after'), 'kept')
    const b = await Larder.open({ dir })
    assert.equal(await b.get('c'), undefined)
    assert.equal(await b.get('after'), 'kept')
    await Promise.all([a.close(), b.close()])
  })

  test('setStream, delete and increment on one key keep call order', async () => {
    const dir = tempDir()
    const a = await Larder.open({ dir, memory: true })
    await Promise.all([a.setStream('s', [Buffer.alloc(100_000, 1)]), a.delete('s')])
    assert.equal(await a.getStream('s'), undefined)
    await Promise.all([a.set('n', 5), a.increment('n'), a.set('n', 100), a.increment('n', 2)])
    assert.equal(await a.get('n'), 102)
    const b = await Larder.open({ dir })
    assert.equal(await b.get('n'), 102)
    await Promise.all([a.close(), b.close()])
  })
})

describe('batch calls', () => {
  test('getMany and setMany of 600 entries over 64 KiB work under ulimit -n 256', { timeout: 120_000 }, async () => {
    const dir = tempDir()
    const script = childScript('batch-child.ts')
    const command = `ulimit -n 256 && exec "${process.execPath}" ${runScript(script)
      .map((arg) => `"${arg}"`)
      .join(' ')} "${dir}" 600 70000`
    const { stdout } = await promisify(execFile)('bash', ['-c', command], { cwd: repoRoot, maxBuffer: 1 << 20 })
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      intact: number
      errors: number
      dropped: number
      breaker: string
      firstErrors: string[]
    }
    assert.deepEqual(result, { intact: 600, errors: 0, dropped: 0, breaker: 'closed', firstErrors: [] })
  })
})

describe('events and stats', () => {
  test('removeAllListeners() does not stop later hit listeners', async () => {
    for (const memory of [false, true]) {
      const cache = await Larder.open({ dir: tempDir(), memory })
      cache.on('hit', () => {})
      cache.removeAllListeners()
      const seen: string[] = []
      cache.on('hit', (key, tier) => seen.push(`${key}:${tier}`))
      await cache.set('k', 1)
      await cache.get('k')
      assert.deepEqual(seen, [memory ? 'k:memory' : 'k:disk'])
      cache.removeAllListeners('hit')
      await cache.get('k')
      cache.once('hit', (key) => seen.push(`once:${key}`))
      await cache.get('k')
      await cache.get('k')
      assert.deepEqual(seen, [memory ? 'k:memory' : 'k:disk', 'once:k'])
      await cache.close()
    }
  })

  test('every caller of a shared getOrSet load counts a miss; cached answers count a hit; increment counts neither', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    const load = heldLoader({ rows: 1 })
    const callers = Array.from({ length: 10 }, () => cache.getOrSet('k', load.loader))
    await load.started
    load.release()
    await Promise.all(callers)
    assert.equal(load.calls(), 1)
    let stats = await cache.stats()
    assert.equal(stats.misses, 10)
    assert.equal(stats.hits, 0)
    assert.equal(await cache.getOrSet('k', load.loader).then((v) => v.rows), 1)
    await cache.increment('n')
    await cache.increment('n')
    stats = await cache.stats()
    assert.equal(stats.hits, 1)
    assert.equal(stats.misses, 10)
    assert.equal(stats.hitRate, 1 / 11)
    await cache.close()
  })

  test("increment's and warm's reads answered by the memory tier count in tiers.memory.hits, as their misses there count in its misses", async () => {
    // The memory tier's miss was counted (by the read below it), its hit not: increment and
    // warm of a key held in memory left tiers.memory at { hits: 0, misses: 0 }.
    const cache = await Larder.open({ dir: tempDir(), memory: true })
    await cache.set('n', 1)
    assert.equal(await cache.get('n'), 1)
    cache.resetStats()
    await cache.increment('n')
    await cache.increment('n')
    await cache.warm(['n'])
    const { hits, misses, memoryHits, tiers } = await cache.stats()
    assert.deepEqual({ hits: tiers.memory!.hits, misses: tiers.memory!.misses }, { hits: 3, misses: 0 })
    assert.deepEqual({ hits, misses, memoryHits }, { hits: 0, misses: 0, memoryHits: 0 }, 'counted as reads of the tier, not of the cache')
    await cache.close()
  })

  test('reads through getOrSet and getStream are timed in latency.get', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.set('k', 'value')
    const before = (await cache.stats()).latency.get.count
    await cache.getOrSet('k', () => 'other')
    const stream = await cache.getStream('k')
    for await (const _ of stream!) {
      /* drain */
    }
    await cache.getStream('missing')
    const stats = await cache.stats()
    assert.equal(stats.latency.get.count - before, 3)
    assert.equal(stats.hits, 2)
    assert.equal(stats.misses, 1)
    await cache.close()
  })

  test("a 'set' listener that throws fails setStream as it fails set: the stored entry is a set, not a drop or a disk error", async () => {
    for (const failOpen of [true, false]) {
      const cache = await Larder.open({ dir: tempDir(), failOpen })
      const heard: unknown[] = []
      cache.on('error', (error) => heard.push(error))
      cache.on('set', () => {
        throw new Error('a listener failed')
      })
      await assert.rejects(cache.set('a', 1), /a listener failed/)
      await assert.rejects(cache.setStream('s', [Buffer.from('streamed')]), /a listener failed/)
      cache.removeAllListeners('set')
      const stream = await cache.getStream('s')
      assert.ok(stream !== undefined, 'the streamed entry is stored')
      const chunks: Buffer[] = []
      for await (const chunk of stream) chunks.push(chunk as Buffer)
      assert.equal(Buffer.concat(chunks).toString(), 'streamed')
      const stats = await cache.stats()
      assert.equal(stats.sets, 2)
      assert.equal(stats.dropped, 0)
      assert.equal(stats.errors, 0)
      assert.deepEqual(heard, [])
      await cache.close()
    }
  })

  test("a 'hit' listener that throws rejects getStream and leaves no file open", async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.setStream('big', [Buffer.alloc(3 * 1024 * 1024, 7)]) // streamed from its file, not read whole
    const [file] = entryFiles(dir)
    cache.on('hit', () => {
      throw new Error('a listener failed')
    })
    for (let i = 0; i < 5; i++) await assert.rejects(cache.getStream('big'), /a listener failed/)
    // Closed by the call (a moment for the close to land), not by the garbage collector: a
    // leaked handle stays open until a collection finds it, far past this bound.
    await eventually(() => !openFileTargets().includes(file!), 'the entry file is closed', 3_000)
    await cache.close()
  })

  test("a 'set' listener that throws: each set rejects with its error, and the budget is still kept", async () => {
    const cache = await Larder.open({ dir: tempDir(), maxEntries: 20 })
    cache.on('set', () => {
      throw new Error('a listener failed')
    })
    for (let i = 0; i < 100; i++) await assert.rejects(cache.set(`k${i}`, i), /a listener failed/)
    await eventually(async () => (await cache.stats()).entries <= 20, 'the automatic prune keeps maxEntries')
    await cache.close()
  })

  test("a 'progress' listener that throws stops no maintenance: the budget is kept, prune() completes, the throw is heard as 'error'", async () => {
    const cache = await Larder.open({ dir: tempDir(), maxEntries: 20 })
    const heard: Error[] = []
    cache.on('error', (error) => heard.push(error))
    cache.on('progress', () => {
      throw new Error('a listener failed')
    })
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, i)
    await eventually(async () => (await cache.stats()).entries <= 20, 'the automatic prune keeps maxEntries')
    const report = await cache.prune({ maxEntries: 5 })
    assert.ok(report.remainingEntries <= 5)
    assert.equal((await cache.stats()).errors, 0)
    assert.ok(heard.length > 0 && heard.every((error) => error.message === 'a listener failed'))
    await cache.close()
  })

  test("a 'prune' listener that throws ends no automatic prune: writes made during a pass are still pruned back, the throw is heard as 'error'", async () => {
    const cache = await Larder.open({ dir: tempDir(), maxEntries: 20 })
    const heard: Error[] = []
    cache.on('error', (error) => heard.push(error))
    const late: Promise<void>[] = []
    cache.on('progress', ({ phase }) => {
      // Writes the pass's scan did not see: the run must look at the budget again after its
      // report (whose listener throws), not end with it.
      if (phase === 'evict' && late.length === 0) for (let i = 0; i < 50; i++) late.push(cache.set(`late${i}`, i))
    })
    cache.on('prune', () => {
      throw new Error('a listener failed')
    })
    for (let i = 0; i < 30; i++) await cache.set(`k${i}`, i)
    await eventually(() => late.length > 0, 'the first automatic prune reported')
    await Promise.all(late)
    await eventually(async () => (await cache.stats()).entries <= 20, 'the automatic prune keeps maxEntries')
    assert.ok(heard.some((error) => error.message === 'a listener failed'))
    assert.equal((await cache.stats()).errors, 0)
    await cache.close()
  })

  test("a 'pressure' listener that throws is heard as 'error', not thrown into the host, and the memory tier still sheds", async () => {
    const cache = await Larder.open({
      dir: false,
      memory: { maxEntries: 1000 },
      memoryPressure: { interval: 20, highWater: 0.0001, shedTo: 0.5 },
    })
    const heard: Error[] = []
    cache.on('error', (error) => heard.push(error))
    cache.on('pressure', () => {
      throw new Error('a listener failed')
    })
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, i)
    await eventually(() => heard.length > 0, "the throw heard as 'error'")
    assert.equal(heard[0]!.message, 'a listener failed')
    assert.equal((await cache.stats()).memoryEntries, 50, 'shed down to shedTo')
    await cache.close()
  })

  test('an onProgress callback that throws rejects its call with its own error, not as a failing disk', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    for (let i = 0; i < 10; i++) await cache.set(`k${i}`, i)
    const onProgress = (): void => {
      throw new Error('a callback failed')
    }
    const own = (error: Error): boolean => error.message === 'a callback failed' && !(error instanceof LarderError)
    await assert.rejects(cache.prune({ onProgress }), own)
    await assert.rejects(cache.prune({ dryRun: true, onProgress }), own)
    await assert.rejects(cache.verify({ onProgress }), own)
    await assert.rejects(cache.entries({ onProgress }), own)
    await assert.rejects(cache.usage({ onProgress }), own)
    assert.equal((await cache.stats()).errors, 0)
    assert.equal((await cache.prune({ maxEntries: 5 })).remainingEntries, 5, 'the lock was let go')
    await cache.close()
  })

  test("a 'corrupt' listener that throws: the damaged entry is still a miss, removed and counted as corrupt, not a disk error", async () => {
    for (const failOpen of [true, false]) {
      const dir = tempDir()
      const cache = await Larder.open({ dir, failOpen })
      const heard: Error[] = []
      cache.on('error', (error) => heard.push(error))
      cache.on('corrupt', () => {
        throw new Error('a listener failed')
      })
      await cache.set('k', 'value')
      const [file] = entryFiles(dir)
      const bytes = fs.readFileSync(file!)
      bytes[bytes.length - 20]! ^= 1
      fs.writeFileSync(file!, bytes)
      assert.equal(await cache.get('k'), undefined)
      assert.deepEqual(entryFiles(dir), [], 'the damaged file is removed')
      const stats = await cache.stats()
      assert.equal(stats.corrupt, 1)
      assert.equal(stats.errors, 0)
      assert.deepEqual(
        heard.map((error) => error.message),
        ['a listener failed'],
      )
      await cache.close()
    }
  })
})

describe('argument edges', () => {
  test('a positive ttl below 1 ms never means "forever": it rounds up to 1 ms', async () => {
    const cache = await Larder.open({ dir: tempDir(), defaultTtl: 0.4, memory: { ttl: 0.4 } })
    assert.equal(cache.options.defaultTtl, 1)
    assert.equal((cache.options.memory as { ttl: number }).ttl, 1)
    await cache.set('k', 1, { ttl: 0.4 })
    const info = await cache.info('k')
    assert.ok(info === undefined || info.expiresAt === Math.floor(info.createdAt) + 1, JSON.stringify(info))
    await until(Date.now() + 2)
    assert.equal(await cache.get('k'), undefined)
    await cache.set('d', 1) // defaultTtl
    await until(Date.now() + 2)
    assert.equal(await cache.get('d'), undefined)
    await cache.close()
  })

  test('ill-formed namespaces are rejected, so two of them never share a directory', async () => {
    const dir = tempDir()
    for (const namespace of ['n\uD800', 'n\uDFFFx']) {
      await assert.rejects(
        Larder.open({ dir, namespace }),
        (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.field === 'namespace' && /well-formed/.test(e.message),
      )
    }
    const fine = await Larder.open({ dir, namespace: 'n\uFFFD' })
    await fine.set('k', 1)
    await fine.close()
    await assert.rejects(
      Larder.open({ dir, namespace: 'x'.repeat(257) }),
      (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && /256 bytes/.test(e.message),
    )
  })

  test('increment rejects a result that is not finite and keeps the value; a raw cache says it cannot increment', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.set('big', Number.MAX_VALUE)
    await assert.rejects(
      cache.increment('big', Number.MAX_VALUE),
      (e: LarderError) => e.code === 'ERR_INVALID_VALUE' && e.field === 'delta' && /finite/.test(e.message),
    )
    assert.equal(await cache.get('big'), Number.MAX_VALUE)
    assert.equal(await cache.increment('big', -Number.MAX_VALUE), 0)
    await cache.close()
    const raw = await Larder.open({ dir, serializer: 'raw' })
    await assert.rejects(
      raw.increment('count'),
      (e: LarderError) =>
        e.code === 'ERR_INVALID_OPTION' && e.field === 'serializer' && /raw/.test(e.message) && /increment/.test(e.message),
    )
    assert.equal(await raw.get('count'), undefined)
    await raw.close()
  })

  test('increment refuses an integer counter past Number.MAX_SAFE_INTEGER (it would take updates and stay put) and names what it cannot count', async () => {
    const cache = await Larder.open({ dir: tempDir() })
    await cache.set('n', Number.MAX_SAFE_INTEGER - 1)
    assert.equal(await cache.increment('n'), Number.MAX_SAFE_INTEGER)
    await assert.rejects(
      cache.increment('n'),
      (e: LarderError) => e.code === 'ERR_INVALID_VALUE' && e.field === 'delta' && /MAX_SAFE_INTEGER/.test(e.message),
    )
    assert.equal(await cache.get('n'), Number.MAX_SAFE_INTEGER, 'nothing written')
    assert.equal(await cache.decrement('n'), Number.MAX_SAFE_INTEGER - 1, 'back within range')
    await cache.set('f', 1.5)
    assert.equal(await cache.increment('f', 2 ** 60), 1.5 + 2 ** 60, 'a fractional counter is approximate anyway')
    const kinds: [unknown, string][] = [
      [null, 'null'],
      [{ a: 1 }, 'an object'],
      [[1], 'an array'],
      ['1', 'a string'],
      [true, 'a boolean'],
    ]
    for (const [value, kind] of kinds) {
      await cache.set('v', value)
      await assert.rejects(
        cache.increment('v'),
        (e: LarderError) => e.code === 'ERR_INVALID_VALUE' && e.message.includes(`its value is ${kind}, not a number`),
      )
    }
    await cache.close()
  })

  test('setMany errors name the item that failed', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    const circular: Record<string, unknown> = {}
    circular.self = circular
    const cases: [items: unknown[], code: string, field: string][] = [
      [
        [
          { key: 'a', value: 1 },
          { key: 'b', value: 1, ttl: -1 },
        ],
        'ERR_INVALID_TTL',
        'items[1].ttl',
      ],
      [
        [
          { key: 'a', value: 1 },
          { key: 'b', value: 1, tll: 5 },
        ],
        'ERR_INVALID_OPTION',
        'items[1].tll',
      ],
      [
        [
          { key: 'a', value: 1 },
          { key: 'b', value: circular },
        ],
        'ERR_SERIALIZE',
        'items[1].value',
      ],
      [
        [
          { key: 'a', value: 1 },
          { key: 'b', value: undefined },
        ],
        'ERR_INVALID_VALUE',
        'items[1].value',
      ],
      [
        [
          { key: 'a', value: 1 },
          { key: 'b', value: 1, tags: [''] },
        ],
        'ERR_INVALID_VALUE',
        'items[1].tags[0]',
      ],
    ]
    for (const [items, code, field] of cases) {
      await assert.rejects(cache.setMany(items as never), (e: LarderError) => {
        assert.equal(e.code, code)
        assert.equal(e.field, field)
        assert.ok(e.message.includes(field), e.message)
        return true
      })
    }
    assert.equal(entryFiles(dir).length, 0, 'nothing written')
    await cache.close()
  })
})

describe("set's readAt: a value read before it is stored", () => {
  test('a tag invalidated after readAt makes the value stale at once, in memory and on disk; without one it is served', async () => {
    for (const memory of [true, false]) {
      const cache = await Larder.open({ dir: tempDir(), memory, maintenance: false })
      const readAt = cache.now()
      await cache.invalidateTags(['users']) // a write to the table while the query ran
      await cache.set('q', ['old rows'], { tags: ['users'], readAt })
      assert.equal(await cache.get('q'), undefined, `memory: ${memory}`)
      await delay(5) // a read that begins after the invalidation (not in its millisecond)
      await cache.set('q2', ['rows'], { tags: ['users'], readAt: Date.now() })
      assert.deepEqual(await cache.get('q2'), ['rows'])
      await cache.set('q3', ['rows'], { tags: ['posts'], readAt })
      assert.deepEqual(await cache.get('q3'), ['rows'], 'another tag: served')
      await cache.close()
    }
  })

  test('cache.now() taken right after an invalidation (the same millisecond, often) is after it: the value read then is served', async () => {
    const cache = await Larder.open({ dir: tempDir(), maintenance: false })
    let sameMs = 0
    for (let i = 0; i < 50; i++) {
      await cache.invalidateTags(['users'])
      const wall = Date.now()
      const readAt = cache.now()
      if (Math.floor(readAt) <= wall) sameMs++
      await cache.set(`q${i}`, i, { tags: ['users'], readAt })
      assert.equal(await cache.get(`q${i}`), i, `q${i}`)
    }
    assert.ok(sameMs > 0, "some reads fell in the invalidation's millisecond")
    await cache.invalidateTags(['users'])
    assert.equal(await cache.get('q0'), undefined, 'an invalidation after readAt: stale')
    await cache.close()
  })

  test('an invalidation covers the entries another instance created earlier in its millisecond (that clock counts in fractions of one)', async (t) => {
    const dir = tempDir()
    const [a, b] = [await Larder.open({ dir, maintenance: false }), await Larder.open({ dir, maintenance: false })]
    await a.invalidateTags(['warm'])
    await b.set('warm', 1, { tags: ['warm'] })
    let sameMs = 0
    for (let round = 0; round < 300 && sameMs < 10; round++) {
      const tag = `t${round}`
      for (const start = Date.now(); Date.now() === start;); // the start of a millisecond
      const ms = Date.now()
      b.now()
      b.now() // B's clock now counts fractions of this millisecond, as after a few writes
      await b.set(`r${round}`, 1, { tags: [tag] })
      await a.invalidateTags([tag])
      if (Date.now() !== ms) continue
      sameMs++
      const reader = await Larder.open({ dir, maintenance: false })
      assert.equal(await reader.get(`r${round}`), undefined, `round ${round}: created before the invalidation`)
      assert.equal(await b.get(`r${round}`), undefined)
      await reader.close()
      await b.set(`after${round}`, 1, { tags: [tag] })
      assert.equal(await b.get(`after${round}`), 1, 'a write after the invalidation is served')
    }
    await a.close()
    await b.close()
    if (sameMs === 0) t.skip('no round fell in one millisecond on this machine')
  })

  test('a readAt in the future, or not a number, is ERR_INVALID_VALUE naming readAt, and nothing is written', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, maintenance: false })
    for (const readAt of [Date.now() + 60_000, -1, Number.NaN, '2026-01-01']) {
      await assert.rejects(
        cache.set('k', 1, { readAt: readAt as number }),
        (error: LarderError) => error.code === 'ERR_INVALID_VALUE' && error.field === 'readAt',
      )
    }
    assert.equal(entryFiles(dir).length, 0)
    await cache.close()
  })
})
