/**
 * One of several processes hammering one cache directory, for the concurrency torture test:
 *   concurrency-child.ts ops <dir> <writer> <seed> <ops> <keys>   mixed operations, every read validated
 *   concurrency-child.ts prune <dir> <seed> <maxEntries>           prune (and verify) until told to stop
 * Sends `{ type: 'ready' }`, waits for `{ op: 'go' }` (so all start together; a pruner runs
 * until `{ op: 'stop' }`), then sends `{ type: 'result', ... }` and exits.
 *
 * An ops process also logs its history: when each write, delete, invalidation and read of a
 * shared key began and ended (CLOCK_MONOTONIC, the same clock in every process on a host),
 * and which version a read returned, so the parent can check every read against what had
 * been acknowledged by then (see concurrency.test.ts).
 */
import { once } from 'node:events'
import { Larder } from '../../../src/index.ts'
import { drain, makeBlob, makeRecord, prng, problemOf, randInt } from '../../children/shared.ts'

const [mode, dir, ...rest] = process.argv.slice(2)

/** One step of the history: a write of version `v` (`writer.seq`), a delete, an invalidation
 *  of `tag`, or a read that returned version `v` (null: a miss). Times in ms, CLOCK_MONOTONIC. */
export interface HistoryEvent {
  k: 'w' | 'd' | 'i' | 'r'
  key?: string
  tag?: string
  v?: string | null
  tags?: string[]
  s: number
  e: number
  /** A read: which call made it (get, getOrSet, getStream) and which tier answered a hit. */
  how?: string
  tier?: 'memory' | 'file' | 'redis'
  /** A read: the latest moment before it began at which this process's memory tier surely
   *  knew the time (its timers ran, or a call of it that reads the clock began), and when
   *  timers last ran. A memory tier notices other processes' changes only once it knows
   *  5 ms have passed since its last look (see concurrency.test.ts). */
  seen?: number
  tick?: number
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6

/** The version (`writer.seq`) a record, a blob or a record's JSON bytes carry. */
function versionOf(value: unknown): string {
  if (Buffer.isBuffer(value)) {
    if (value[0] === 0x7b) {
      const r = JSON.parse(value.toString('utf8')) as { writer: number; seq: number }
      return `${r.writer}.${r.seq}`
    }
    const body = value.subarray(64)
    const h = JSON.parse(body.toString('utf8', 0, body.indexOf(10))) as { writer: number; seq: number }
    return `${h.writer}.${h.seq}`
  }
  const r = value as { writer: number; seq: number }
  return `${r.writer}.${r.seq}`
}

/** Sends a message and waits until it has left: the history is large, and disconnecting
 *  right after `send` can drop it. */
function sent(message: object): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve())))
}

// eslint-disable-next-line @typescript-eslint/require-await -- an async iterable on purpose (the shape setStream takes); nothing to await
async function* chunked(bytes: Buffer, step: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += step) yield bytes.subarray(at, at + step)
}

process.send!({ type: 'ready' })
const [go] = (await once(process, 'message')) as [{ op: string }]
if (go.op !== 'go') throw new Error(`expected go, got ${go.op}`)

if (mode === 'ops') {
  const [writer, seed, ops, keys] = rest.map(Number) as [number, number, number, number]
  const rand = prng(seed)
  const memory = writer % 2 === 0
  // Half the processes keep a memory tier (another process's writes seen on its next look).
  const cache = await Larder.open({
    dir: dir!,
    maintenance: { interval: 0 },
    memory: memory ? { maxEntries: 200, ttl: 50 } : false,
    compression: writer % 3 === 0 ? 'gzip' : 'deflate',
  })
  const corrupt: string[] = []
  const errors: string[] = []
  cache.on('corrupt', (info) => corrupt.push(`${info.key}: ${info.reason}`))
  cache.on('error', (e) => errors.push(e.message))
  // Which tier answered the read in progress (the event is emitted within the call).
  let answered: HistoryEvent['tier']
  cache.on('hit', (_key, _tier, source) => (answered = source))
  // When timers last ran (a 1 ms timer notes the time each time it fires; only where there is
  // a memory tier to judge by it), and when the last call that made the memory tier read the
  // clock began: a set, delete or setStream, or a read the memory tier did not answer
  // (memory-tier.ts, #notePassingTime).
  let tick = now()
  const ticker = memory ? setInterval(() => (tick = now()), 1) : undefined
  let clockCall = tick
  const counts = {
    set: 0,
    get: 0,
    has: 0,
    delete: 0,
    getOrSet: 0,
    tagged: 0,
    invalidate: 0,
    setStream: 0,
    getStream: 0,
    increment: 0,
    validated: 0,
    misses: 0,
  }
  const wrong: string[] = []
  const thrown: string[] = []
  let counter = 0
  const history: HistoryEvent[] = []
  /** Logs a read: the version it returned (or a miss), if the value is valid at all. */
  const read = (how: string, key: string, value: unknown, s: number, before: { seen: number; tick: number }): void => {
    const e = now()
    if (value === undefined) {
      counts.misses++
      history.push({ k: 'r', key, v: null, s, e, how, ...before })
      return
    }
    const p = problemOf(key, value)
    if (p !== undefined) {
      wrong.push(`${how} ${key}: ${p}`)
      return
    }
    counts.validated++
    history.push({ k: 'r', key, v: versionOf(value), s, e, how, ...before, ...(answered === undefined ? {} : { tier: answered }) })
  }
  for (let i = 0; i < ops; i++) {
    const key = `shared-${randInt(rand, 0, keys - 1)}`
    const r = rand()
    const pad = rand() < 0.8 ? randInt(rand, 0, 3000) : randInt(rand, 5000, 80_000)
    const s = now()
    const before = { seen: Math.max(tick, clockCall), tick }
    answered = undefined
    // Whether this call makes the memory tier read the clock (all but hits, getStream, has,
    // invalidateTags and increment, which are left out rather than looked into).
    let readsClock = false
    try {
      if (r < 0.2) {
        await cache.set(key, rand() < 0.9 ? makeRecord(key, writer, i, pad) : makeBlob(key, writer, i, randInt(rand, 70_000, 150_000)))
        history.push({ k: 'w', key, v: `${writer}.${i}`, s, e: now() })
        counts.set++
        readsClock = true
      } else if (r < 0.27) {
        const tags = [`t${randInt(rand, 0, 3)}`]
        await cache.set(key, makeRecord(key, writer, i, pad), { tags, ttl: rand() < 0.5 ? '1h' : 0 })
        history.push({ k: 'w', key, v: `${writer}.${i}`, tags, s, e: now() })
        counts.tagged++
        readsClock = true
      } else if (r < 0.29) {
        const tag = `t${randInt(rand, 0, 3)}`
        await cache.invalidateTags([tag])
        history.push({ k: 'i', tag, s, e: now() })
        counts.invalidate++
      } else if (r < 0.55) {
        counts.get++
        read('get', key, await cache.get(key), s, before)
        readsClock = answered !== 'memory'
      } else if (r < 0.6) {
        await cache.has(key)
        counts.has++
      } else if (r < 0.66) {
        await cache.delete(key)
        history.push({ k: 'd', key, s, e: now() })
        counts.delete++
        readsClock = true
      } else if (r < 0.76) {
        counts.getOrSet++
        let loaded = false
        const v = await cache.getOrSet(key, () => {
          loaded = true
          return makeRecord(key, writer, i, pad)
        })
        // The loader ran: a write of this call's version (which it also returned); otherwise a read.
        if (loaded) {
          history.push({ k: 'w', key, v: `${writer}.${i}`, s, e: now() })
          const p = problemOf(key, v)
          if (p === undefined) counts.validated++
          else wrong.push(`getOrSet ${key}: ${p}`)
        } else read('getOrSet', key, v, s, before)
        readsClock = answered !== 'memory'
      } else if (r < 0.84) {
        const bytes = Buffer.from(JSON.stringify(makeRecord(key, writer, i, randInt(rand, 0, 300_000))))
        await cache.setStream(key, chunked(bytes, randInt(rand, 1000, 100_000)))
        history.push({ k: 'w', key, v: `${writer}.${i}`, s, e: now() })
        counts.setStream++
        readsClock = true
      } else if (r < 0.95) {
        counts.getStream++
        const stream = await cache.getStream(key)
        read('getStream', key, stream === undefined ? undefined : await drain(stream), s, before)
      } else {
        // Only this process increments its own counter: every update must land.
        counter = await cache.increment(`counter-${writer}`)
        counts.increment++
      }
    } catch (error) {
      thrown.push(`${key}: ${(error as Error).stack ?? String(error)}`)
    }
    if (readsClock) clockCall = s
  }
  clearInterval(ticker)
  const finalCounter = await cache.get(`counter-${writer}`)
  const stats = await cache.stats()
  await cache.close()
  await sent({
    type: 'result',
    counts,
    wrong,
    thrown: thrown.slice(0, 5),
    thrownCount: thrown.length,
    corrupt,
    errors: errors.slice(0, 5),
    counter,
    finalCounter,
    stats: { errors: stats.errors, corrupt: stats.corrupt, dropped: stats.dropped },
    history,
    memory,
  })
} else if (mode === 'prune') {
  const [seed, maxEntries] = rest.map(Number) as [number, number]
  const rand = prng(seed)
  const cache = await Larder.open({ dir: dir!, maintenance: { interval: 0 } })
  let stop = false
  process.on('message', (m: { op: string }) => {
    if (m.op === 'stop') stop = true
  })
  const totals = { prunes: 0, verifies: 0, evicted: 0, expired: 0, corrupt: 0, verifyCorrupt: 0 }
  const thrown: string[] = []
  while (!stop) {
    try {
      if (rand() < 0.8) {
        const report = await cache.prune({ maxEntries })
        totals.prunes++
        totals.evicted += report.evicted
        totals.expired += report.expired
        totals.corrupt += report.corrupt
      } else {
        const report = await cache.verify()
        totals.verifies++
        totals.verifyCorrupt += report.corrupt
      }
    } catch (error) {
      thrown.push((error as Error).stack ?? String(error))
    }
    await new Promise((resolve) => setTimeout(resolve, randInt(rand, 0, 20)))
  }
  await cache.close()
  await sent({ type: 'result', totals, thrown })
}
process.disconnect()
