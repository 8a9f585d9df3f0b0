/**
 * Helpers shared by the test files and the child processes they spawn: deterministic
 * content generators, self-checking record values, and an independent check of the entry
 * file format (so a test can tell a torn file from a whole one without trusting larder).
 */
import { createCipheriv, createHash } from 'node:crypto'
import { existsSync, readdirSync, statSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import xxhash from 'xxhash-wasm'

export const KiB = 1024
export const MiB = 1024 * 1024

/** The repository root (two levels up from this file), whichever clone it is in. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

/** Absolute path of a script in test/children/. */
export function childScript(name: string): string {
  return fileURLToPath(new URL(`./${name}`, import.meta.url))
}

/**
 * Node's arguments that run a TypeScript script of the tests: its build in .test-build/ when the
 * test command compiled one (`LARDER_TEST_BUILD`, scripts/build-tests.mjs) and it is there,
 * else the source through tsx. A child through tsx costs ~0.75 s more CPU to start, and the
 * suite starts hundreds.
 */
export function runScript(file: string): string[] {
  const build = process.env.LARDER_TEST_BUILD
  if (build !== undefined && build !== '' && file.endsWith('.ts')) {
    const compiled = path.join(build, path.relative(repoRoot, file)).replace(/\.ts$/, '.js')
    if (existsSync(compiled)) return ['--enable-source-maps', compiled] // stacks name the .ts lines, as under tsx
  }
  return ['--import', 'tsx', file]
}

// ── deterministic pseudo-random numbers ──────────────────────────────────────

/** mulberry32: a tiny seeded PRNG, so every "random" choice can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function randInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1))
}

// ── artifacts: large deterministic byte streams ──────────────────────────────

export interface ArtifactSpec {
  /** Which version: every byte depends on it. */
  version: number
  /** Total length in bytes. */
  size: number
  /** Chunk length; the last chunk may be shorter. */
  chunk?: number
  /** 'mixed': even chunks compressible text, odd chunks keystream (the first chunk is
   *  compressible, so larder's probe chooses compression). 'random': all keystream. */
  kind?: 'mixed' | 'random' | 'text'
}

/**
 * The chunks of an artifact, generated on the fly (nothing retained). Incompressible parts
 * are an AES-128-CTR keystream keyed by the version: fast, deterministic, and as random
 * as compressed data looks.
 */
export function* artifactChunks(spec: ArtifactSpec): Generator<Buffer> {
  const chunk = spec.chunk ?? 256 * KiB
  const kind = spec.kind ?? 'mixed'
  const key = createHash('sha256').update(`artifact-v${spec.version}`).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(chunk)
  let produced = 0
  for (let i = 0; produced < spec.size; i++) {
    const n = Math.min(chunk, spec.size - produced)
    let out: Buffer
    if (kind === 'random' || (kind === 'mixed' && i % 2 === 1)) {
      out = cipher.update(zeros.subarray(0, n))
    } else {
      const line = Buffer.from(
        `artifact version ${spec.version} chunk ${i} -- the quick brown fox jumps over the lazy dog ${(i * 7919) % 1000}\n`,
      )
      out = Buffer.allocUnsafe(n)
      for (let o = 0; o < n; o += line.length) line.copy(out, o, 0, Math.min(line.length, n - o))
    }
    produced += n
    yield out
  }
}

/** The artifact as an async iterable, the shape `setStream` takes. */
// eslint-disable-next-line @typescript-eslint/require-await -- an async iterable on purpose (the shape setStream takes); nothing to await
export async function* artifactSource(spec: ArtifactSpec): AsyncGenerator<Buffer> {
  for (const c of artifactChunks(spec)) yield c
}

/** sha256 (hex) and length of a whole artifact, computed without holding it. */
export function artifactDigest(spec: ArtifactSpec): { sha256: string; length: number } {
  const hash = createHash('sha256')
  let length = 0
  for (const c of artifactChunks(spec)) {
    hash.update(c)
    length += c.length
  }
  return { sha256: hash.digest('hex'), length }
}

/** sha256 (hex) and length of everything a stream yields. Rejects if the stream errors. */
export async function digestStream(stream: AsyncIterable<Uint8Array>): Promise<{ sha256: string; length: number }> {
  const hash = createHash('sha256')
  let length = 0
  for await (const c of stream) {
    hash.update(c)
    length += c.length
  }
  return { sha256: hash.digest('hex'), length }
}

// ── records: small values that carry their own checksum ──────────────────────

export interface RecordValue {
  key: string
  writer: number
  seq: number
  pad: string
  sha: string
}

function recordSha(r: Omit<RecordValue, 'sha'>): string {
  return createHash('sha256')
    .update(JSON.stringify([r.key, r.writer, r.seq, r.pad]))
    .digest('hex')
}

/** A value that names its key, its writer and sequence number, and checksums all three. */
export function makeRecord(key: string, writer: number, seq: number, padLength: number): RecordValue {
  const unit = `${writer}.${seq}|`
  const pad = unit.repeat(Math.ceil(padLength / unit.length)).slice(0, padLength)
  const body = { key, writer, seq, pad }
  return { ...body, sha: recordSha(body) }
}

/** Why `value` is not a valid record for `key`, or undefined when it is one. Accepts the
 *  record's JSON as a Buffer/string too (what getStream and a streamed entry give back). */
export function recordProblem(key: string, value: unknown): string | undefined {
  let v = value
  if (v instanceof Uint8Array) v = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8')
  if (typeof v === 'string') {
    const text = v
    try {
      v = JSON.parse(text)
    } catch {
      return `not JSON: ${JSON.stringify(text.slice(0, 80))}`
    }
  }
  if (v === null || typeof v !== 'object') return `not an object: ${typeof v}`
  const r = v as Partial<RecordValue>
  if (r.key !== key) return `key mismatch: asked ${key}, value is for ${String(r.key)}`
  if (typeof r.writer !== 'number' || typeof r.seq !== 'number' || typeof r.pad !== 'string' || typeof r.sha !== 'string')
    return 'missing fields'
  if (recordSha(r as RecordValue) !== r.sha) return `checksum mismatch (writer ${r.writer} seq ${r.seq})`
  return undefined
}

// ── the on-disk layout and format, checked independently ─────────────────────

export const ENTRY_NAME = /^[0-9a-f]{16}$/
/** A temp file: `<hash>.<pid>-<n>.tmp` (every write), or `<hash>.<digits>` left by versions that used write-file-atomic. */
export const TEMP_NAME = /^[0-9a-f]{16}\.(\d+|\d+-\d+\.tmp)$/

export interface DirScan {
  entries: string[]
  temps: string[]
  other: string[]
}

/** Files in the partition directories of the default namespace (tags excluded). */
export function scanEntries(dir: string, namespace = 'default'): DirScan {
  const root = path.join(dir, 'v1', namespace)
  const scan: DirScan = { entries: [], temps: [], other: [] }
  let partitions: string[]
  try {
    partitions = readdirSync(root)
  } catch {
    return scan
  }
  for (const p of partitions) {
    if (p === 'tags' || p === 'meta') continue
    const full = path.join(root, p)
    if (!/^[0-9a-f]{2}$/.test(p) || !statSync(full).isDirectory()) {
      scan.other.push(full)
      continue
    }
    for (const name of readdirSync(full)) {
      const file = path.join(full, name)
      if (ENTRY_NAME.test(name)) scan.entries.push(file)
      else if (TEMP_NAME.test(name)) scan.temps.push(file)
      else scan.other.push(file)
    }
  }
  return scan
}

let hasher: Awaited<ReturnType<typeof xxhash>> | undefined

/** xxhash64 of a key as 16 hex digits: the entry's file name. */
export async function entryName(key: string): Promise<string> {
  hasher ??= await xxhash()
  return hasher.h64ToString(key)
}

/**
 * Whether a file is a whole, valid v1 entry: magic, trailer magic, stored length consistent
 * with the file size, and the xxhash64 over every byte but the last 8 equal to those 8.
 * Returns the stored key when valid, or a reason string prefixed with "INVALID: ".
 */
export async function verifyEntryFile(file: string): Promise<string> {
  hasher ??= await xxhash()
  const bytes = readFileSync(file)
  if (bytes.length < 64) return `INVALID: ${bytes.length} bytes`
  if (bytes.readUInt32LE(0) !== 0x5244524c) return 'INVALID: bad magic'
  if (bytes.readUInt32LE(bytes.length - 16) !== 0x4544524c) return 'INVALID: bad trailer magic'
  const keyLength = bytes.readUInt32LE(24)
  const tagsLength = bytes.readUInt32LE(28)
  const stored = Number(bytes.readBigUInt64LE(bytes.length - 32))
  const header = bytes[4] === 1 ? 32 : 64 // format v1 or v2
  if (header + keyLength + tagsLength + stored + 32 !== bytes.length) return 'INVALID: lengths do not add up to the file size'
  const hash = hasher.create64(0n)
  hash.update(bytes.subarray(0, bytes.length - 8))
  if (hash.digest() !== bytes.readBigUInt64LE(bytes.length - 8)) return 'INVALID: checksum mismatch'
  return bytes.toString('utf8', header, header + keyLength)
}

// ── blobs: incompressible byte values that carry their own checksum ──────────

/**
 * `<64 hex: sha256 of the rest><JSON {key, writer, seq}>\n<keystream bytes>`: a Buffer value
 * that names its key and checksums itself, and does not compress.
 */
export function makeBlob(key: string, writer: number, seq: number, size: number): Buffer {
  const header = Buffer.from(JSON.stringify({ key, writer, seq }) + '\n')
  const body = Buffer.concat([
    header,
    ...artifactChunks({ version: writer * 1_000_000 + seq, size: Math.max(0, size - header.length - 64), kind: 'random', chunk: 64 * KiB }),
  ])
  return Buffer.concat([Buffer.from(createHash('sha256').update(body).digest('hex')), body])
}

/** Why `value` is not a valid blob for `key`, or undefined when it is one. */
export function blobProblem(key: string, value: unknown): string | undefined {
  if (!Buffer.isBuffer(value)) return `not a Buffer: ${typeof value}`
  if (value.length < 65) return `too short: ${value.length} bytes`
  const body = value.subarray(64)
  if (createHash('sha256').update(body).digest('hex') !== value.toString('latin1', 0, 64)) return 'checksum mismatch'
  const header = JSON.parse(body.toString('utf8', 0, body.indexOf(10))) as { key: string }
  if (header.key !== key) return `key mismatch: asked ${key}, value is for ${header.key}`
  return undefined
}

/** A record or a blob: why `value` is not a valid value for `key`, or undefined. */
export function valueProblem(key: string, value: unknown): string | undefined {
  return Buffer.isBuffer(value) ? blobProblem(key, value) : recordProblem(key, value)
}

/** Why `v` is not a valid value for `key`: a record (an object, or its JSON as bytes, which is
 *  what getStream of a set() value or get of a streamed one gives) or a blob. */
export function problemOf(key: string, v: unknown): string | undefined {
  return Buffer.isBuffer(v) && v[0] === 0x7b ? recordProblem(key, v) : valueProblem(key, v)
}

/** Everything a stream yields, as one Buffer. */
export async function drain(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of stream) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}
