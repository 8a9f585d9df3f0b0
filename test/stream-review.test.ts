/**
 * Streams and large entries at their edges (an adversarial review, 2026-12-05): the breaker's
 * `timeout` never answers a write that goes on, a damaged trailer or codec byte is a counted
 * corrupt miss (never a refusal thrown at the caller, never an uncounted miss left in place),
 * a source that refills one buffer is stored as it yielded it, and a clear() racing a stream
 * is not a failing disk.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder, type LarderError } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { entryFiles, listFiles, tempDir } from './helpers.ts'
import { eventually } from './eventually.ts'

/** The one entry file of a cache directory. */
function onlyEntry(dir: string): string {
  const files = entryFiles(dir)
  assert.equal(files.length, 1, `one entry file (${files.join(', ')})`)
  return files[0]!
}

test('breaker.timeout: a stream slower than it is stored, answered only once it is, and counts as no failure', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, breaker: { timeout: '50ms' } })
  const states: string[] = []
  cache.on('breaker', (state) => states.push(state))
  async function* slow(tag: string): AsyncGenerator<Buffer> {
    for (let i = 0; i < 4; i++) {
      await delay(40)
      yield Buffer.from(`${tag}:${i};`)
    }
  }
  for (let round = 0; round < 6; round++) await cache.setStream(`slow${round}`, slow(`r${round}`))
  assert.deepEqual(states, [], 'slow healthy writes never open the breaker')
  const stats = await cache.stats()
  assert.equal(stats.dropped, 0)
  assert.equal(stats.errors, 0)
  // A set called after the stream resolved is never overwritten by it afterwards.
  const streaming = cache.setStream('k', slow('OLD'))
  await streaming
  await cache.set('k', 'NEW')
  await delay(250)
  assert.equal(await cache.get('k'), 'NEW')
  const stream = await cache.getStream('slow5')
  assert.equal(Buffer.concat(await stream!.toArray()).toString(), 'r5:0;r5:1;r5:2;r5:3;')
  await cache.close()
})

test('a flipped bit in the trailer that claims a value over maxValueSize: get is a counted corrupt miss and the file goes, not ERR_TOO_LARGE', async () => {
  const dir = tempDir()
  const rows = Array.from({ length: 12_000 }, (_, i) => ({
    id: i,
    name: `user${i}`,
    email: `u${(i * 7919) % 100_003}@example.com`,
    score: Math.sin(i),
  }))
  const writer = await Larder.open({ dir, maintenance: false })
  await writer.set('rows', rows)
  await writer.close()
  const file = onlyEntry(dir)
  const bytes = fs.readFileSync(file)
  bytes[bytes.length - 24 + 3]! ^= 0x08 // the logical length's bits 24..31: +128 MiB
  fs.writeFileSync(file, bytes)
  const cache = await Larder.open({ dir, maintenance: false })
  const reports: string[] = []
  cache.on('corrupt', (report) => reports.push(report.reason))
  assert.equal(await cache.get('rows'), undefined)
  assert.equal((await cache.stats()).corrupt, 1)
  assert.equal(reports.length, 1)
  assert.equal(fs.existsSync(file), false, 'the damaged entry is removed')
  assert.equal(await cache.getOrSet('rows', () => 'reloaded'), 'reloaded')
  await cache.close()
})

test('an entry too large for get, undamaged, is still refused with ERR_TOO_LARGE and kept', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, maintenance: false, maxValueSize: '100KB', compression: 'none' })
  await cache.setStream('big', [randomBytes(300_000)])
  await assert.rejects(cache.get('big'), { code: 'ERR_TOO_LARGE' })
  assert.equal((await cache.stats()).corrupt, 0)
  assert.equal(entryFiles(dir).length, 1)
  await cache.close()
})

test("one flipped bit that makes a large plain entry claim zstd: never a whole stream; a counted corrupt miss, removed (zstd's own error on a Node with zstd is ERR_CORRUPT too)", async () => {
  const dir = tempDir()
  const writer = await Larder.open({ dir, maintenance: false, compression: 'none' })
  await writer.setStream('art', [randomBytes(3 << 20)])
  await writer.close()
  const file = onlyEntry(dir)
  const bytes = fs.readFileSync(file)
  assert.equal(bytes[6], 0, 'the compression byte says none')
  bytes[6] = 4 // zstd
  fs.writeFileSync(file, bytes)
  const cache = await Larder.open({ dir, maintenance: false, compression: 'none' })
  const stream = await cache.getStream('art')
  if (typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function') {
    // A Node with zstd starts inflating the stream: it fails as it goes, as a corrupt entry.
    assert.ok(stream !== undefined)
    await assert.rejects(stream.toArray(), { code: 'ERR_CORRUPT' })
  } else {
    assert.equal(stream, undefined)
  }
  await eventually(async () => (await cache.stats()).corrupt === 1, 'the damaged entry is counted')
  assert.equal(fs.existsSync(file), false)
  await cache.close()
})

for (const [label, options] of [
  ['deflate', {}],
  ['encrypted', { compression: 'none' as const, encryption: { keys: { k1: randomBytes(32).toString('base64') }, activeKey: 'k1' } }],
] as const) {
  test(`setStream (${label}): a source that refills one buffer between yields is stored as it yielded it`, async () => {
    const cache = await Larder.open({ dir: tempDir(), ...options })
    const buffer = Buffer.alloc(64 * 1024)
    const yielded: Buffer[] = []
    async function* refilling(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 40; i++) {
        buffer.fill(i % 251)
        yielded.push(Buffer.from(buffer))
        yield buffer
        await delay(0)
      }
    }
    await cache.setStream('k', refilling())
    const stream = await cache.getStream('k')
    assert.ok(Buffer.concat(await stream!.toArray()).equals(Buffer.concat(yielded)))
    await cache.close()
  })
}

test('a clear() by another instance while a stream flows: the stream is dropped, not a failing disk (failOpen false resolves too)', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, failOpen: false })
  const other = await Larder.open({ dir })
  await cache.set('kept', 1) // its partition exists before the stream starts
  let cleared = false
  async function* source(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 6; i++) {
      if (i === 3 && !cleared) {
        await other.clear()
        cleared = true
      }
      yield randomBytes(400_000)
    }
  }
  await cache.setStream('art', source())
  assert.equal(cleared, true)
  const stats = await cache.stats()
  assert.equal(stats.errors, 0, 'not counted as a disk error')
  assert.equal(stats.tiers?.file?.breaker?.failures ?? 0, 0)
  assert.deepEqual([stats.dropped, stats.tiers.file!.dropped], [1, 1], "a dropped write, the file tier's as the cache's")
  assert.equal(await cache.getStream('art'), undefined, 'nothing stored: the clear won')
  await other.close()
  await cache.close()
})

test('a clear() by another instance while a stream flows, its partition made again before the rename: still a dropped stream, not a failing disk', async () => {
  // The partition a stream's temp file went into was judged by its inode number, taken after
  // the temp's create. A clear (and another write making the partition again) landing between
  // the two, or ext4 handing the moved and deleted partition's number to the new one (it hands
  // a freed number out again at once), made the new partition pass for the temp's: the
  // rename's ENOENT was then a failing disk (an error event, a breaker failure, ERR_UNAVAILABLE
  // with failOpen false). Here the clear lands right after the temp's create.
  const dir = tempDir()
  const cache = await Larder.open({ dir, failOpen: false })
  const other = await Larder.open({ dir })
  await cache.set('kept', 1)
  const real = disk.open
  let cleared = false
  try {
    disk.open = async (...args: Parameters<typeof real>) => {
      const handle = await real(...args)
      if (!cleared && String(args[0]).endsWith('.tmp')) {
        cleared = true
        await other.clear() // the temp file goes with its partition
        await other.set('art', 'newer') // and the partition is made again
      }
      return handle
    }
    await cache.setStream('art', [randomBytes(400_000), randomBytes(400_000)])
  } finally {
    disk.open = real
  }
  assert.equal(cleared, true)
  const stats = await cache.stats()
  assert.equal(stats.errors, 0, 'not counted as a disk error')
  assert.equal(stats.tiers?.file?.breaker?.failures ?? 0, 0)
  assert.equal(stats.dropped, 1, 'counted as a dropped write: the clear won')
  assert.equal(await cache.get('art'), 'newer', 'the set made after the clear stays')
  await other.close()
  await cache.close()
})

test("streams count in stats().tiers.file as in the cache's totals: a setStream is a set, a getStream a hit or a miss, each timed in its latency", async () => {
  const cache = await Larder.open({ dir: tempDir(), maintenance: false })
  try {
    await cache.setStream('s', [Buffer.from('hello')])
    const stream = await cache.getStream('s')
    for await (const chunk of stream!) void chunk
    assert.equal(await cache.getStream('missing'), undefined)
    const { hits, misses, sets, latency, tiers } = await cache.stats()
    assert.deepEqual([hits, misses, sets], [1, 1, 1])
    assert.deepEqual([latency.get.count, latency.set.count], [2, 1])
    const file = tiers.file!
    assert.deepEqual([file.hits, file.misses, file.sets], [1, 1, 1], 'the file tier counted them too')
    assert.deepEqual([file.latency.get.count, file.latency.set.count], [2, 1], 'and timed them: they are its reads and writes')
  } finally {
    await cache.close()
  }
})

test('a disk read failing mid-stream (EIO, through the seam) fails the stream and is counted and heard as a failed read: failOpen false fails it with ERR_UNAVAILABLE', async () => {
  const seam = disk as unknown as { open: typeof fs.promises.open }
  const realOpen = seam.open
  try {
    for (const [label, options] of [
      ['plain', { compression: 'none' }],
      ['framed', {}],
    ] as const) {
      for (const failOpen of [true, false]) {
        const cache = await Larder.open({ dir: tempDir(), maintenance: false, failOpen, ...options })
        const heard: string[] = []
        cache.on('error', (error) => heard.push((error as LarderError).code))
        await cache.setStream('s', [randomBytes(6 * 1024 * 1024)])
        // Entry files opened from now on fail their fourth read: the head, the trailer, then
        // the payload (a read past what getStream reads before it hands the stream out).
        seam.open = async (...args: Parameters<typeof fs.promises.open>) => {
          const handle = await realOpen(...args)
          let reads = 0
          const read = handle.read.bind(handle) as (...a: unknown[]) => Promise<fs.promises.FileReadResult<Buffer>>
          return Object.assign(Object.create(handle) as fs.promises.FileHandle, {
            read: (...a: unknown[]) =>
              ++reads === 4 ? Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })) : read(...a),
          })
        }
        const stream = await cache.getStream('s')
        seam.open = realOpen
        await assert.rejects(
          (async () => {
            for await (const chunk of stream!) void chunk
          })(),
          { code: failOpen ? 'EIO' : 'ERR_UNAVAILABLE' },
          `${label}, failOpen ${failOpen}`,
        )
        const { errors, breaker } = await cache.stats()
        assert.deepEqual([errors, breaker.failures, heard], [1, 1, ['ERR_UNAVAILABLE']], `${label}, failOpen ${failOpen}`)
        await cache.close()
      }
    }
  } finally {
    seam.open = realOpen
  }
})

test('a stream handed out before close() and read after it meets a damaged entry: it fails with ERR_CORRUPT, and the closed cache writes nothing (the file is left for the next reader)', async () => {
  for (const compression of ['none', 'deflate'] as const) {
    const dir = tempDir()
    const cache = await Larder.open({ dir, compression, maintenance: false })
    await cache.setStream('s', [randomBytes(8 * 1024 * 1024)])
    const file = onlyEntry(dir)
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 100]! ^= 1 // in the payload's last MiB: met after the first bytes are handed out
    fs.writeFileSync(file, bytes)
    const stream = await cache.getStream('s')
    await cache.close()
    const files = (): string[] =>
      listFiles(dir).map((f) => {
        const stat = fs.statSync(path.join(dir, f))
        return `${f} ${stat.size} ${stat.mtimeMs}`
      })
    const before = files()
    await assert.rejects(stream!.toArray(), { code: 'ERR_CORRUPT' }, compression)
    assert.equal(fs.existsSync(file), true, `${compression}: the closed cache removed nothing`)
    await delay(600) // past the running totals' flush (250 ms), which a removal would schedule
    assert.deepEqual(files(), before, `${compression}: nothing in the directory changed after close()`)
    const next = await Larder.open({ dir, maintenance: false })
    assert.equal(await next.getStream('s', { verifyFirst: true }), undefined, 'the next reader finds it damaged')
    assert.equal((await next.stats()).corrupt, 1)
    assert.equal(fs.existsSync(file), false, 'and removes it')
    await next.close()
  }
})

test("a setStream the disk refuses before reading its source (EIO at the temp file's create, or the breaker open) lets the source go: a web ReadableStream cancelled and unlocked, an iterator's return() called, a Readable destroyed", async () => {
  const seam = disk as unknown as { open: typeof fs.promises.open }
  const realOpen = seam.open
  seam.open = async (...args: Parameters<typeof fs.promises.open>) => {
    if (String(args[0]).endsWith('.tmp')) throw Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' })
    return realOpen(...args)
  }
  /** The three kinds of source, each telling whether it was let go. */
  function sources(): [string, unknown, () => boolean][] {
    let cancelled = false
    let returned = false
    const web = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(new Uint8Array(10)),
      cancel: () => void (cancelled = true),
    })
    const iterable = {
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.resolve({ done: false, value: new Uint8Array(10) }),
        return: () => {
          returned = true
          return Promise.resolve({ done: true, value: undefined })
        },
      }),
    }
    const readable = new Readable({ read: () => readable.push(Buffer.alloc(10)) })
    return [
      ['a web ReadableStream', web, () => cancelled && !web.locked],
      ['an async iterable', iterable, () => returned],
      ['a Readable', readable, () => readable.destroyed],
    ]
  }
  try {
    const cache = await Larder.open({ dir: tempDir(), maintenance: false, breaker: { volumeThreshold: 100 } })
    for (const [what, source, letGo] of sources()) {
      await cache.setStream('s', source as Readable) // a counted drop (failOpen)
      assert.equal(letGo(), true, `EIO at the create: ${what} let go`)
    }
    assert.equal((await cache.stats()).dropped, 3)
    await cache.close()

    const opened = await Larder.open({ dir: tempDir(), maintenance: false, breaker: { volumeThreshold: 1 } })
    for (let i = 0; i < 20 && (await opened.stats()).breaker.state !== 'open'; i++) await opened.setStream('s', [Buffer.from('x')])
    assert.equal((await opened.stats()).breaker.state, 'open')
    const [, web, cancelled] = sources()[0]!
    await opened.setStream('s', web as ReadableStream<Uint8Array>)
    assert.equal(cancelled(), true, 'breaker open: the web ReadableStream cancelled, as a Readable is destroyed')
    await opened.close()
  } finally {
    seam.open = realOpen
  }
})

test('getStream({ verifyFirst: true }) reads an entry through before handing it out, untimed as streams are: breaker.timeout makes it no miss and no disk failure', async () => {
  // 1 ms: no read of 32 MiB through the checksum is that quick, so a timed check always lost.
  const cache = await Larder.open({
    dir: tempDir(),
    maintenance: false,
    compression: 'none',
    breaker: { timeout: '1ms', volumeThreshold: 1 },
  })
  try {
    const block = randomBytes(1024 * 1024)
    await cache.setStream(
      's',
      Array.from({ length: 32 }, () => block),
    )
    for (let i = 0; i < 4; i++) {
      const stream = await cache.getStream('s', { verifyFirst: true })
      assert.ok(stream !== undefined, `read ${i}: a stream, not a miss`)
      let length = 0
      for await (const chunk of stream as AsyncIterable<Buffer>) length += chunk.length
      assert.equal(length, 32 * 1024 * 1024)
    }
    const { errors, misses, breaker } = await cache.stats()
    assert.deepEqual(
      { errors, misses, state: breaker.state, failures: breaker.failures },
      { errors: 0, misses: 0, state: 'closed', failures: 0 },
    )
  } finally {
    await cache.close()
  }
})

test('stats().bytesRead counts what a getStream read: the whole file once it is consumed, a few MiB of a large entry whose consumer stopped at its first chunk', async () => {
  for (const compression of ['none', 'deflate'] as const) {
    const dir = tempDir()
    const cache = await Larder.open({ dir, compression, maintenance: false })
    try {
      await cache.setStream(
        's',
        Array.from({ length: 32 }, () => randomBytes(1024 * 1024)),
      )
      const size = fs.statSync(onlyEntry(dir)).size
      const read = async (): Promise<number> => (await cache.stats()).bytesRead
      let before = await read()
      const whole = await cache.getStream('s')
      for await (const chunk of whole!) void chunk
      assert.equal((await read()) - before, size, `${compression}: a stream read through counts the file once`)
      before = await read()
      const stopped = await cache.getStream('s')
      for await (const chunk of stopped!) {
        void chunk
        break // destroys the stream
      }
      await delay(100) // reads in flight when it was destroyed end
      const counted = (await read()) - before
      assert.ok(counted > 0 && counted < 12 * 1024 * 1024, `${compression}: ${counted} bytes counted of a ${size}-byte entry`)
    } finally {
      await cache.close()
    }
  }
})
