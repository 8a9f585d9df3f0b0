/**
 * Entry files built by hand, byte by byte, without any of larder's code: what an attacker who
 * can write the cache directory (or a damaged disk) can plant. The layout is the v1 format as
 * documented in the README ("On disk"); the checksum is xxhash64 (seed 0) from xxhash-wasm,
 * so a forged file passes every integrity check and only larder's bounds stand in its way.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs'
import path from 'node:path'
import xxhash from 'xxhash-wasm'

const MAGIC = 0x5244524c // "LRDR"
const TRAILER_MAGIC = 0x4544524c // "LRDE"
export const CODEC = { bytes: 0, json: 2, stream: 6 } as const
export const COMPRESSION = { none: 0, gzip: 1, deflate: 2, brotli: 3, zstd: 4 } as const
export const FLAG_FRAMED = 1

let hasher: Awaited<ReturnType<typeof xxhash>> | undefined

export async function loadHasher(): Promise<void> {
  hasher ??= await xxhash()
}

function h(): Awaited<ReturnType<typeof xxhash>> {
  if (hasher === undefined) throw new Error('call loadHasher() first')
  return hasher
}

export interface ForgedHead {
  key: string
  codec?: number
  compression?: number
  flags?: number
  createdAt?: number
  expiresAt?: number
  tags?: readonly string[]
}

/** The 32-byte header, key and tags. */
export function forgeHead(meta: ForgedHead): Buffer {
  const key = Buffer.from(meta.key)
  const tags = Buffer.from((meta.tags ?? []).map((t) => t + '\0').join(''))
  const head = Buffer.alloc(32 + key.length + tags.length)
  head.writeUInt32LE(MAGIC, 0)
  head[4] = 1
  head[5] = meta.codec ?? CODEC.bytes
  head[6] = meta.compression ?? COMPRESSION.none
  head[7] = meta.flags ?? 0
  head.writeDoubleLE(meta.createdAt ?? Date.now(), 8)
  head.writeDoubleLE(meta.expiresAt ?? 0, 16)
  head.writeUInt32LE(key.length, 24)
  head.writeUInt32LE(tags.length, 28)
  key.copy(head, 32)
  tags.copy(head, 32 + key.length)
  return head
}

/** The 24 trailer bytes before the checksum: stored length, claimed logical length, magic. */
function trailerFields(stored: number, logical: number): Buffer {
  const t = Buffer.alloc(24)
  t.writeBigUInt64LE(BigInt(stored), 0)
  t.writeBigUInt64LE(BigInt(logical), 8)
  t.writeUInt32LE(TRAILER_MAGIC, 16)
  return t
}

/** A whole entry file in memory, with a valid checksum and whatever logical length it claims. */
export function forgeEntry(meta: ForgedHead, payload: Buffer, claimedLogical: number): Buffer {
  const head = forgeHead(meta)
  const body = Buffer.concat([head, payload, trailerFields(payload.length, claimedLogical)])
  const sum = Buffer.alloc(8)
  sum.writeBigUInt64LE(h().h64Raw(body, 0n))
  return Buffer.concat([body, sum])
}

/** One frame of a framed payload: rawLength (bit 31 = compressed) · storedLength · bytes. */
export function forgeFrame(rawLength: number, stored: Buffer, compressed: boolean): Buffer {
  const header = Buffer.alloc(8)
  header.writeUInt32LE((rawLength | (compressed ? 0x8000_0000 : 0)) >>> 0, 0)
  header.writeUInt32LE(stored.length, 4)
  return Buffer.concat([header, stored])
}

/** The path of `key`'s entry in the default namespace of `dir`. */
export function entryPathOf(dir: string, key: string, namespaceDir = 'default'): string {
  const name = h().h64ToString(key)
  return path.join(dir, 'v1', namespaceDir, name.slice(0, 2), name)
}

/** Writes `bytes` as `key`'s entry file (creating its partition). Returns the path. */
export function plant(dir: string, key: string, bytes: Buffer): string {
  const file = entryPathOf(dir, key)
  mkdirSync(path.dirname(file), { recursive: true })
  const fd = openSync(file, 'w')
  try {
    writeSync(fd, bytes)
  } finally {
    closeSync(fd)
  }
  return file
}

/**
 * A plain (uncompressed, unframed) entry whose payload is `zeros` zero bytes, written as a
 * sparse file: the head at the start, the trailer at the end, nothing in between. The
 * checksum is computed over the zeros without holding them, so a multi-GiB valid entry costs
 * a second of hashing and no disk space.
 */
export function plantSparseZeros(dir: string, key: string, zeros: number, meta: Omit<ForgedHead, 'key'> = {}): string {
  const head = forgeHead({ ...meta, key, codec: meta.codec ?? CODEC.stream })
  const trailer = trailerFields(zeros, zeros)
  const hash = h().create64(0n)
  hash.update(head)
  const block = new Uint8Array(16 * 1024 * 1024)
  for (let left = zeros; left > 0; left -= block.length) hash.update(left >= block.length ? block : block.subarray(0, left))
  hash.update(trailer)
  const sum = Buffer.alloc(8)
  sum.writeBigUInt64LE(hash.digest())
  const file = entryPathOf(dir, key)
  mkdirSync(path.dirname(file), { recursive: true })
  const fd = openSync(file, 'w')
  try {
    writeSync(fd, head, 0, head.length, 0)
    ftruncateSync(fd, head.length + zeros + 32)
    writeSync(fd, Buffer.concat([trailer, sum]), 0, 32, head.length + zeros)
  } finally {
    closeSync(fd)
  }
  return file
}
