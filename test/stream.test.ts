/**
 * Streams in and out of larder: large round trips with bounded memory (measured in a child
 * process), incompressible input, a failing source, a damaged entry, and `get` of a
 * streamed entry.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { closeSync, createReadStream, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Larder, LarderError } from '../src/index.ts'
import { Child, startChild } from './children/harness.ts'
import {
  artifactChunks,
  artifactDigest,
  artifactSource,
  digestStream,
  entryName,
  KiB,
  MiB,
  scanEntries,
  type ArtifactSpec,
} from './children/shared.ts'

const dirs: string[] = []
const children: Child[] = []

async function freshDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `larder-stream-${label}-`))
  dirs.push(dir)
  return dir
}

after(async () => {
  await Promise.all(children.map((c) => c.kill()))
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

async function entryFile(dir: string, key: string): Promise<string> {
  const name = await entryName(key)
  return path.join(dir, 'v1', 'default', name.slice(0, 2), name)
}

function artifactBytes(spec: ArtifactSpec): Buffer {
  return Buffer.concat([...artifactChunks(spec)])
}

describe('large stream round trips', () => {
  // A stream eight times larger than the bound, with the default (adaptive) compression: an
  // implementation that buffered the value, or even a large share of it, cannot pass.
  //
  // The bound is on what the process holds (rss-probe.ts: live heap and external memory once
  // the garbage is collected, read every 32 MiB of the stream), not on its resident set while
  // the garbage piles up. The latter once grew by 66.6 MiB on Node 24 under CI load: every MiB
  // streamed leaves ~2 MiB of dead buffers (the source's chunks, larder's 1 MiB blocks), V8
  // frees them only once its background threads have marked and swept them (later on a loaded
  // machine), and glibc keeps the space they freed. Measured with a 512 MiB incompressible
  // setStream on 2 cores, Node 24: RSS grew 22-46 MiB (Node 20: 31-43) with or without three
  // busy loops beside it, and 55-113 MiB with --single-threaded-gc (no background GC threads,
  // as on a starved machine; the old probe then failed every time), while the array buffers
  // left after a full collection stayed within +8 MiB (six queued frames, a block and its
  // parts) and the writer never queued more than 6 frames. The plain RSS peak, garbage
  // included, must stay under a quarter of the value (80 MiB at most with --single-threaded-gc).
  const SIZE = 512 * MiB
  const LIMIT = 64 * MiB
  const RSS_LIMIT = SIZE / 4

  interface Reading {
    peak: number
    arrayBuffers: number
    samples: number
    ms: number
    rssPeak: number
    rssSamples: number
  }
  interface Baseline {
    held: number
    arrayBuffers: number
    rss: number
  }

  for (const kind of ['mixed', 'random'] as const) {
    const what = kind === 'mixed' ? 'half-compressible' : 'incompressible'
    test(`a 512 MiB ${what} stream round trips byte-exact while larder holds less than 64 MiB of it`, { timeout: 240_000 }, async (t) => {
      const dir = await freshDir(`rss-${kind}`)
      const child = await startChild('rss-probe.ts', [dir, String(SIZE), kind], false, ['--expose-gc'])
      children.push(child)
      const r = (await child.next('result')) as unknown as {
        baseline: Baseline
        getBaseline: Baseline
        set: Reading
        get: Reading
        setMs: number
        getMs: number
        gcExposed: boolean
        source: { sha256: string; length: number }
        read: { sha256: string; length: number } | undefined
        stats: { corrupt: number; errors: number; bytesWritten: number }
      }
      const exit = await child.exited
      assert.equal(exit.code, 0, child.stderr)
      const mib = (n: number): string => (n / MiB).toFixed(1)
      const growth = {
        setHeld: r.set.peak - r.baseline.held,
        getHeld: r.get.peak - r.getBaseline.held,
        setRss: r.set.rssPeak - r.baseline.rss,
        getRss: r.get.rssPeak - r.getBaseline.rss,
      }
      const part = (name: string, held: number, reading: Reading, arrayBuffers: number, rss: number, ms: number): string =>
        `${name}: held +${mib(held)} MiB (array buffers +${mib(reading.arrayBuffers - arrayBuffers)}; ${reading.samples} readings, ${reading.ms.toFixed(0)} ms), ` +
        `RSS peak +${mib(rss)} MiB (${reading.rssSamples} samples), ${ms.toFixed(0)} ms`
      t.diagnostic(
        `held at start ${mib(r.baseline.held)} MiB; ` +
          `${part('setStream', growth.setHeld, r.set, r.baseline.arrayBuffers, growth.setRss, r.setMs)}; ` +
          `${part('getStream', growth.getHeld, r.get, r.getBaseline.arrayBuffers, growth.getRss, r.getMs)}; ` +
          `${mib(r.stats.bytesWritten)} MiB written`,
      )

      assert.equal(r.source.length, SIZE)
      assert.ok(r.read !== undefined, 'getStream missed')
      assert.equal(r.read.length, SIZE)
      assert.equal(r.read.sha256, r.source.sha256, 'bytes read differ from bytes written')
      assert.equal(r.stats.corrupt, 0)
      assert.equal(r.stats.errors, 0)
      assert.ok(r.gcExposed, 'the probe ran without --expose-gc, so it cannot collect before reading')
      // One reading every 32 MiB of the stream: 16 each way.
      assert.ok(r.set.samples >= 8 && r.get.samples >= 8, `too few readings (${r.set.samples}, ${r.get.samples})`)
      assert.ok(growth.setHeld < LIMIT, `larder held ${mib(growth.setHeld)} MiB more during setStream`)
      assert.ok(growth.getHeld < LIMIT, `larder held ${mib(growth.getHeld)} MiB more through getStream`)
      assert.ok(growth.setRss < RSS_LIMIT, `RSS grew by ${mib(growth.setRss)} MiB during setStream`)
      assert.ok(growth.getRss < RSS_LIMIT, `RSS grew by ${mib(growth.getRss)} MiB through getStream`)
      // Adaptive compression stores a block raw when every compressor is busy, so how much of
      // the compressible half shrinks depends on the machine's load; some of it always does.
      if (kind === 'mixed') assert.ok(r.stats.bytesWritten < SIZE, 'nothing of the compressible half was compressed')
      else assert.ok(r.stats.bytesWritten >= SIZE, 'incompressible bytes cannot have shrunk')
    })
  }

  test('an already-compressed (random) stream round trips byte-exact and is stored without compression', async () => {
    const dir = await freshDir('random')
    const cache = await Larder.open({ dir, streamCompression: 'full' })
    try {
      const spec: ArtifactSpec = { version: 5, size: 8 * MiB + 777, kind: 'random' }
      await cache.setStream('random', artifactSource(spec))
      const stream = await cache.getStream('random')
      assert.ok(stream !== undefined)
      assert.deepEqual(await digestStream(stream), artifactDigest(spec))

      const file = await entryFile(dir, 'random')
      const size = statSync(file).size
      assert.ok(size >= spec.size && size < spec.size + KiB, `a ${size}-byte file for ${spec.size} random bytes`)
      // Framed payload: every 1 MiB frame of random bytes is stored raw (bit 31 of its first word clear).
      const bytes = readFileSync(file)
      assert.equal(bytes[7]! & 1, 1, 'the payload is framed')
      let at = headerBytes(bytes) + bytes.readUInt32LE(24) + bytes.readUInt32LE(28)
      let frames = 0
      while (at < bytes.length - 32) {
        const word = bytes.readUInt32LE(at)
        assert.equal(word >>> 31, 0, `frame ${frames} of random data was stored compressed`)
        at += 8 + bytes.readUInt32LE(at + 4)
        frames++
      }
      assert.equal(frames, Math.ceil(spec.size / MiB))

      // A compressible stream, by contrast, is stored compressed and still round trips.
      const text: ArtifactSpec = { version: 6, size: 8 * MiB, kind: 'text' }
      await cache.setStream('text', artifactSource(text))
      assert.deepEqual(await digestStream((await cache.getStream('text'))!), artifactDigest(text))
      assert.ok(statSync(await entryFile(dir, 'text')).size < text.size / 4)
      const s = await cache.stats()
      assert.equal(s.corrupt + s.errors + s.dropped, 0)
    } finally {
      await cache.close()
    }
  })
})

describe('adaptive stream compression (the default)', () => {
  function frameKinds(bytes: Buffer): boolean[] {
    const kinds: boolean[] = []
    for (
      let at = headerBytes(bytes) + bytes.readUInt32LE(24) + bytes.readUInt32LE(28);
      at < bytes.length - 32;
      at += 8 + bytes.readUInt32LE(at + 4)
    ) {
      kinds.push(bytes.readUInt32LE(at) >>> 31 === 1)
    }
    return kinds
  }

  test('a source slower than zlib is compressed whole; a fast one has blocks stored raw while every compressor is busy, and both round trip', async () => {
    const dir = await freshDir('adaptive')
    const cache = await Larder.open({ dir })
    try {
      const spec: ArtifactSpec = { version: 7, size: 4 * MiB, kind: 'text' }
      async function* slow(): AsyncGenerator<Buffer> {
        for (const chunk of artifactChunks(spec)) {
          await new Promise((resolve) => setTimeout(resolve, 60))
          yield chunk
        }
      }
      await cache.setStream('slow', slow())
      assert.deepEqual(await digestStream((await cache.getStream('slow'))!), artifactDigest(spec))
      const slowFrames = frameKinds(readFileSync(await entryFile(dir, 'slow')))
      assert.deepEqual(slowFrames, [true, true, true, true], 'every block of a slow source is compressed')

      const fast: ArtifactSpec = { version: 8, size: 24 * MiB, kind: 'text' }
      await cache.setStream('fast', artifactSource(fast))
      assert.deepEqual(await digestStream((await cache.getStream('fast'))!), artifactDigest(fast))
      const fastFrames = frameKinds(readFileSync(await entryFile(dir, 'fast')))
      assert.equal(fastFrames.length, 24)
      assert.ok(fastFrames.includes(true), 'some blocks of a fast source are compressed')
      const s = await cache.stats()
      assert.equal(s.corrupt + s.errors + s.dropped, 0)
    } finally {
      await cache.close()
    }
  })

  test("streamCompression: 'full' compresses every compressible block of a fast source", async () => {
    const dir = await freshDir('full')
    const cache = await Larder.open({ dir, streamCompression: 'full' })
    try {
      const spec: ArtifactSpec = { version: 9, size: 12 * MiB, kind: 'text' }
      await cache.setStream('fast', artifactSource(spec))
      assert.deepEqual(frameKinds(readFileSync(await entryFile(dir, 'fast'))), Array(12).fill(true))
      assert.deepEqual(await digestStream((await cache.getStream('fast'))!), artifactDigest(spec))
    } finally {
      await cache.close()
    }
  })

  test('streamCompression is validated', async () => {
    const dir = await freshDir('bad-mode')
    await assert.rejects(
      Larder.open({ dir, streamCompression: 'fast' as 'full' }),
      (e: unknown) => e instanceof LarderError && e.code === 'ERR_INVALID_OPTION' && /streamCompression/.test(e.message),
    )
  })
})

describe('a failing source', () => {
  // eslint-disable-next-line @typescript-eslint/require-await -- an async iterable on purpose (the shape setStream takes); nothing to await
  async function* failing(spec: ArtifactSpec, failAfter: number, error: Error): AsyncGenerator<Buffer> {
    let sent = 0
    for (const chunk of artifactChunks(spec)) {
      if (sent >= failAfter) throw error
      sent += chunk.length
      yield chunk
    }
  }

  const cases: { name: string; source: (error: Error) => AsyncIterable<Uint8Array> | Readable }[] = [
    { name: 'a compressible async generator', source: (e) => failing({ version: 1, size: 16 * MiB, kind: 'text' }, 4 * MiB, e) },
    { name: 'an incompressible async generator', source: (e) => failing({ version: 2, size: 16 * MiB, kind: 'random' }, 4 * MiB, e) },
    {
      name: 'a Readable that is destroyed with an error',
      source: (e) => {
        const chunks = artifactChunks({ version: 3, size: 16 * MiB, kind: 'mixed' })
        let sent = 0
        return new Readable({
          read() {
            if (sent >= 4 * MiB) {
              this.destroy(e)
              return
            }
            const next = chunks.next()
            if (next.done) this.push(null)
            else {
              sent += next.value.length
              this.push(next.value)
            }
          },
        })
      },
    },
  ]

  for (const c of cases) {
    test(`setStream from ${c.name} failing midway rejects with that error and leaves no entry and no temp file`, async () => {
      const dir = await freshDir('fail')
      const cache = await Larder.open({ dir })
      try {
        const boom = new Error('source exploded at 4 MiB')
        await assert.rejects(cache.setStream('failed', c.source(boom)), (error) => error === boom)
        assert.equal(await cache.getStream('failed'), undefined)
        assert.equal(await cache.get('failed'), undefined)
        assert.ok(!existsSync(await entryFile(dir, 'failed')), 'an entry file exists')
        const scan = scanEntries(dir)
        assert.deepEqual(scan, { entries: [], temps: [], other: [] })
        const s = await cache.stats()
        assert.equal(s.errors, 0, 'a failing source is not a disk error')
        assert.equal(s.dropped, 0)
        assert.equal(s.sets, 0)
        assert.equal(s.breaker.state, 'closed')
      } finally {
        await cache.close()
      }
    })
  }

  test('a failing source leaves the previous value of the key intact', async () => {
    const dir = await freshDir('fail-keep')
    const cache = await Larder.open({ dir })
    try {
      const previous: ArtifactSpec = { version: 40, size: 2 * MiB + 5, kind: 'mixed' }
      await cache.setStream('kept', artifactSource(previous))
      const boom = new Error('second write fails')
      await assert.rejects(
        cache.setStream('kept', failing({ version: 41, size: 8 * MiB, kind: 'mixed' }, 3 * MiB, boom)),
        (error) => error === boom,
      )
      assert.deepEqual(await digestStream((await cache.getStream('kept'))!), artifactDigest(previous))
      assert.deepEqual(scanEntries(dir).temps, [])
    } finally {
      await cache.close()
    }
  })

  test("an async iterable whose next() answers without a promise is read as for await reads it; one that answers null is refused as the source's fault, not a failing disk", async () => {
    const dir = await freshDir('iterator')
    const cache = await Larder.open({ dir })
    try {
      const answers = (steps: unknown[]): AsyncIterable<Uint8Array> => ({
        [Symbol.asyncIterator]: () => ({ next: () => steps.shift() as Promise<IteratorResult<Uint8Array>> }),
      })
      await cache.setStream(
        'at-once',
        answers([{ done: false, value: Buffer.from('at ') }, { done: false, value: Buffer.from('once') }, { done: true }]),
      )
      assert.deepEqual(await cache.get('at-once'), Buffer.from('at once'))
      await cache.set('kept', 'previous')
      await assert.rejects(cache.setStream('kept', answers([Promise.resolve(null)])), { code: 'ERR_INVALID_VALUE', field: 'source' })
      assert.equal(await cache.get('kept'), 'previous')
      const s = await cache.stats()
      assert.equal(s.errors, 0, 'a bad source is not a disk error')
      assert.equal(s.dropped, 0)
    } finally {
      await cache.close()
    }
  })

  test('a Readable that fails before its turn (a missing file, behind a stream of its key) rejects with its error, never thrown into the host', async () => {
    const dir = await freshDir('fail-early')
    const cache = await Larder.open({ dir })
    try {
      await cache.set('kept', 'previous')
      const missing = path.join(dir, 'no-such-file')
      await assert.rejects(cache.setStream('kept', createReadStream(missing)), { code: 'ENOENT' })
      // Queued behind a slow stream of the same key, the file's open fails long before its turn.
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      const first = cache.setStream(
        'queued',
        (async function* () {
          yield Buffer.from('first')
          await held
        })(),
      )
      const second = cache.setStream('queued', createReadStream(missing))
      const failed = assert.rejects(second, { code: 'ENOENT' })
      await new Promise((resolve) => setTimeout(resolve, 100)) // the open has failed by now
      release()
      await first
      await failed
      assert.equal(await cache.get('kept'), 'previous')
      assert.deepEqual(await cache.get('queued'), Buffer.from('first'))
      const s = await cache.stats()
      assert.equal(s.errors, 0, 'a failing source is not a disk error')
    } finally {
      await cache.close()
    }
  })
})

/** Flips one bit of the byte at `at` of `file`, in place. */
function flipBit(file: string, at: number): void {
  const fd = openSync(file, 'r+')
  const byte = Buffer.alloc(1)
  readSync(fd, byte, 0, 1, at)
  byte[0] = byte[0]! ^ 0x10
  writeSync(fd, byte, 0, 1, at)
  closeSync(fd)
}

describe('a damaged streamed entry', () => {
  for (const kind of ['random', 'mixed'] as const) {
    const stored = kind === 'random' ? 'stored raw' : 'stored compressed'
    test(`a byte flipped in the middle of a large entry (${stored}) makes the stream error with ERR_CORRUPT instead of ending, counts it and removes the file`, async () => {
      const dir = await freshDir(`flip-${kind}`)
      const spec: ArtifactSpec = { version: 50, size: 8 * MiB, kind }
      const writer = await Larder.open({ dir })
      await writer.setStream('damaged', artifactSource(spec))
      await writer.close()

      const file = await entryFile(dir, 'damaged')
      const size = statSync(file).size
      assert.ok(size > 64 * KiB, 'large enough to be streamed from the file')
      flipBit(file, Math.floor(size / 2))

      const cache = await Larder.open({ dir })
      try {
        const corruptEvents: { key: string | undefined; reason: string }[] = []
        cache.on('corrupt', (info) => corruptEvents.push({ key: info.key, reason: info.reason }))
        const stream = await cache.getStream('damaged')
        assert.ok(stream !== undefined, 'the damage is in the payload, so the entry opens as a hit')
        const outcome = await new Promise<{ ended: boolean; error?: unknown; bytes: number }>((resolve) => {
          let bytes = 0
          stream.on('data', (chunk: Buffer) => {
            bytes += chunk.length
          })
          stream.on('end', () => resolve({ ended: true, bytes }))
          stream.on('error', (error) => resolve({ ended: false, error, bytes }))
        })
        assert.equal(outcome.ended, false, `the stream ended normally after ${outcome.bytes} bytes`)
        assert.ok(outcome.error instanceof LarderError, `not a LarderError: ${String(outcome.error)}`)
        assert.equal(outcome.error.code, 'ERR_CORRUPT')
        assert.equal(stream.readableEnded, false)

        const s = await cache.stats()
        assert.equal(s.corrupt, 1)
        assert.equal(corruptEvents.length, 1)
        assert.equal(corruptEvents[0]!.key, 'damaged')
        assert.ok(!existsSync(file), 'the damaged file is still there')
        assert.equal(await cache.getStream('damaged'), undefined, 'a later read misses')
        assert.equal((await cache.stats()).corrupt, 1, 'counted once')
      } finally {
        await cache.close()
      }
    })
  }
})

describe('getStream with verifyFirst', () => {
  for (const kind of ['random', 'mixed'] as const) {
    test(`a damaged large entry (${kind}) is a miss with no byte handed out, counted and removed; an intact one streams whole`, async () => {
      const dir = await freshDir(`verify-first-${kind}`)
      const spec: ArtifactSpec = { version: 51, size: 8 * MiB, kind }
      const writer = await Larder.open({ dir })
      await writer.setStream('intact', artifactSource(spec))
      await writer.setStream('damaged', artifactSource(spec))
      await writer.close()
      const file = await entryFile(dir, 'damaged')
      flipBit(file, Math.floor(statSync(file).size / 10)) // early: a plain stream hands the bytes before it out

      const cache = await Larder.open({ dir })
      try {
        assert.equal(await cache.getStream('damaged', { verifyFirst: true }), undefined)
        assert.equal((await cache.stats()).corrupt, 1)
        assert.ok(!existsSync(file), 'the damaged file was removed')
        const stream = await cache.getStream('intact', { verifyFirst: true })
        const chunks: Buffer[] = []
        for await (const chunk of stream!) chunks.push(chunk as Buffer)
        assert.equal(Buffer.concat(chunks).length, 8 * MiB)
        await assert.rejects(
          cache.getStream('intact', { verifyFirst: 1 as unknown as boolean }),
          (e: LarderError) => e.field === 'verifyFirst',
        )
      } finally {
        await cache.close()
      }
    })
  }
})

describe('a damaged compressed stream that ends early', () => {
  test('a flipped bit that makes the compressed payload end early still errors with ERR_CORRUPT instead of ending with a truncated value', async () => {
    // zlib packs the incompressible chunks of a mixed artifact into stored deflate blocks:
    // LEN (uint16 LE) and its complement NLEN, preceded by the block header bits, BFINAL
    // among them. Setting BFINAL on one makes the inflater finish at the end of that block,
    // with the rest of the payload (and the checksum) not yet read. The stream must still
    // not end normally: the checksum over the whole file has not been verified.
    const dir = await freshDir('early-end')
    const spec: ArtifactSpec = { version: 70, size: 2 * MiB, kind: 'mixed' }
    const writer = await Larder.open({ dir })
    await writer.setStream('early', artifactSource(spec))
    await writer.close()
    const file = await entryFile(dir, 'early')
    const original = readFileSync(file)
    assert.notEqual(original[6], 0, 'the entry is compressed')
    const payloadOffset = headerBytes(original) + original.readUInt32LE(24) + original.readUInt32LE(28)
    const payloadEnd = original.length - 32
    const lengthFields: number[] = []
    for (let i = payloadOffset + 1; i < payloadEnd - 4 && lengthFields.length < 4; i++) {
      const len = original.readUInt16LE(i)
      if (len >= 1024 && original.readUInt16LE(i + 2) === (~len & 0xffff)) lengthFields.push(i)
    }
    assert.ok(lengthFields.length > 0, 'no stored deflate block found')

    const endedNormally: string[] = []
    let flips = 0
    for (const at of lengthFields) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Buffer.from(original)
        damaged[at - 1] = damaged[at - 1]! ^ (1 << bit)
        writeFileSync(file, damaged)
        flips++
        const cache = await Larder.open({ dir })
        try {
          const stream = await cache.getStream('early')
          if (stream === undefined) continue // a miss is an acceptable answer to damage
          const outcome = await new Promise<{ ended: boolean; error?: unknown; bytes: number }>((resolve) => {
            let bytes = 0
            stream.on('data', (chunk: Buffer) => {
              bytes += chunk.length
            })
            stream.on('end', () => resolve({ ended: true, bytes }))
            stream.on('error', (error) => resolve({ ended: false, error, bytes }))
          })
          const s = await cache.stats()
          if (outcome.ended) {
            endedNormally.push(
              `byte ${at - 1} bit ${bit}: 'end' after ${outcome.bytes} of ${spec.size} bytes; stats.corrupt ${s.corrupt}; file ${existsSync(file) ? 'kept' : 'removed'}`,
            )
          } else {
            assert.equal((outcome.error as LarderError).code, 'ERR_CORRUPT', `byte ${at - 1} bit ${bit}: ${String(outcome.error)}`)
            assert.equal(s.corrupt, 1)
            assert.ok(!existsSync(file))
          }
        } finally {
          await cache.close()
        }
      }
    }
    assert.deepEqual(endedNormally, [], `${endedNormally.length} of ${flips} single-bit flips let a damaged stream end normally`)
  })
})

describe('get() of a streamed entry', () => {
  const specs: { label: string; spec: ArtifactSpec }[] = [
    { label: 'a small (1 KiB)', spec: { version: 60, size: KiB, kind: 'text' } },
    { label: 'a compressible (1 MiB)', spec: { version: 61, size: MiB, kind: 'mixed' } },
    { label: 'an incompressible (3 MiB)', spec: { version: 62, size: 3 * MiB + 1, kind: 'random' } },
  ]
  for (const { label, spec } of specs) {
    test(`get() of ${label} streamed entry returns its bytes as a Buffer`, async () => {
      const dir = await freshDir('get')
      const cache = await Larder.open({ dir })
      try {
        await cache.setStream('streamed', artifactSource(spec))
        const fresh = await Larder.open({ dir })
        try {
          const value = await fresh.get('streamed')
          assert.ok(Buffer.isBuffer(value), `got ${Object.prototype.toString.call(value)}`)
          assert.equal(value.length, spec.size)
          assert.ok(value.equals(artifactBytes(spec)), 'bytes differ')
        } finally {
          await fresh.close()
        }
      } finally {
        await cache.close()
      }
    })
  }
})

/** The fixed header's bytes: 32 in format v1, 64 in v2 (format/entry-format.ts). */
function headerBytes(bytes: Buffer): number {
  return bytes[4] === 1 ? 32 : 64
}
