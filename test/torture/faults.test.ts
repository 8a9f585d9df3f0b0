/**
 * Disk faults, injected through the one seam every main-thread file-system call goes through
 * (src/store/disk.ts), and real ones without it: chosen calls fail with EIO, ENOSPC, EACCES,
 * EROFS or EMFILE, or are slow. With failOpen (the default) no exception reaches the host,
 * reads miss, writes drop (counted), the breaker opens after its threshold and closes after
 * recovery, no promise rejection goes unhandled and no file descriptor leaks. With
 * failOpen: false every failure is a typed ERR_UNAVAILABLE. test/resilience.test.ts shows
 * each code once with every call failing; this mixes codes, rates and operations at random.
 */
import { after, afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder, LarderError, isLarderError } from '../../src/index.ts'
import { disk } from '../../src/store/disk.ts'
import { tempDir } from '../helpers.ts'
import { drain, makeBlob, makeRecord, prng, problemOf, randInt, valueProblem } from '../children/shared.ts'
import { record, scale, seedFor } from './scale.ts'

const CODES = ['EIO', 'ENOSPC', 'EACCES', 'EROFS', 'EMFILE'] as const
const ASYNC_CALLS = new Set(['open', 'readFile', 'unlink', 'rename', 'rm', 'mkdir', 'stat', 'lstat', 'readdir', 'writeAtomic'])
const real = { ...disk }
const seams = disk as unknown as Record<string, (...args: unknown[]) => unknown>
const fast = { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeout: 100, rollingCountTimeout: 10_000 }

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => unhandled.push(reason))
afterEach(() => Object.assign(disk, real))

/** Open file descriptors of this process. */
const openFds = (): number => fs.readdirSync('/proc/self/fd').length

/** Faults in force: each disk call fails with `code` with probability `rate`, or (slow) waits. */
interface Faults { code?: string; rate: number; slowMs?: number; injected: number }

function inject(faults: Faults, rand: () => number): void {
  for (const [name, fn] of Object.entries(real) as [string, (...args: unknown[]) => unknown][]) {
    const isAsync = ASYNC_CALLS.has(name)
    seams[name] = (...args: unknown[]) => {
      if (rand() >= faults.rate) return fn(...args)
      faults.injected++
      if (faults.code !== undefined) {
        const error = Object.assign(new Error(`${faults.code}: injected fault, ${name}`), { code: faults.code, syscall: name })
        if (isAsync) return Promise.reject(error)
        throw error
      }
      if (!isAsync) {
        // A synchronous call on a slow disk holds the thread: so does this one.
        const until = performance.now() + randInt(rand, 0, 2)
        while (performance.now() < until);
        return fn(...args)
      }
      return delay(randInt(rand, 1, faults.slowMs ?? 20)).then(() => fn(...args))
    }
  }
}

interface Tally { ops: number; hits: number; thrown: string[]; wrong: string[]; unavailable: number }

/**
 * One random operation on keys `k0…k{keys-1}`, every value a self-checking record or blob.
 * With `failOpen` false, ERR_UNAVAILABLE is expected and counted; anything else thrown is a failure.
 */
async function randomOp(cache: Larder, rand: () => number, keys: number, tally: Tally, failOpen: boolean): Promise<void> {
  const key = `k${randInt(rand, 0, keys - 1)}`
  const r = rand()
  tally.ops++
  try {
    if (r < 0.25) await cache.set(key, rand() < 0.9 ? makeRecord(key, 1, tally.ops, randInt(rand, 0, 9000)) : makeBlob(key, 1, tally.ops, 80_000), rand() < 0.3 ? { tags: ['t1'] } : undefined)
    else if (r < 0.5) {
      const v = await cache.get(key)
      if (v !== undefined) {
        tally.hits++
        const p = problemOf(key, v)
        if (p !== undefined) tally.wrong.push(`get ${key}: ${p}`)
      }
    } else if (r < 0.55) await cache.has(key)
    else if (r < 0.6) await cache.delete(key)
    else if (r < 0.68) {
      const v = await cache.getOrSet(key, () => makeRecord(key, 2, tally.ops, 100))
      const p = problemOf(key, v)
      if (p !== undefined) tally.wrong.push(`getOrSet ${key}: ${p}`)
    } else if (r < 0.76) {
      const s = await cache.getStream(key)
      if (s !== undefined) {
        tally.hits++
        const p = problemOf(key, await drain(s))
        if (p !== undefined) tally.wrong.push(`getStream ${key}: ${p}`)
      }
    } else if (r < 0.84) await cache.setStream(key, [Buffer.from(JSON.stringify(makeRecord(key, 3, tally.ops, randInt(rand, 0, 200_000))))])
    else if (r < 0.88) await cache.setMany([{ key, value: makeRecord(key, 4, tally.ops, 10) }])
    else if (r < 0.92) {
      const asked = [key, `k${randInt(rand, 0, keys - 1)}`]
      const vs = await cache.getMany(asked)
      vs.forEach((v, i) => {
        const p = v === undefined ? undefined : problemOf(asked[i]!, v)
        if (p !== undefined) tally.wrong.push(`getMany ${asked[i]}: ${p}`)
      })
    } else if (r < 0.96) await cache.invalidateTags(['t1'])
    else if (r < 0.98) await cache.increment(`n${randInt(rand, 0, 3)}`)
    else await cache.stats()
  } catch (error) {
    if (!failOpen && isLarderError(error, 'ERR_UNAVAILABLE')) tally.unavailable++
    else if (isLarderError(error, 'ERR_CORRUPT') && r >= 0.68 && r < 0.76) {
      // A stream whose file vanished under a failing disk is never served torn; ERR_CORRUPT is the documented end.
    } else tally.thrown.push(`${(error as Error).stack ?? String(error)}`)
  }
}

async function waitForState(cache: Larder, state: string, nudge: () => Promise<unknown>): Promise<void> {
  const keepAlive = setTimeout(() => {}, 60_000) // opossum's reset timer is unref'd
  try {
    for (let i = 0; i < 2000 && (await cache.stats()).breaker.state !== state; i++) {
      await delay(10)
      await nudge()
    }
  } finally {
    clearTimeout(keepAlive)
  }
  assert.equal((await cache.stats()).breaker.state, state)
}

describe('injected disk faults', () => {
  const ROUNDS = scale(3, 20)
  const OPS = scale(150, 1000)
  const figures = { faults: 0, ops: 0, cycles: 0, typed: 0, rounds: 0, typedRounds: 0 }
  const seed = seedFor('faults')

  test('failOpen: random codes at random rates; nothing throws, no wrong value, the breaker opens and recovers, no fd leaks', { timeout: scale(120_000, 900_000) }, async () => {
    const rand = prng(seed)
    // Warm-up: load zlib, the worker pool and the lazily opened parts, then count fds.
    const warm = await Larder.open({ dir: tempDir('larder-torture-faults'), maintenance: { interval: 0 } })
    await warm.set('w', makeBlob('w', 1, 1, 80_000))
    await drain((await warm.getStream('w'))!)
    await warm.prune()
    await warm.close()
    await delay(50)
    const fdsBefore = openFds()

    for (let round = 0; round < ROUNDS; round++) {
      for (const code of [...CODES, 'slow']) {
        const cache = await Larder.open({ dir: tempDir('larder-torture-faults'), maintenance: { interval: 0 }, breaker: code === 'slow' ? { ...fast, timeout: 5 } : fast })
        const states: string[] = []
        cache.on('breaker', (s) => states.push(s))
        const errors: LarderError[] = []
        cache.on('error', (e) => errors.push(e as LarderError))
        const tally: Tally = { ops: 0, hits: 0, thrown: [], wrong: [], unavailable: 0 }
        for (let i = 0; i < OPS / 6; i++) await randomOp(cache, rand, 40, tally, true)

        // Faults: every call fails (the breaker must open), then a random share.
        const faults: Faults = code === 'slow' ? { rate: 1, slowMs: 30, injected: 0 } : { code, rate: 1, injected: 0 }
        inject(faults, rand)
        for (let i = 0; i < OPS / 2; i++) await randomOp(cache, rand, 40, tally, true)
        const during = await cache.stats()
        // A slow disk fails only the asynchronous calls that outlast the breaker's timeout (sync
        // reads cannot time out), too few to be sure of opening it; failing calls always do.
        if (code !== 'slow') assert.ok(states.includes('open'), `${code}: the breaker never opened (states ${states.join(',')})`)
        assert.ok(during.errors > 0, `${code}: no failure counted`)
        if (code !== 'slow') {
          assert.ok(during.dropped > 0, `${code}: no write counted as dropped`)
          assert.ok(errors.length > 0 && errors.every((e) => e.code === 'ERR_UNAVAILABLE'), `${code}: error events`)
        }
        faults.rate = 0.3
        for (let i = 0; i < OPS / 6; i++) await randomOp(cache, rand, 40, tally, true)

        // Recovery: the disk heals; after resetTimeout one trial closes the breaker.
        Object.assign(disk, real)
        await waitForState(cache, 'closed', () => cache.get('k0'))
        if (states.includes('open')) {
          assert.deepEqual(states.slice(-2), ['halfOpen', 'closed'], `${code}: states ${states.join(',')}`)
          figures.cycles++
        }
        for (let i = 0; i < OPS / 6; i++) await randomOp(cache, rand, 40, tally, true)
        await cache.close()
        // (With a 5 ms breaker timeout even a healthy disk's slower calls trip it, so the check
        // that the healed directory stores and serves uses default thresholds.)
        const healed = await Larder.open({ dir: cache.dir, maintenance: { interval: 0 } })
        await healed.set('after', makeRecord('after', 9, 9, 10))
        assert.equal(valueProblem('after', await healed.get('after')), undefined, `${code}: the healed cache stores and serves`)
        await healed.close()

        assert.deepEqual(tally.thrown, [], `${code} (seed ${seed}): exceptions reached the host`)
        assert.deepEqual(tally.wrong, [], `${code} (seed ${seed}): wrong values`)
        figures.faults += faults.injected
        figures.ops += tally.ops
        figures.rounds++
      }
    }
    await delay(100) // slow calls that outlived their breaker timeout finish and close their files
    assert.deepEqual(unhandled, [], 'unhandled rejections')
    assert.ok(openFds() <= fdsBefore, `file descriptors leaked: ${fdsBefore} before, ${openFds()} after`)
  })

  test('failOpen false: every failure is a typed ERR_UNAVAILABLE, every success is right', { timeout: scale(60_000, 600_000) }, async () => {
    const rand = prng(seed + 1)
    for (let round = 0; round < ROUNDS; round++) {
      for (const code of CODES) {
        const cache = await Larder.open({ dir: tempDir('larder-torture-faults'), failOpen: false, maintenance: { interval: 0 }, breaker: fast })
        const tally: Tally = { ops: 0, hits: 0, thrown: [], wrong: [], unavailable: 0 }
        for (let i = 0; i < OPS / 4; i++) await randomOp(cache, rand, 30, tally, false)
        const faults: Faults = { code, rate: 0.5, injected: 0 }
        inject(faults, rand)
        for (let i = 0; i < OPS / 2; i++) await randomOp(cache, rand, 30, tally, false)
        // Workers bypass the seam, so a prune may well succeed; if it fails, it must say so in type.
        await cache.prune().catch((e: unknown) => {
          if (isLarderError(e, 'ERR_UNAVAILABLE')) tally.unavailable++
          else tally.thrown.push(`prune: ${(e as Error).stack}`)
        })
        Object.assign(disk, real)
        await waitForState(cache, 'closed', () => cache.get('k0').catch(() => undefined))
        for (let i = 0; i < OPS / 4; i++) await randomOp(cache, rand, 30, tally, false)
        await cache.close()
        assert.deepEqual(tally.thrown, [], `${code} (seed ${seed}): errors other than ERR_UNAVAILABLE`)
        assert.deepEqual(tally.wrong, [], `${code} (seed ${seed}): wrong values`)
        assert.ok(tally.unavailable > 0, `${code}: no ERR_UNAVAILABLE at a 50 % fault rate`)
        figures.faults += faults.injected
        figures.ops += tally.ops
        figures.typed += tally.unavailable
        figures.typedRounds++
      }
    }
    assert.deepEqual(unhandled, [])
  })

  test('summary', (t) => {
    assert.equal(figures.rounds, ROUNDS * (CODES.length + 1), 'every failOpen round passed')
    assert.equal(figures.typedRounds, ROUNDS * CODES.length, 'every failOpen: false round passed')
    assert.ok(figures.cycles >= ROUNDS * CODES.length)
    record(t, { area: 'faults', what: `injected EIO/ENOSPC/EACCES/EROFS/EMFILE/slow through the disk seam`, tried: figures.faults, unit: 'faults', survived: figures.faults, note: `seed ${seed}; ${figures.ops} operations, 0 exceptions with failOpen, ${figures.typed} typed ERR_UNAVAILABLE without; ${figures.cycles} breaker open/close cycles; no fd leak, no unhandled rejection` })
  })
})

/** rm -rf that tolerates the cache writing into the tree while it goes (ENOTEMPTY). */
function wipe(dir: string): void {
  for (let i = 0; i < 20; i++) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
      return
    } catch {
      // a write landed in a directory being removed: go again
    }
  }
}

describe('real faults, no seam', () => {
  test('the cache directory deleted and replaced by a file over and over under running traffic: no throw, no wrong value, works after', { timeout: 120_000 }, async (t) => {
    const root = tempDir('larder-torture-realfault')
    const dir = path.join(root, 'cache')
    const cache = await Larder.open({ dir, maintenance: { interval: 0 }, breaker: fast })
    const rand = prng(seedFor('real'))
    const tally: Tally = { ops: 0, hits: 0, thrown: [], wrong: [], unavailable: 0 }
    let sabotage = 0
    let running = true
    const saboteur = (async () => {
      while (running) {
        await delay(randInt(rand, 1, 15))
        wipe(dir)
        if (rand() < 0.3) fs.writeFileSync(dir, 'a file where the cache was')
        else if (rand() < 0.3) {
          fs.mkdirSync(path.join(dir, 'v1', 'default'), { recursive: true })
          for (const pp of ['00', '3f', 'a7', 'ff']) fs.writeFileSync(path.join(dir, 'v1', 'default', pp), 'a file where a partition was')
        }
        sabotage++
        await delay(randInt(rand, 1, 15))
        wipe(dir)
      }
    })()
    // Traffic until the saboteur has struck often enough; each op yields to timers, or an
    // open breaker (answering from microtasks alone) would starve the saboteur.
    const strikes = scale(40, 400)
    while (sabotage < strikes) {
      await randomOp(cache, rand, 50, tally, true)
      await new Promise((resolve) => setImmediate(resolve))
    }
    running = false
    await saboteur
    const keepAlive = setTimeout(() => {}, 60_000)
    await delay(150)
    clearTimeout(keepAlive)
    await cache.get('k0')
    await cache.set('after', makeRecord('after', 1, 1, 10))
    assert.equal(valueProblem('after', await cache.get('after')), undefined, 'the cache works once the directory is left alone')
    await cache.close()
    assert.deepEqual(tally.thrown, [])
    assert.deepEqual(tally.wrong, [])
    assert.ok(tally.ops > sabotage, 'traffic ran between the strikes')
    record(t, { area: 'faults', what: 'cache dir deleted / replaced by a file under traffic (real)', tried: sabotage, unit: 'sabotages', survived: sabotage, note: `${tally.ops} operations, 0 thrown, 0 wrong` })
  })

  test('a read-only cache directory (mount --bind -o ro): reads hit, writes drop, prune and verify report ERR_UNAVAILABLE, nothing throws', { timeout: 60_000 }, async (t) => {
    const dir = tempDir('larder-torture-ro')
    const writer = await Larder.open({ dir, maintenance: { interval: 0 } })
    for (let i = 0; i < 20; i++) await writer.set(`k${i}`, makeRecord(`k${i}`, 1, i, 100 * i))
    await writer.close()
    const mounted = spawnSync('mount', ['--bind', '-o', 'ro', dir, dir])
    if (mounted.status !== 0) {
      t.skip(`mount --bind -o ro is not permitted here: ${mounted.stderr}`)
      return
    }
    try {
      assert.throws(() => fs.writeFileSync(path.join(dir, 'probe'), 'x'), { code: 'EROFS' })
      const cache = await Larder.open({ dir, maintenance: { interval: 0 }, breaker: { ...fast, volumeThreshold: 1000 } })
      const tally: Tally = { ops: 0, hits: 0, thrown: [], wrong: [], unavailable: 0 }
      const rand = prng(seedFor('ro'))
      for (let i = 0; i < 300; i++) await randomOp(cache, rand, 20, tally, true)
      for (let i = 0; i < 20; i++) assert.equal(problemOf(`k${i}`, await cache.get(`k${i}`)) ?? 'ok', 'ok', `k${i} still reads on a read-only disk`)
      await assert.rejects(cache.prune(), { code: 'ERR_UNAVAILABLE' })
      await assert.rejects(cache.verify(), { code: 'ERR_UNAVAILABLE' })
      const stats = await cache.stats()
      await cache.close()
      assert.deepEqual(tally.thrown, [])
      assert.deepEqual(tally.wrong, [])
      assert.ok(tally.hits > 0)
      assert.ok(stats.dropped > 0 && stats.errors > 0, 'writes on a read-only disk are counted drops')
      record(t, { area: 'faults', what: 'read-only cache dir (real EROFS, bind mount)', tried: tally.ops, unit: 'operations', survived: tally.ops, note: `${stats.dropped} writes dropped, ${tally.hits} hits, 0 thrown` })
    } finally {
      spawnSync('umount', [dir])
    }
  })
})

after(() => Object.assign(disk, real))
