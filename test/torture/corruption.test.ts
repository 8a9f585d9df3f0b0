/**
 * Every kind of damage to every entry file: a flipped bit, a truncation, appended garbage,
 * entries swapped between names, a future format version, unknown flags and lying lengths (with
 * a checksum recomputed to match, so only the meaning is wrong), a directory, a symlink or an
 * empty file in an entry's place, foreign bytes. 100 % must be detected: each reads as a miss
 * (or, for a stream already flowing, ERR_CORRUPT), is counted once (stats().corrupt and the
 * 'corrupt' event), and is removed; nothing throws or hangs; verify() finds the same.
 * test/corruption.test.ts shows each kind once on one small entry; this does every file of
 * every size class (small, compressed, > 64 KiB, framed stream).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import xxhash from 'xxhash-wasm'
import { Larder, isLarderError } from '../../src/index.ts'
import { entryFiles, tempDir } from '../helpers.ts'
import { artifactSource, entryName, KiB, makeBlob, makeRecord, MiB, prng, randInt, valueProblem } from '../children/shared.ts'
import { record, scale, seedFor } from './scale.ts'

const PER_CLASS = scale(4, 30)
const hasher = await xxhash()

interface Planted {
  key: string
  kind: 'small' | 'compressed' | 'blob' | 'stream' | 'stream-small'
}

/** Fills a cache with PER_CLASS entries of each size class; returns them. */
async function populate(dir: string): Promise<Planted[]> {
  const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
  const planted: Planted[] = []
  for (let i = 0; i < PER_CLASS; i++) {
    await cache.set(`small-${i}`, makeRecord(`small-${i}`, 1, i, 800), { tags: ['t'], ttl: '1h' })
    await cache.set(`compressed-${i}`, makeRecord(`compressed-${i}`, 1, i, 30_000))
    await cache.set(`blob-${i}`, makeBlob(`blob-${i}`, 1, i, 100 * KiB))
    await cache.setStream(`stream-${i}`, artifactSource({ version: i, size: 2 * MiB + 777, kind: 'mixed' }))
    await cache.setStream(`stream-small-${i}`, [Buffer.from(JSON.stringify(makeRecord(`stream-small-${i}`, 1, i, 5000)))])
    planted.push(
      { key: `small-${i}`, kind: 'small' },
      { key: `compressed-${i}`, kind: 'compressed' },
      { key: `blob-${i}`, kind: 'blob' },
      { key: `stream-${i}`, kind: 'stream' },
      { key: `stream-small-${i}`, kind: 'stream-small' },
    )
  }
  await cache.close()
  return planted
}

/** Rewrites the checksum of an entry so that only the field we changed is wrong. */
function rechecksum(bytes: Buffer): Buffer {
  const h = hasher.create64(0n)
  h.update(bytes.subarray(0, bytes.length - 8))
  bytes.writeBigUInt64LE(h.digest(), bytes.length - 8)
  return bytes
}

type Damage = (file: string, rand: () => number, files: string[], index: number, originals: Buffer[]) => void

const damages: Record<string, Damage> = {
  'flipped bit': (file, rand) => {
    const bytes = fs.readFileSync(file)
    const at = randInt(rand, 0, bytes.length - 1)
    bytes[at]! ^= 1 << randInt(rand, 0, 7)
    fs.writeFileSync(file, bytes)
  },
  truncated: (file, rand) => fs.truncateSync(file, randInt(rand, 0, fs.statSync(file).size - 1)),
  'garbage appended': (file, rand) =>
    fs.appendFileSync(file, Buffer.from(Array.from({ length: randInt(rand, 1, 200) }, () => randInt(rand, 0, 255)))),
  // Each file takes the next one's bytes: every entry sits under another key's name.
  'swapped with another entry': (file, _rand, _files, i, originals) => fs.writeFileSync(file, originals[(i + 1) % originals.length]!),
  'future format version': (file, rand) => {
    const bytes = fs.readFileSync(file)
    bytes[4] = randInt(rand, 3, 255)
    fs.writeFileSync(file, rechecksum(bytes))
  },
  'unknown flag bits': (file, rand) => {
    const bytes = fs.readFileSync(file)
    bytes[7] = bytes[7]! | (1 << randInt(rand, 1, 7))
    fs.writeFileSync(file, rechecksum(bytes))
  },
  'lying length field': (file, rand) => {
    const bytes = fs.readFileSync(file)
    const which = randInt(rand, 0, 3)
    if (which === 0)
      bytes.writeUInt32LE(bytes.readUInt32LE(24) + randInt(rand, 1, 50), 24) // key length
    else if (which === 1)
      bytes.writeUInt32LE(0xffff_ffff, 28) // tags length
    else if (which === 2)
      bytes.writeBigUInt64LE(bytes.readBigUInt64LE(bytes.length - 32) + BigInt(randInt(rand, 1, 1e6)), bytes.length - 32) // stored length
    else bytes.writeBigUInt64LE(2n ** 62n, bytes.length - 32) // stored length, absurd
    fs.writeFileSync(file, rechecksum(bytes))
  },
  'directory in its place': (file) => {
    fs.rmSync(file)
    fs.mkdirSync(file)
    fs.writeFileSync(path.join(file, 'inside'), 'x')
  },
  'symlink in its place': (file, rand, files) => {
    fs.rmSync(file)
    // To another (valid-looking) entry, or outside the cache.
    fs.symlinkSync(rand() < 0.5 ? files[(files.indexOf(file) + 1) % files.length]! : '/etc/hostname', file)
  },
  'zero-length file': (file) => fs.writeFileSync(file, ''),
  'foreign bytes': (file, rand) => {
    const size = randInt(rand, 0, 100_000)
    fs.writeFileSync(file, Buffer.from(Array.from({ length: size }, () => randInt(rand, 0, 255))))
  },
}

/** Rejects if `promise` has not settled in `ms`: a hang fails the test instead of stalling it. */
async function settles<T>(promise: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of stream) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}

describe('every kind of damage to every entry file', () => {
  const totals = {
    kinds: 0,
    files: 0,
    detected: 0,
    verifyFiles: 0,
    verifyDetected: 0,
    failures: [] as string[],
    verifyFailures: [] as string[],
  }
  const seed = seedFor('corruption')

  for (const [name, damage] of Object.entries(damages)) {
    test(
      `${name}: each file reads as a miss or ERR_CORRUPT, is counted once and removed; verify() finds every one`,
      { timeout: 120_000 },
      async () => {
        const rand = prng(seed + name.length)
        // Through reads.
        const dir = tempDir('larder-torture-corrupt')
        const planted = await populate(dir)
        const files = entryFiles(dir).sort()
        assert.equal(files.length, planted.length)
        const originals = files.map((f) => fs.readFileSync(f))
        files.forEach((f, i) => damage(f, rand, files, i, originals))

        const cache = await Larder.open({ dir, maintenance: { interval: 0 } })
        const events: string[] = []
        cache.on('corrupt', (info) => events.push(info.file))
        const served: string[] = []
        const servedKeys = new Set<string>()
        for (const [i, { key, kind }] of planted.entries()) {
          const servedBefore = served.length
          // Streamed and large entries are read as streams half the time, small ones probed with has() a third.
          const how =
            kind === 'small' && i % 3 === 0 ? 'has' : (kind.startsWith('stream') || kind === 'blob') && i % 2 === 0 ? 'getStream' : 'get'
          try {
            if (how === 'has') {
              if (await settles(cache.has(key), `has ${key}`)) served.push(`has ${key}: true`)
            } else if (how === 'get') {
              const value = await settles(cache.get(key), `get ${key}`)
              if (value !== undefined) served.push(`get ${key}: ${valueProblem(key, value) ?? 'a value'}`)
            } else {
              const stream = await settles(cache.getStream(key), `getStream ${key}`)
              if (stream !== undefined)
                served.push(`getStream ${key}: ended with ${(await settles(drain(stream), `stream of ${key}`)).length} bytes`)
            }
          } catch (error) {
            if (!(how === 'getStream' && isLarderError(error, 'ERR_CORRUPT'))) served.push(`${how} ${key} threw ${(error as Error).stack}`)
          }
          if (served.length > servedBefore) servedKeys.add(key)
        }
        await new Promise((resolve) => setImmediate(resolve)) // removal after a stream error is asynchronous
        const stats = await cache.stats()
        // Each damaged file survived when it was not served, was reported by exactly one
        // 'corrupt' event, and is gone from disk.
        const keyOf = new Map<string, string>()
        for (const { key } of planted) keyOf.set(await entryName(key), key)
        const left = files.filter((f) => fs.lstatSync(f, { throwIfNoEntry: false }) !== undefined)
        const detected = files.filter(
          (f) => !servedKeys.has(keyOf.get(path.basename(f)) ?? '') && events.filter((e) => e === f).length === 1 && !left.includes(f),
        ).length
        totals.files += files.length
        totals.detected += detected
        totals.failures.push(...served.map((s) => `${name}: ${s}`), ...left.map((f) => `${name}: left in place: ${f}`))
        assert.deepEqual(served, [], `${name} (seed ${seed}): damaged entries were served or threw`)
        assert.equal(stats.corrupt, files.length, `${name}: stats().corrupt`)
        assert.equal(new Set(events).size, files.length, `${name}: one 'corrupt' event per file`)
        assert.equal(events.length, files.length, `${name}: no file counted twice`)
        assert.equal(stats.errors, 0, `${name}: damage is not a disk failure`)
        assert.deepEqual(left, [], `${name}: damaged files left in place`)
        // The keys are usable again.
        for (const { key } of planted.slice(0, 5)) {
          await cache.set(key, makeRecord(key, 2, 0, 10))
          assert.equal(valueProblem(key, await cache.get(key)), undefined)
        }
        await cache.close()

        // Through verify().
        const dir2 = tempDir('larder-torture-corrupt-verify')
        await populate(dir2)
        const files2 = entryFiles(dir2).sort()
        const originals2 = files2.map((f) => fs.readFileSync(f))
        files2.forEach((f, i) => damage(f, rand, files2, i, originals2))
        const checker = await Larder.open({ dir: dir2, maintenance: { interval: 0 } })
        const report = await settles(checker.verify(), 'verify')
        const left2 = files2.filter((f) => fs.lstatSync(f, { throwIfNoEntry: false }) !== undefined)
        totals.verifyFiles += files2.length
        totals.verifyDetected += Math.min(report.corrupt, files2.length - left2.length)
        if (report.corrupt < files2.length) totals.verifyFailures.push(`${name}: verify found ${report.corrupt} of ${files2.length}`)
        totals.verifyFailures.push(...left2.map((f) => `${name}: verify left ${f}`))
        assert.equal(
          report.corrupt,
          files2.length,
          `${name}: verify found ${report.corrupt} of ${files2.length}: ${JSON.stringify(report.problems.slice(0, 3))}`,
        )
        assert.equal(report.ok, 0)
        assert.equal(left2.length, 0, `${name}: verify left damaged files`)
        assert.equal((await checker.verify()).corrupt, 0, 'a second verify finds nothing')
        await checker.close()
        totals.kinds++
      },
    )
  }

  test('summary', (t) => {
    record(
      t,
      {
        area: 'corruption',
        what: `damaged entry files read back (${Object.keys(damages).length} kinds)`,
        tried: totals.files,
        unit: 'files',
        survived: totals.detected,
        note: `seed ${seed}; each not served, reported once, removed`,
      },
      totals.failures,
    )
    record(
      t,
      {
        area: 'corruption',
        what: 'damaged entry files found by verify()',
        tried: totals.verifyFiles,
        unit: 'files',
        survived: totals.verifyDetected,
      },
      totals.verifyFailures,
    )
    assert.equal(totals.kinds, Object.keys(damages).length, 'every kind of damage passed')
  })
})
