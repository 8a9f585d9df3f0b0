import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import { isLarderError, Larder } from '../../src/index.ts'

// Issue 11, second pass: getStream reads an entry file of up to 2 MiB + 64 KiB (a 1 MiB or
// 2 MiB artifact) whole, in one read, and verifies it before it hands out a stream at all; a
// larger one is still streamed, its last MiB withheld until the checksum passed.

const MiB = 1024 * 1024
const dirs: string[] = []
after(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-speed-2-'))
  dirs.push(dir)
  return dir
}

/** The one entry file under `dir`. */
function entryFile(dir: string): string {
  const files = fs.readdirSync(dir, { recursive: true, withFileTypes: true })
  const entries = files.filter((f) => f.isFile() && /^[0-9a-f]{16}$/.test(f.name))
  assert.equal(entries.length, 1)
  return path.join(entries[0]!.parentPath, entries[0]!.name)
}

/** Flips a byte `fromEnd` bytes before the end of the entry's payload (the trailer is 32 bytes). */
function damageNearEnd(dir: string, fromEnd: number): void {
  const file = entryFile(dir)
  const fd = fs.openSync(file, 'r+')
  const at = fs.fstatSync(fd).size - 32 - fromEnd
  const byte = Buffer.alloc(1)
  fs.readSync(fd, byte, 0, 1, at)
  byte[0]! ^= 0xff
  fs.writeSync(fd, byte, 0, 1, at)
  fs.closeSync(fd)
}

async function drain(stream: NodeJS.ReadableStream): Promise<{ bytes: Buffer; error?: unknown }> {
  const parts: Buffer[] = []
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) parts.push(chunk)
    return { bytes: Buffer.concat(parts) }
  } catch (error) {
    return { bytes: Buffer.concat(parts), error }
  }
}

for (const size of [100 * 1024, MiB, 2 * MiB]) {
  test(`a stream entry of ${size} bytes comes back whole and exact from getStream`, async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, compression: 'none', maintenance: false })
    const value = randomBytes(size)
    await cache.setStream('k', [value.subarray(0, 1000), value.subarray(1000)])
    const stream = await cache.getStream('k')
    assert.ok(stream !== undefined)
    const { bytes, error } = await drain(stream)
    assert.equal(error, undefined)
    assert.ok(bytes.equals(value), 'the bytes written')
    await cache.close()
  })

  test(`a damaged stream entry of ${size} bytes is a miss for getStream before any byte: counted and removed`, async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, compression: 'none', maintenance: false })
    await cache.setStream('k', [randomBytes(size)])
    damageNearEnd(dir, 10)
    assert.equal(await cache.getStream('k'), undefined, 'verified whole before a stream is handed out')
    assert.equal((await cache.stats()).corrupt, 1)
    assert.equal(fs.readdirSync(dir, { recursive: true }).filter((f) => /[0-9a-f]{16}$/.test(String(f))).length, 0, 'removed')
    await cache.close()
  })
}

test('a damaged stream entry just over the whole-read size is streamed: its last MiB is withheld, then ERR_CORRUPT', async () => {
  const dir = tempDir()
  const cache = await Larder.open({ dir, compression: 'none', maintenance: false })
  const value = randomBytes(2 * MiB + 65 * 1024)
  await cache.setStream('k', [value])
  damageNearEnd(dir, 10)
  const stream = await cache.getStream('k')
  assert.ok(stream !== undefined, 'opened: the damage is found as it is read')
  const { bytes, error } = await drain(stream)
  assert.ok(isLarderError(error, 'ERR_CORRUPT'), `failed with ERR_CORRUPT (${String(error)})`)
  assert.ok(bytes.length <= value.length - MiB, `${bytes.length} of ${value.length} bytes handed out`)
  assert.ok(bytes.equals(value.subarray(0, bytes.length)), 'what was handed out is what was written')
  assert.equal((await cache.stats()).corrupt, 1)
  await cache.close()
})
