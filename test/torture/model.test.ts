/**
 * Model-based property tests (fast-check): random sequences of API calls, checked call by
 * call against a plain in-memory model, across close and reopen, with and without the memory
 * tier. And fuzzing of the entry decoder: arbitrary bytes, and valid entries with lying fields
 * (checksum recomputed, so the checks after it are what is tested) never make it throw
 * anything but a CorruptEntryError, hang, or allocate from a lying length.
 *
 * Time: larder reads the wall clock (Date.now) directly and has no clock seam. TTLs here are
 * either an hour (never reached) or 1 ms followed by an explicit `Advance` step that waits
 * 5 ms: until that step an entry with a 1 ms ttl may read either way; after it, it must be
 * gone. No assertion depends on where a deadline falls.
 */
import { describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import fc from 'fast-check'
import { Larder, isLarderError, type LarderOptions } from '../../src/index.ts'
import { loadHasher } from '../../src/format/checksum.ts'
import { CorruptEntryError, decodeEntry, decodeHead, decodeTrailer, encodeEntry, encodeTags } from '../../src/format/entry-format.ts'
import { decodeFramedPayload, decodeFrameHeader } from '../../src/format/frames.ts'
import { tempDir, entryFiles } from '../helpers.ts'
import { record, scale } from './scale.ts'

await loadHasher()

// ── the model ────────────────────────────────────────────────────────────────

/** `volatile`: a 1 ms ttl not yet waited out (reads either way). `dead`: expired or
 *  tag-invalidated: reads miss, its file may still be there, and delete() removes it but
 *  returns false (it was not there to delete). */
interface ModelEntry {
  json: string
  tags: string[]
  volatile: boolean
  dead?: boolean
}
interface Model {
  entries: Map<string, ModelEntry>
  streams: Map<string, ModelEntry>
  counters: Map<string, number>
}
interface Real {
  cache: Larder
  options: LarderOptions
  checked: { ops: number }
}

const KEYS = ['a', 'b', 'user:1', '../../etc/passwd', '/abs/path', 'C:\\win', 'ключ 🙂', ' ', 'x'.repeat(8192)]
const TAGS = ['t1', 't2', 't3']
const key = fc.constantFrom(...KEYS)
const tags = fc.subarray(TAGS)
const ttl = fc.constantFrom<'none' | 'long' | 'short'>('none', 'none', 'long', 'short')
const value = fc.jsonValue({ maxDepth: 3 }).filter((v) => v !== null || true)
const ttlOf = (t: 'none' | 'long' | 'short'): number | string | undefined => (t === 'none' ? undefined : t === 'long' ? '1h' : 1)

/** Same value as larder's JSON serializer gives back (-0 → 0 and the like): compared as JSON. */
const json = (v: unknown): string => JSON.stringify(v)

function expectRead(label: string, entry: ModelEntry | undefined, got: unknown, encode: (v: unknown) => string = json): void {
  if (entry === undefined || entry.dead) assert.equal(got, undefined, `${label}: expected a miss`)
  else if (entry.volatile) assert.ok(got === undefined || encode(got) === entry.json, `${label}: neither a miss nor the value`)
  else {
    assert.notEqual(got, undefined, `${label}: expected ${entry.json.slice(0, 80)}, got a miss`)
    assert.equal(encode(got), entry.json, `${label}: wrong value`)
  }
}

type Cmd = fc.AsyncCommand<Model, Real>

class SetCmd implements Cmd {
  constructor(
    readonly k: string,
    readonly v: unknown,
    readonly t: string[],
    readonly life: 'none' | 'long' | 'short',
  ) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    await r.cache.set(this.k, this.v, { tags: this.t, ttl: ttlOf(this.life) })
    m.entries.set(this.k, { json: json(this.v), tags: this.t, volatile: this.life === 'short' })
    r.checked.ops++
  }
  toString = (): string => `set(${JSON.stringify(this.k.slice(0, 20))}, ${json(this.v)?.slice(0, 40)}, ${this.t.join(',')}, ${this.life})`
}

class GetCmd implements Cmd {
  constructor(readonly k: string) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    expectRead(`get ${this.k.slice(0, 20)}`, m.entries.get(this.k), await r.cache.get(this.k))
    r.checked.ops++
  }
  toString = (): string => `get(${JSON.stringify(this.k.slice(0, 20))})`
}

class HasCmd implements Cmd {
  constructor(readonly k: string) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    const e = m.entries.get(this.k)
    const has = await r.cache.has(this.k)
    if (e === undefined || e.dead) assert.equal(has, false)
    else if (!e.volatile) assert.equal(has, true)
    r.checked.ops++
  }
  toString = (): string => `has(${JSON.stringify(this.k.slice(0, 20))})`
}

class DeleteCmd implements Cmd {
  constructor(readonly k: string) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    const e = m.entries.get(this.k)
    const deleted = await r.cache.delete(this.k)
    if (e === undefined || e.dead) assert.equal(deleted, false, 'delete of an absent, expired or invalidated key')
    else if (!e.volatile && !e.dead) assert.equal(deleted, true, 'delete of a present key')
    m.entries.delete(this.k)
    assert.equal(await r.cache.get(this.k), undefined, 'gone after delete')
    r.checked.ops++
  }
  toString = (): string => `delete(${JSON.stringify(this.k.slice(0, 20))})`
}

class GetOrSetCmd implements Cmd {
  constructor(
    readonly k: string,
    readonly v: unknown,
  ) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    const e = m.entries.get(this.k)
    let calls = 0
    const got = await r.cache.getOrSet(this.k, () => {
      calls++
      return this.v
    })
    if (e !== undefined && !e.volatile && !e.dead) {
      assert.equal(calls, 0, 'the loader ran for a cached key')
      assert.equal(json(got), e.json)
    } else if (calls === 1) {
      assert.equal(json(got), json(this.v))
      m.entries.set(this.k, { json: json(this.v), tags: [], volatile: false })
    } else {
      assert.ok(e !== undefined && json(got) === e.json, 'no loader call, and not the cached value')
    }
    r.checked.ops++
  }
  toString = (): string => `getOrSet(${JSON.stringify(this.k.slice(0, 20))}, ${json(this.v)?.slice(0, 40)})`
}

class InvalidateCmd implements Cmd {
  constructor(readonly t: string[]) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    await r.cache.invalidateTags(this.t)
    for (const e of m.entries.values()) if (e.tags.some((t) => this.t.includes(t))) e.dead = true
    r.checked.ops++
  }
  toString = (): string => `invalidateTags(${this.t.join(',')})`
}

class ClearCmd implements Cmd {
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    await r.cache.clear()
    m.entries.clear()
    m.streams.clear()
    m.counters.clear()
    r.checked.ops++
  }
  toString = (): string => 'clear()'
}

class IncrementCmd implements Cmd {
  constructor(
    readonly k: string,
    readonly delta: number,
  ) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    const expected = (m.counters.get(this.k) ?? 0) + this.delta
    assert.equal(await r.cache.increment(this.k, this.delta), expected)
    m.counters.set(this.k, expected)
    assert.equal(await r.cache.get(this.k), expected)
    r.checked.ops++
  }
  toString = (): string => `increment(${this.k}, ${this.delta})`
}

class StreamCmd implements Cmd {
  constructor(
    readonly k: string,
    readonly chunks: Uint8Array[],
  ) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    await r.cache.setStream(this.k, this.chunks)
    const all = Buffer.concat(this.chunks.map((c) => Buffer.from(c)))
    m.streams.set(this.k, { json: all.toString('hex'), tags: [], volatile: false })
    r.checked.ops++
  }
  toString = (): string => `setStream(${this.k}, ${this.chunks.length} chunks)`
}

class StreamReadCmd implements Cmd {
  constructor(
    readonly k: string,
    readonly viaGet: boolean,
  ) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    const hex = (v: unknown): string => Buffer.from(v as Uint8Array).toString('hex')
    if (this.viaGet) expectRead(`get ${this.k}`, m.streams.get(this.k), await r.cache.get(this.k), hex)
    else {
      const s = await r.cache.getStream(this.k)
      let got: Buffer | undefined
      if (s !== undefined) {
        const parts: Buffer[] = []
        for await (const c of s) parts.push(Buffer.from(c as Uint8Array))
        got = Buffer.concat(parts)
      }
      expectRead(`getStream ${this.k}`, m.streams.get(this.k), got, hex)
    }
    r.checked.ops++
  }
  toString = (): string => `${this.viaGet ? 'get' : 'getStream'}(${this.k})`
}

class ManyCmd implements Cmd {
  constructor(
    readonly items: { k: string; v: unknown }[],
    readonly del: string[],
  ) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    await r.cache.setMany(this.items.map(({ k, v }) => ({ key: k, value: v })))
    for (const { k, v } of this.items) m.entries.set(k, { json: json(v), tags: [], volatile: false })
    const keys = this.items.map((i) => i.k)
    const got = await r.cache.getMany(keys)
    keys.forEach((k, i) => expectRead(`getMany ${k.slice(0, 20)}`, m.entries.get(k), got[i]))
    const present = new Set(this.del.filter((k) => m.entries.has(k) && !m.entries.get(k)!.volatile && !m.entries.get(k)!.dead))
    const maybe = new Set(this.del.filter((k) => m.entries.get(k)?.volatile && !m.entries.get(k)?.dead))
    const n = await r.cache.deleteMany(this.del)
    assert.ok(n >= present.size && n <= present.size + maybe.size, `deleteMany: ${n}, expected ${present.size}(+${maybe.size})`)
    for (const k of this.del) m.entries.delete(k)
    r.checked.ops++
  }
  toString = (): string => `setMany/getMany(${this.items.length}) deleteMany(${this.del.length})`
}

class AdvanceCmd implements Cmd {
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    await delay(5) // every 1 ms ttl is now well past
    for (const e of m.entries.values()) if (e.volatile) e.dead = true
    r.checked.ops++
  }
  toString = (): string => 'advance(5 ms)'
}

class ReopenCmd implements Cmd {
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    await r.cache.close()
    r.cache = await Larder.open(r.options)
    r.checked.ops++
  }
  toString = (): string => 'close(); open()'
}

const commands = [
  fc.tuple(key, value, tags, ttl).map(([k, v, t, l]) => new SetCmd(k, v, t, l)),
  fc.tuple(key, value, tags, ttl).map(([k, v, t, l]) => new SetCmd(k, v, t, l)),
  key.map((k) => new GetCmd(k)),
  key.map((k) => new GetCmd(k)),
  key.map((k) => new HasCmd(k)),
  key.map((k) => new DeleteCmd(k)),
  fc.tuple(key, value).map(([k, v]) => new GetOrSetCmd(k, v)),
  fc.subarray(TAGS, { minLength: 1 }).map((t) => new InvalidateCmd(t)),
  fc.constant(new ClearCmd()).map(() => new ClearCmd()),
  fc.tuple(fc.constantFrom('n1', 'n2'), fc.integer({ min: -1000, max: 1000 })).map(([k, d]) => new IncrementCmd(k, d)),
  fc
    .tuple(fc.constantFrom('s1', 's2'), fc.array(fc.uint8Array({ maxLength: 70_000 }), { maxLength: 4 }))
    .map(([k, c]) => new StreamCmd(k, c)),
  fc.tuple(fc.constantFrom('s1', 's2'), fc.boolean()).map(([k, g]) => new StreamReadCmd(k, g)),
  fc.tuple(fc.array(fc.record({ k: key, v: value }), { maxLength: 4 }), fc.subarray(KEYS)).map(([i, d]) => new ManyCmd(i, d)),
  fc.constant(null).map(() => new AdvanceCmd()),
  fc.constant(null).map(() => new ReopenCmd()),
]

// ── the decoder ──────────────────────────────────────────────────────────────

function rechecksummed(bytes: Buffer): Buffer {
  // encodeEntry computes the checksum; re-encode around the mutated bytes' checksum field.
  const copy = Buffer.from(bytes)
  if (copy.length >= 8) {
    const body = copy.subarray(0, copy.length - 8)
    copy.writeBigUInt64LE(checksumOf(body), copy.length - 8)
  }
  return copy
}
let checksumOf: (b: Buffer) => bigint
{
  const { checksum } = await import('../../src/format/checksum.ts')
  checksumOf = checksum
}

/** A decoder call: returns, or throws a CorruptEntryError; anything else fails the property. */
function decodes(run: () => unknown): void {
  const before = process.memoryUsage().arrayBuffers
  try {
    run()
  } catch (error) {
    if (!(error instanceof CorruptEntryError))
      throw new Error(`threw ${(error as Error).name}: ${(error as Error).message}`, { cause: error })
  }
  const grew = process.memoryUsage().arrayBuffers - before
  if (grew > 64 * 1024 * 1024) throw new Error(`allocated ${grew} bytes`)
}

const entryArb = fc
  .record({
    key: fc.string({ minLength: 1, maxLength: 40 }).filter((k) => !k.includes('\0')),
    tags: fc.subarray(TAGS),
    payload: fc.uint8Array({ maxLength: 600 }),
    codec: fc.integer({ min: 0, max: 255 }),
    compression: fc.integer({ min: 0, max: 255 }),
    flags: fc.constantFrom(0, 1),
    createdAt: fc.double({ min: 0, max: 4e12, noNaN: true }),
    expiresAt: fc.double({ min: 0, max: 4e12, noNaN: true }),
  })
  .map((e) =>
    encodeEntry(
      {
        key: e.key,
        codec: e.codec,
        compression: e.compression,
        createdAt: e.createdAt,
        expiresAt: e.expiresAt,
        tags: e.tags,
        flags: e.flags,
      },
      Buffer.from(e.key),
      encodeTags(e.tags),
      Buffer.from(e.payload),
      e.payload.length,
    ),
  )

/** Overwrites: a list of (offset, bytes) written into the entry, lying fields included. */
const mutationArb = fc.array(
  fc.record({
    at: fc.oneof(fc.constantFrom(4, 5, 6, 7, 24, 28, -32, -24, -16, -12), fc.integer({ min: 0, max: 700 })),
    bytes: fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 8 }),
      fc.constantFrom(
        new Uint8Array([0xff, 0xff, 0xff, 0xff]),
        new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]),
        new Uint8Array([0, 0, 0, 0x80]),
      ),
    ),
  }),
  { minLength: 1, maxLength: 4 },
)

/**
 * Records a fast-check property run: tried = inputs (or runs) fast-check generated before it
 * stopped, survived = those that held (all of them, or all but the first counterexample, which
 * then fails the test with fast-check's shrunk report).
 */
function recordProperty<T>(
  t: TestContext,
  row: { area: string; what: string; unit: string; note?: string },
  details: fc.RunDetails<T>,
): void {
  const failures = details.failed ? [fc.defaultReportMessage(details) ?? 'property failed'] : []
  record(t, { ...row, tried: details.numRuns, survived: details.numRuns - (details.failed ? 1 : 0) }, failures)
}

function mutate(entry: Buffer, mutations: { at: number; bytes: Uint8Array }[]): Buffer {
  const out = Buffer.from(entry)
  for (const { at, bytes } of mutations) {
    const offset = at < 0 ? out.length + at : at % Math.max(1, out.length)
    Buffer.from(bytes).copy(out, offset)
  }
  return out
}

describe('model-based: API sequences against an in-memory model', () => {
  const RUNS = scale(40, 250)
  for (const variant of [{ memory: false }, { memory: true }, { memory: false, compression: 'none', serializer: 'json' }] as const) {
    test(
      `${RUNS} random sequences (${JSON.stringify(variant)}) agree with the model, across close and reopen`,
      { timeout: scale(180_000, 1_200_000) },
      async (t) => {
        let ops = 0
        const details = await fc.check(
          fc.asyncProperty(fc.commands(commands, { maxCommands: scale(40, 80), size: 'large' }), async (cmds) => {
            const dir = fs.mkdtempSync(path.join(tempDirRoot, 'run-'))
            const options: LarderOptions = { dir, maintenance: { interval: 0 }, compressThreshold: 100, ...variant }
            const real: Real = { cache: await Larder.open(options), options, checked: { ops: 0 } }
            try {
              await fc.asyncModelRun(() => ({ model: { entries: new Map(), streams: new Map(), counters: new Map() }, real }), cmds)
              // Nothing was written outside the cache directory, whatever the keys looked like.
              assert.ok(
                fs.readdirSync(dir).every((n) => n === 'v1' || n === 'CACHEDIR.TAG'),
                `unexpected files in ${dir}`,
              )
            } finally {
              await real.cache.close()
              fs.rmSync(dir, { recursive: true, force: true })
            }
            ops += real.checked.ops
          }),
          { numRuns: RUNS, seed: process.env.LARDER_TEST_SEED === undefined ? undefined : Number(process.env.LARDER_TEST_SEED) },
        )
        // A run is a random sequence of calls, each checked against the model as it returns; the
        // first disagreement ends the run (and fast-check shrinks it to a minimal counterexample).
        recordProperty(
          t,
          {
            area: 'model',
            what: `API sequences vs model (${variant.memory ? 'memory tier' : variant.compression === 'none' ? 'no compression' : 'disk only'})`,
            unit: 'runs',
            note: `${ops} checked calls`,
          },
          details,
        )
      },
    )
  }
})
const tempDirRoot = tempDir('larder-torture-model')

describe('fuzzing the entry decoder', () => {
  const RUNS = scale(3000, 50_000)

  test(
    'arbitrary bytes: decodeEntry, decodeHead, decodeTrailer, frame decoding return or throw CorruptEntryError, nothing else',
    { timeout: 600_000 },
    async (t) => {
      const details = await fc.check(
        fc.asyncProperty(
          fc.uint8Array({ maxLength: 400 }),
          fc.nat({ max: 2 ** 40 }),
          fc.integer({ min: 0, max: 4 }),
          async (raw, size, compression) => {
            const bytes = Buffer.from(raw)
            decodes(() => decodeEntry(bytes))
            decodes(() => decodeHead(bytes, size))
            decodes(() => decodeHead(bytes, bytes.length))
            decodes(() => decodeTrailer(bytes.subarray(0, 32), size, 32))
            if (bytes.length >= 8) decodes(() => decodeFrameHeader(bytes.subarray(0, 8), bytes.length - 8, compression))
            const before = process.memoryUsage().arrayBuffers
            await decodeFramedPayload(bytes, compression, size).catch((error: unknown) => {
              if (!(error instanceof CorruptEntryError)) throw new Error(`decodeFramedPayload threw ${(error as Error).message}`)
            })
            assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, 'decodeFramedPayload allocated from a lying length')
          },
        ),
        { numRuns: RUNS },
      )
      recordProperty(t, { area: 'model', what: 'decoder fuzz: arbitrary bytes', unit: 'inputs' }, details)
    },
  )

  test(
    'valid entries with lying fields, checksum recomputed: decodeEntry returns a bounded entry or throws CorruptEntryError',
    { timeout: 600_000 },
    (t) => {
      let cases = 0
      let rejected = 0
      const details = fc.check(
        fc.property(entryArb, mutationArb, fc.boolean(), (entry, mutations, fix) => {
          const bytes = mutate(entry, mutations)
          const file = fix ? rechecksummed(bytes) : bytes
          try {
            const d = decodeEntry(file)
            assert.ok(d.payloadOffset + d.payload.length + 32 === file.length, 'decoded parts cover the file exactly')
            assert.ok(d.key.length > 0)
          } catch (error) {
            if (!(error instanceof CorruptEntryError)) throw error
            rejected++
          }
          cases++
        }),
        { numRuns: RUNS },
      )
      recordProperty(
        t,
        {
          area: 'model',
          what: 'decoder fuzz: valid entries with lying fields',
          unit: 'inputs',
          note: `${rejected} rejected as corrupt, the rest decoded within bounds`,
        },
        details,
      )
      assert.ok(rejected > 0 && rejected < cases, `${rejected} of ${cases} rejected: the mutations tested nothing`)
    },
  )

  test(
    'lying entries on disk: get, getStream and has never throw (but ERR_CORRUPT on a stream / ERR_DESERIALIZE), never hang, never serve another key',
    { timeout: 600_000 },
    async (t) => {
      const dir = tempDir('larder-torture-fuzz-disk')
      const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
      await cache.set('probe', 'x')
      const file = entryFiles(dir)[0]!
      const details = await fc.check(
        fc.asyncProperty(entryArb, mutationArb, fc.boolean(), async (entry, mutations, fix) => {
          // The entry is written under the name of 'probe', with its own key inside: only a
          // mutation that yields key 'probe' could be served (and then it is a valid entry).
          const bytes = fix ? rechecksummed(mutate(entry, mutations)) : mutate(entry, mutations)
          for (const read of ['get', 'getStream', 'has'] as const) {
            fs.writeFileSync(file, bytes)
            const timer = setTimeout(() => assert.fail(`${read} hung`), 20_000)
            try {
              if (read === 'get') assert.equal(await cache.get('probe'), undefined)
              else if (read === 'has') assert.equal(await cache.has('probe'), false)
              else {
                const s = await cache.getStream('probe')
                if (s !== undefined) for await (const _ of s);
                assert.equal(s, undefined)
              }
            } catch (error) {
              if (!(isLarderError(error, 'ERR_CORRUPT') || isLarderError(error, 'ERR_DESERIALIZE'))) throw error
            } finally {
              clearTimeout(timer)
            }
          }
        }),
        { numRuns: scale(300, 5000) },
      )
      const stats = await cache.stats()
      await cache.close()
      recordProperty(
        t,
        {
          area: 'model',
          what: 'lying entries read through get/getStream/has (3 reads each)',
          unit: 'entries',
          note: `${stats.corrupt} counted corrupt, ${stats.errors} disk errors`,
        },
        details,
      )
      assert.equal(stats.errors, 0)
    },
  )
})
