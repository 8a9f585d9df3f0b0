// Deterministic test data for the benchmark. Everything is derived from a seeded PRNG so
// every run, and every implementation, stores the same bytes.

/** xorshift32: fast, seeded, good enough to make incompressible bytes and varied text. */
export function prng(seed) {
  let s = seed >>> 0 || 0x9e3779b9
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s
  }
}

/** `length` bytes that no compressor can shrink. */
export function randomBytes(length, seed) {
  const next = prng(seed)
  const words = new Uint32Array(Math.ceil(length / 4))
  for (let i = 0; i < words.length; i++) words[i] = next()
  return Buffer.from(words.buffer, 0, length)
}

const FIRST = ['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret', 'Dennis', 'Frances', 'Edsger', 'Radia', 'Donald', 'Hedy']
const LAST = [
  'Lovelace',
  'Hopper',
  'Torvalds',
  'Liskov',
  'Thompson',
  'Hamilton',
  'Ritchie',
  'Allen',
  'Dijkstra',
  'Perlman',
  'Knuth',
  'Lamarr',
]
const DOMAINS = ['example.com', 'mail.test', 'corp.example', 'users.invalid']

/** The key of the i-th small entry: shaped like an ORM query cache key. */
export function smallKey(i) {
  return `orm:users:list:tenant=${i % 97}:page=${i}`
}

/**
 * The i-th ~1 KiB value: what an ORM query returns, 8 row objects
 * { id, name, email, createdAt, active, score }. About 1,000–1,100 bytes of JSON.
 */
export function smallValue(i) {
  const next = prng(i * 2654435761 + 1)
  const rows = []
  for (let r = 0; r < 8; r++) {
    const id = i * 8 + r
    const first = FIRST[next() % FIRST.length]
    const last = LAST[next() % LAST.length]
    rows.push({
      id,
      name: `${first} ${last}`,
      email: `${first.toLowerCase()}.${last.toLowerCase()}${id}@${DOMAINS[next() % DOMAINS.length]}`,
      createdAt: new Date(1_600_000_000_000 + (next() % 100_000_000) * 1000).toISOString(),
      active: (next() & 1) === 1,
      score: Math.round((next() / 0xffffffff) * 1e6) / 100,
    })
  }
  return rows
}

const WORDS = (
  'the cache entry file is written to a temporary name and renamed into place so readers never see ' +
  'a partial write while the checksum covers every byte of header payload and trailer function return ' +
  'const let await async import export class interface module build artifact dependency resolve ' +
  'webpack babel typescript compile bundle chunk source map hash digest manifest lockfile package ' +
  'version semver registry tarball install node modules directory partition inode rename atomic'
).split(' ')

/** Text that compresses like prose or source code (about 3–4× with fast DEFLATE). */
export function text(length, seed) {
  const next = prng(seed)
  const parts = []
  let size = 0
  while (size < length) {
    const lineWords = 4 + (next() % 10)
    let line = ''
    for (let w = 0; w < lineWords; w++) line += (w ? ' ' : '') + WORDS[next() % WORDS.length]
    if (next() % 5 === 0) line += ` ${next() % 100000};`
    line += '\n'
    parts.push(line)
    size += line.length
  }
  return parts.join('').slice(0, length)
}

/**
 * A pool of ~64 KiB values (semi-compressible: half prose-like text, half base64 of random
 * bytes). bigValue(i) shares one of the pool's strings but has its own id, so each key's
 * JSON differs. Serialized size is just under 64 KiB (so it is one "64 KiB" value).
 */
const BIG_POOL = 16
let bigPool
export function bigValue(i) {
  bigPool ??= Array.from({ length: BIG_POOL }, (_, p) => ({
    body: text(33_000, 1000 + p),
    attachment: randomBytes(22_500, 2000 + p).toString('base64'),
  }))
  const base = bigPool[i % BIG_POOL]
  return {
    id: i,
    kind: 'rendered-page',
    title: `Page ${i}`,
    updatedAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    body: base.body,
    attachment: base.attachment,
  }
}

export function bigKey(i) {
  return `render:page:${i}:locale=en`
}

/**
 * 1 MiB chunks of a tar-like artifact: 512-byte headers followed by "files" of 2–48 KiB,
 * two of every three source-like text, the third incompressible binary, so the whole
 * compresses to roughly 50 % with fast DEFLATE (level 1). `count` distinct
 * chunks are prepared; a stream cycles through them.
 */
export function artifactChunks(count = 16) {
  const CHUNK = 1 << 20
  const chunks = []
  for (let c = 0; c < count; c++) {
    const next = prng(31337 + c)
    const chunk = Buffer.alloc(CHUNK)
    let at = 0
    let n = 0
    while (at < CHUNK) {
      const header = Buffer.alloc(512)
      const size = 2048 + (next() % (46 * 1024))
      const binary = n % 3 === 2
      header.write(`pkg/src/file-${c}-${n}.${binary ? 'bin' : 'js'}`, 0)
      header.write(size.toString(8).padStart(11, '0'), 124)
      header.write('ustar', 257)
      at += header.copy(chunk, at)
      if (at >= CHUNK) break
      const body = binary ? randomBytes(size, next()) : Buffer.from(text(size, next()))
      at += body.copy(chunk, at)
      // tar pads each file to 512 bytes
      at = Math.min(CHUNK, Math.ceil(at / 512) * 512)
      n++
    }
    chunks.push(chunk)
  }
  return chunks
}

/**
 * 1 MiB chunks of an already-compressed artifact (a .tar.gz, a .zip, media): bytes no
 * compressor can shrink, so a cache that compresses pays for trying and gains nothing.
 */
export function compressedChunks(count = 16) {
  return Array.from({ length: count }, (_, c) => randomBytes(1 << 20, 0xc0ffee + c))
}

/** The chunks of artifact `kind`: 'tar' (about half compressible) or 'compressed'. */
export function artifactOf(kind, count = 16) {
  if (kind === 'tar') return artifactChunks(count)
  if (kind === 'compressed') return compressedChunks(count)
  throw new Error(`unknown artifact kind ${kind}`)
}

/** Eight ORM-like rows (~1 KB as JSON): what the adapter benches cache as a query's result. */
export const ORM_ROWS = Array.from({ length: 8 }, (_, i) => ({
  id: i + 1,
  name: `user ${i + 1}`,
  email: `user${i + 1}@example.com`,
  createdAt: '2026-11-30T12:00:00.000Z',
  active: i % 2 === 0,
  score: i * 12.5,
}))
