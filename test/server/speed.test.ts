/**
 * The download path of `larder serve` made cheaper (issue 11), and the guarantee kept while
 * doing so. Speed itself is measured in bench/serve.mjs, not here: these tests pin down what
 * a damaged entry hands out before its checksum fails (nothing of its last MiB).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import { test } from 'node:test'
import { Larder, isLarderError } from '../../src/index.ts'
import { entryFiles, tempDir } from '../helpers.ts'
import { startServer } from './helpers.ts'

const MiB = 1024 * 1024

/** 64 KiB chunks, as a socket delivers an upload. */
function* socketChunks(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += 64 * 1024) yield bytes.subarray(at, at + 64 * 1024)
}

/** Flips one byte of the single entry file of `dir`, `fromEnd` bytes before its trailer. */
function damageNearEnd(dir: string, fromEnd: number): void {
  const [file] = entryFiles(dir)
  assert.ok(file !== undefined, 'one entry file')
  const bytes = fs.readFileSync(file)
  const at = bytes.length - 32 - fromEnd // the trailer is the last 32 bytes
  bytes[at] = bytes[at]! ^ 0xff
  fs.writeFileSync(file, bytes)
}

/** What a consumer receives from `stream` before it ends or fails. */
async function drain(stream: NodeJS.ReadableStream): Promise<{ received: number; error?: unknown }> {
  let received = 0
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) received += chunk.length
    return { received }
  } catch (error) {
    return { received, error }
  }
}

for (const compression of ['none', 'gzip'] as const) {
  // Uncompressed (artifacts), the last read holds at least the last MiB; framed, the last frame.
  const withheld = compression === 'none' ? MiB : 12_345
  test(`a streamed entry (compression ${compression}) whose checksum fails never hands out its last ${withheld} bytes, then fails with ERR_CORRUPT and is removed`, async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir, compression })
    const value = randomBytes(3 * MiB + 12_345) // random: stored in raw frames with gzip
    await cache.setStream('k', socketChunks(value))
    damageNearEnd(dir, 100)
    const stream = await cache.getStream('k')
    assert.ok(stream !== undefined, 'the entry opens: the damage is found as it is read')
    const { received, error } = await drain(stream)
    assert.ok(isLarderError(error, 'ERR_CORRUPT'), `failed with ERR_CORRUPT (${String(error)})`)
    assert.ok(received <= value.length - withheld, `${received} of ${value.length} bytes handed out`)
    assert.equal(await cache.getStream('k'), undefined, 'removed')
    assert.equal((await cache.stats()).corrupt, 1)
    await cache.close()
  })
}

test('a damaged 1 MiB artifact sends no byte of its body: the answer is cut short at once, then the artifact is a miss', async () => {
  const { url, dir } = await startServer()
  const hash = 'c0ffee0000000001'
  const body = randomBytes(MiB)
  const put = await fetch(`${url}/v8/artifacts/${hash}?slug=team`, {
    method: 'PUT',
    body,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
  })
  assert.equal(put.status, 202)
  damageNearEnd(dir, 10)
  const answer = await new Promise<{ status: number; received: number; complete: boolean }>((resolve, reject) => {
    http
      .get(`${url}/v8/artifacts/${hash}?slug=team`, (response) => {
        let received = 0
        response.on('data', (chunk: Buffer) => (received += chunk.length))
        response.on('end', () => resolve({ status: response.statusCode!, received, complete: response.complete }))
        response.on('error', () => resolve({ status: response.statusCode!, received, complete: false }))
        response.on('aborted', () => resolve({ status: response.statusCode!, received, complete: false }))
      })
      .on('error', reject)
  })
  if (answer.status === 200) {
    assert.equal(answer.complete, false, 'the body never completes')
    assert.equal(answer.received, 0, 'no byte of the damaged body went out')
  } else assert.ok(answer.status === 404 || answer.status >= 500, `answered ${answer.status}`)
  assert.equal((await fetch(`${url}/v8/artifacts/${hash}?slug=team`)).status, 404, 'the damaged entry was removed')
})
