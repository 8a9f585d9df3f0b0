/** What the encryption tests share: keys, opening an encrypted cache, and editing entry files
 *  the way someone with write access to the directory could (re-checksummed). */
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import xxhash from 'xxhash-wasm'
import { Larder, type LarderOptions } from '../src/index.ts'

export const KEY_A = crypto.createHash('sha256').update('test key a').digest()
export const KEY_B = crypto.createHash('sha256').update('test key b').digest()
export const ONLY_A = { keys: { a: KEY_A }, activeKey: 'a' }
export const A_THEN_B = { keys: { a: KEY_A, b: KEY_B }, activeKey: 'b' }
export const ONLY_B = { keys: { b: KEY_B }, activeKey: 'b' }

const hasher = await xxhash()

/** The entry file's checksum made right again after an edit. */
export function rechecksum(bytes: Buffer): Buffer {
  bytes.writeBigUInt64LE(hasher.h64Raw(bytes.subarray(0, bytes.length - 8), 0n), bytes.length - 8)
  return bytes
}

/** Offsets in a v2 entry file (format/entry-format.ts). */
export function layout(bytes: Buffer): { payloadOffset: number; payloadEnd: number; nonceAt: number; keyIdAt: number } {
  assert.equal(bytes[4], 2, 'a v2 entry')
  return {
    payloadOffset: 64 + bytes.readUInt32LE(24) + bytes.readUInt32LE(28),
    payloadEnd: bytes.length - 32,
    nonceAt: 48,
    keyIdAt: 40,
  }
}

/** The corrupt events a cache emits, as `reason` or `reason:detail`. */
export function corruptEvents(cache: Larder): string[] {
  const events: string[] = []
  cache.on('corrupt', (info) => events.push(info.detail === undefined ? info.reason : `${info.reason}:${info.detail}`))
  return events
}

export async function open(dir: string, options: LarderOptions = {}): Promise<Larder> {
  return Larder.open({ dir, memory: false, maintenance: false, ...options })
}

/** Edits a file in place and re-checksums it. */
export function edit(file: string, change: (bytes: Buffer) => Buffer | void): void {
  const bytes = fs.readFileSync(file)
  fs.writeFileSync(file, rechecksum(change(bytes) ?? bytes))
}

/** Every chunk of a stream in one buffer. */
export async function readAll(stream: AsyncIterable<Buffer> | undefined): Promise<Buffer | undefined> {
  if (stream === undefined) return undefined
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}
