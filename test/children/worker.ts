/**
 * A child process that serves larder calls over IPC, for multi-process tests.
 *
 * Run as `node --import tsx test/children/worker.ts` with an 'advanced' IPC channel. It sends
 * `{ type: 'ready' }`, then answers requests `{ id, op, ...args }` with
 * `{ id, ok: true, result }` or `{ id, ok: false, error }`. Caches are opened with `open`
 * and named by the handle it returns; `stress` runs a whole mixed workload in-process so
 * several children can hammer one directory at full speed.
 */
import { Larder, type LarderOptions } from '../../src/index.ts'
import { deepStrictEqual } from 'node:assert/strict'
import { persistenceFixtures, STREAM_FIXTURE } from './fixtures.ts'
import { artifactSource, digestStream, makeRecord, prng, randInt, recordProblem } from './shared.ts'
import { serveRequests } from './rpc.ts'

interface Opened {
  cache: Larder
  errors: string[]
  corrupt: string[]
}

const caches = new Map<number, Opened>()
let nextHandle = 1

function cacheOf(handle: unknown): Larder {
  const opened = caches.get(handle as number)
  if (opened === undefined) throw new Error(`no cache with handle ${String(handle)}`)
  return opened.cache
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of stream) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}

// eslint-disable-next-line @typescript-eslint/require-await -- an async iterable on purpose (the shape setStream takes); nothing to await
async function* chunked(bytes: Buffer, pieces: number): AsyncGenerator<Buffer> {
  const step = Math.max(1, Math.ceil(bytes.length / pieces))
  for (let o = 0; o < bytes.length; o += step) yield bytes.subarray(o, o + step)
}

interface StressArgs {
  dir: string
  writer: number
  ops: number
  keys: number
  seed: number
}

/**
 * Mixed set / setStream / get / getStream / delete over shared keys. Every value written is a
 * self-checking record for its key; every value read is validated. Returns counts, the
 * first few problems, and the cache's own stats.
 */
async function stress(a: StressArgs): Promise<Record<string, unknown>> {
  const cache = await Larder.open({ dir: a.dir })
  const errorEvents: string[] = []
  const corruptEvents: string[] = []
  cache.on('error', (e) => errorEvents.push(e.message))
  cache.on('corrupt', (info) => corruptEvents.push(`${info.key}: ${info.reason}`))
  const rand = prng(a.seed)
  const counts = { set: 0, setStream: 0, get: 0, getStream: 0, delete: 0, hits: 0, misses: 0, validated: 0 }
  const wrong: string[] = []
  const thrown: string[] = []
  let seq = 0
  for (let i = 0; i < a.ops; i++) {
    const key = `shared-${randInt(rand, 0, a.keys - 1)}`
    const r = rand()
    // Sizes: mostly small (sync path, uncompressed), some compressible mid-size, and
    // some over 64 KiB of incompressible-ish text (async write, streamed reads).
    const sizeRoll = rand()
    const pad = sizeRoll < 0.6 ? randInt(rand, 0, 3000) : sizeRoll < 0.9 ? randInt(rand, 4096, 40_000) : randInt(rand, 70_000, 200_000)
    try {
      if (r < 0.35) {
        await cache.set(key, makeRecord(key, a.writer, seq++, pad))
        counts.set++
      } else if (r < 0.4) {
        const bytes = Buffer.from(JSON.stringify(makeRecord(key, a.writer, seq++, pad)))
        await cache.setStream(key, chunked(bytes, 3))
        counts.setStream++
      } else if (r < 0.8) {
        counts.get++
        const value = await cache.get(key)
        if (value === undefined) counts.misses++
        else {
          counts.hits++
          const problem = recordProblem(key, value)
          if (problem !== undefined) wrong.push(`get ${key}: ${problem}`)
          else counts.validated++
        }
      } else if (r < 0.9) {
        counts.getStream++
        const stream = await cache.getStream(key)
        if (stream === undefined) counts.misses++
        else {
          counts.hits++
          const problem = recordProblem(key, await collect(stream))
          if (problem !== undefined) wrong.push(`getStream ${key}: ${problem}`)
          else counts.validated++
        }
      } else {
        await cache.delete(key)
        counts.delete++
      }
    } catch (error) {
      thrown.push(`${key}: ${(error as Error).stack ?? String(error)}`)
    }
  }
  const stats = await cache.stats()
  await cache.close()
  return {
    counts,
    wrongCount: wrong.length,
    wrong: wrong.slice(0, 10),
    thrownCount: thrown.length,
    thrown: thrown.slice(0, 5),
    errorEvents: errorEvents.slice(0, 5),
    corruptEvents: corruptEvents.slice(0, 5),
    stats,
  }
}

/** Writes every persistence fixture, each through a cache opened with its serializer. */
async function writeFixtures(dir: string): Promise<Record<string, unknown>> {
  const fixtures = persistenceFixtures()
  const bySerializer = new Map<string, Larder>()
  for (const f of fixtures) {
    let cache = bySerializer.get(f.serializer)
    if (cache === undefined) {
      cache = await Larder.open({ dir, serializer: f.serializer })
      bySerializer.set(f.serializer, cache)
    }
    await cache.set(f.key, f.value)
  }
  const streamCache = await Larder.open({ dir })
  await streamCache.setStream(STREAM_FIXTURE.key, artifactSource(STREAM_FIXTURE.spec))
  const stats: Record<string, unknown> = {}
  for (const [name, cache] of [...bySerializer, ['stream', streamCache] as const]) {
    stats[name] = await cache.stats()
    await cache.close()
  }
  return { written: fixtures.length, stats }
}

/**
 * Reads every fixture back twice: through a cache opened with the fixture's serializer and
 * through one opened with 'json' (an entry records its own codec). Checks each value here,
 * and returns them too so the parent can check them again.
 */
async function readFixtures(dir: string): Promise<Record<string, unknown>> {
  const fixtures = persistenceFixtures()
  const readers = new Map<string, Larder>()
  const open = async (serializer: string): Promise<Larder> => {
    let cache = readers.get(serializer)
    if (cache === undefined) {
      cache = await Larder.open({ dir, serializer: serializer as 'json' })
      readers.set(serializer, cache)
    }
    return cache
  }
  const otherNamespace = await Larder.open({ dir, namespace: 'elsewhere' })
  const results: { key: string; via: string; present: boolean; isBuffer: boolean; problem?: string; value: unknown }[] = []
  const leaks: string[] = []
  for (const f of fixtures) {
    for (const via of [f.serializer, 'json']) {
      const value = await (await open(via)).get(f.key)
      let problem: string | undefined
      try {
        deepStrictEqual(value, 'expected' in f ? f.expected : f.value)
      } catch (error) {
        problem = (error as Error).message.slice(0, 400)
      }
      results.push({ key: f.key, via, present: value !== undefined, isBuffer: Buffer.isBuffer(value), problem, value })
    }
    if ((await otherNamespace.get(f.key)) !== undefined) leaks.push(f.key)
  }
  const stream = await (await open('json')).getStream(STREAM_FIXTURE.key)
  const streamDigest = stream === undefined ? undefined : await digestStream(stream)
  const stats: Record<string, unknown> = {}
  for (const [name, cache] of readers) {
    stats[name] = await cache.stats()
    await cache.close()
  }
  await otherNamespace.close()
  return { results, leaks, streamDigest, stats }
}

async function handle(message: Record<string, unknown>): Promise<unknown> {
  const { op } = message
  switch (op) {
    case 'open': {
      const cache = await Larder.open(message.options as LarderOptions)
      const opened: Opened = { cache, errors: [], corrupt: [] }
      cache.on('error', (e) => opened.errors.push(e.message))
      cache.on('corrupt', (info) => opened.corrupt.push(`${info.key}: ${info.reason}`))
      const h = nextHandle++
      caches.set(h, opened)
      return h
    }
    case 'set':
      await cacheOf(message.h).set(message.key as string, message.value, message.options as object | undefined)
      return true
    case 'setStream':
      await cacheOf(message.h).setStream(message.key as string, chunked(Buffer.from(message.bytes as Uint8Array), 4))
      return true
    case 'get': {
      const value = await cacheOf(message.h).get(message.key as string)
      return { present: value !== undefined, value, isBuffer: Buffer.isBuffer(value) }
    }
    case 'getStreamDigest': {
      const stream = await cacheOf(message.h).getStream(message.key as string)
      return stream === undefined ? undefined : digestStream(stream)
    }
    case 'delete':
      return cacheOf(message.h).delete(message.key as string)
    case 'invalidateTags':
      await cacheOf(message.h).invalidateTags(message.tags as string[])
      return true
    case 'stats':
      return cacheOf(message.h).stats()
    case 'events': {
      const opened = caches.get(message.h as number)!
      return { errors: opened.errors, corrupt: opened.corrupt }
    }
    case 'close':
      await cacheOf(message.h).close()
      caches.delete(message.h as number)
      return true
    case 'stress':
      return stress(message as unknown as StressArgs)
    case 'writeFixtures':
      return writeFixtures(message.dir as string)
    case 'readFixtures':
      return readFixtures(message.dir as string)
    case 'now':
      return Date.now()
    default:
      throw new Error(`unknown op ${String(op)}`)
  }
}

serveRequests(handle, () => Promise.all([...caches.values()].map((c) => c.cache.close())))
