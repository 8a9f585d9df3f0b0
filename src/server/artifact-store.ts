import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { Readable, Transform } from 'node:stream'
import type { Larder } from '../index.js'
import { HttpError } from './http-error.js'

/**
 * Build artifacts (turbo, nx, ccache, Bazel) as larder entries. The request body goes straight
 * from the socket into `setStream` (never held whole: a 100 MiB upload costs a few MiB), behind
 * a small head that records what the protocols must give back:
 *
 *   uint32 BE  n            length of the head's JSON
 *   n bytes    JSON         { length, duration?, tag?, storedAt }
 *   length     bytes        the artifact, as uploaded
 *
 * One entry holds both, so an artifact and its metadata are written, evicted and checksummed
 * together: a GET can never pair one upload's bytes with another's duration or signature tag.
 * The head also carries the body's length, so a download sends `Content-Length` before its
 * first byte without a second read.
 *
 * An upload is stored only if it arrives whole: its length must be the declared
 * `Content-Length` (required: every client sends it, and it lets a too-large body be refused
 * before a byte is read), and a client that disconnects mid-upload makes the source fail, so
 * `setStream` stores nothing and removes its temp file.
 */
export interface ArtifactMeta {
  /** Bytes of the artifact. */
  length: number
  /** turbo's `x-artifact-duration` (ms the task took), as sent. */
  duration?: string
  /** turbo's `x-artifact-tag` (its signature), opaque, as sent. */
  tag?: string
  storedAt: number
}

/** A head larger than this is not one we wrote. */
const MAX_HEAD = 16 * 1024

export interface UploadLimits {
  /** The declared Content-Length (required). */
  length: number
  /** The largest body accepted. */
  maxBody: number
  /** For content-addressed stores: the body's sha256 must be this (hex). */
  sha256?: string
  /** The window over which an upload must average MIN_UPLOAD_RATE (ms; the server's idle
   *  timeout); 0 or none: no check. */
  rateWindowMs?: number
}

/** The slowest an upload may arrive, in bytes a second averaged over each rate window. The idle
 *  timeout cuts a client that sends nothing; one that sends a byte now and then held its key
 *  for good (every later upload of the key waits behind it). At 1 KiB/s a 10 MiB artifact
 *  takes three hours. */
export const MIN_UPLOAD_RATE = 1024

/** The declared length of an upload, checked against the limit before anything is read. */
export function declaredLength(request: IncomingMessage, maxBody: number): number {
  const header = request.headers['content-length']
  if (header === undefined || !/^\d+$/.test(header)) {
    throw new HttpError(411, 'ERR_LENGTH_REQUIRED', 'Content-Length is required: uploads are streamed to disk and checked against it')
  }
  const length = Number(header)
  if (length > maxBody) throw tooLarge(maxBody)
  return length
}

export function tooLarge(maxBody: number): HttpError {
  return new HttpError(413, 'ERR_BODY_TOO_LARGE', `Request body too large: the limit is ${maxBody} bytes (--max-body)`)
}

/** Stores the request body under `key`, with its metadata; rejects (storing nothing) if the
 *  body is not exactly its declared length, fails its digest, or the client goes away. */
export async function putArtifact(
  cache: Larder,
  key: string,
  request: IncomingMessage,
  limits: UploadLimits,
  meta: Omit<ArtifactMeta, 'length' | 'storedAt'>,
): Promise<void> {
  const head = encodeHead({ ...meta, length: limits.length, storedAt: Date.now() })
  await cache.setStream(key, bodyWithHead(head, request, limits))
}

async function* bodyWithHead(head: Buffer, request: IncomingMessage, limits: UploadLimits): AsyncGenerator<Uint8Array> {
  yield head
  const hash = limits.sha256 === undefined ? undefined : createHash('sha256')
  const window = limits.rateWindowMs ?? 0
  let received = 0
  let windowStart = performance.now()
  let windowBytes = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    received += chunk.length
    if (received > limits.length) {
      throw new HttpError(400, 'ERR_BODY_LENGTH', `The body is longer than its Content-Length (${limits.length} bytes)`)
    }
    windowBytes += chunk.length
    const elapsed = performance.now() - windowStart
    if (window > 0 && elapsed >= window) {
      if (windowBytes < (MIN_UPLOAD_RATE * elapsed) / 1000) {
        throw new HttpError(
          408,
          'ERR_UPLOAD_TOO_SLOW',
          `The upload arrived slower than ${MIN_UPLOAD_RATE} bytes a second over ${Math.round(window / 1000)} s; nothing was stored`,
        )
      }
      windowStart = performance.now()
      windowBytes = 0
    }
    hash?.update(chunk)
    yield chunk
  }
  if (received !== limits.length) {
    // The request ended early: a client that went away, or a lying Content-Length.
    throw new HttpError(400, 'ERR_BODY_LENGTH', `The body ended after ${received} of its ${limits.length} bytes; nothing was stored`)
  }
  if (hash !== undefined && hash.digest('hex') !== limits.sha256) {
    throw new HttpError(400, 'ERR_DIGEST_MISMATCH', "The body's sha256 is not the hash in the path; nothing was stored")
  }
}

function encodeHead(meta: ArtifactMeta): Buffer {
  const json = Buffer.from(JSON.stringify(meta))
  const head = Buffer.allocUnsafe(4 + json.length)
  head.writeUInt32BE(json.length, 0)
  json.copy(head, 4)
  return head
}

export interface StoredArtifact {
  meta: ArtifactMeta
  /** The artifact's bytes: exactly `meta.length` of them, checked by larder as they flow
   *  (the stream errors instead of ending if the entry's checksum fails). */
  body: Readable
}

/**
 * What of an artifact a download reads: its head alone (HEAD), its body, or its body once the
 * whole entry has been checked (for a client that cannot take back a body cut short: nx). A
 * head alone is also checked whole first: the head of a large entry is read before the
 * checksum at its end, and a HEAD answers with it at once (a damaged length was reported as the
 * artifact's size, of an artifact a GET refuses). Checked, a damaged entry is a miss, removed
 * and counted corrupt by larder; the cost is a read of the file, no byte sent. `listed head` is
 * the head unchecked, for turbo's hash query (`turbo run --dry`): up to 1,000 artifacts a
 * query, where reading each through would make a dry run read the whole cache; it sends no
 * byte of an artifact, and the GET that would fetch a damaged one finds it.
 */
export type ArtifactRead = 'head' | 'listed head' | 'body' | 'verified body'

/** The artifact under `key`, or undefined on a miss. An entry that is not an artifact (written
 *  into the namespace by something else) reads as a miss. A head read releases the file once its
 *  metadata is read. */
export async function getArtifact(cache: Larder, key: string, read: ArtifactRead = 'body'): Promise<StoredArtifact | undefined> {
  const headOnly = read === 'head' || read === 'listed head'
  const stream = await cache.getStream(key, read === 'body' || read === 'listed head' ? undefined : { verifyFirst: true })
  if (stream === undefined) return undefined
  let meta: ArtifactMeta | undefined
  try {
    meta = await readHead(stream)
  } catch {
    meta = undefined // damaged (larder removed and counted a corrupt entry) or failing: a miss
  }
  if (meta === undefined || headOnly) {
    stream.destroy()
    return meta === undefined ? undefined : { meta, body: Readable.from([]) }
  }
  // The head was read off the front; what is left in the stream is the body itself, sent as
  // it is. getStream hands out an entry's last bytes only after its checksum passed, and
  // errors instead of ending when it fails: a damaged entry's response is cut short of its
  // Content-Length (the client sees an error), never complete with a wrong byte in it.
  // A verified body's head was checked with it; otherwise the head's length is not yet.
  return { meta, body: read === 'verified body' ? stream : ofLength(stream, meta.length) }
}

/**
 * `source` held to the `length` its head claims. The head of a large entry is read before the
 * entry's checksum is checked (at its end), and `length` becomes the answer's Content-Length:
 * a damaged digit that made it shorter ended the answer early, as if whole (curl: exit 0 with
 * a third of the artifact). So the chunk that reaches `length` goes out only once the source
 * ended there, checked; a body that runs past it, or ends short of it, is an error (the answer
 * cut short), and the source is read on to its end without sending, so that larder checks
 * its checksum and removes the damaged entry (the next request is a miss).
 */
function ofLength(source: Readable, length: number): Readable {
  let seen = 0
  let last: Buffer | undefined
  let draining = false
  const damaged = (): Error => new Error(`the artifact is not the ${length} bytes its head says: its entry is damaged`)
  const out = new Transform({
    transform(chunk: Buffer, _encoding, next) {
      seen += chunk.length
      if (seen > length) return next(damaged())
      if (seen === length) last = chunk
      next(null, seen === length ? undefined : chunk)
    },
    flush(done) {
      done(seen === length ? null : damaged(), last)
    },
  })
  source.on('error', (error) => {
    if (!draining) out.destroy(error)
  })
  out.on('error', () => {
    if (seen === 0 || source.destroyed || source.readableEnded) return
    draining = true
    source.unpipe(out)
    source.resume()
  })
  // The client gone (or the answer cut): the file is closed, unless it is being read to its end.
  out.on('close', () => {
    if (!draining) source.destroy()
  })
  source.pipe(out)
  return out
}

/** Reads exactly the head off the front of an entry's stream (paused-mode reads of the sizes
 *  needed, so the body stays in the stream); undefined if the entry is not an artifact. */
function readHead(stream: Readable): Promise<ArtifactMeta | undefined> {
  return new Promise((resolve, reject) => {
    let headLength: number | undefined
    const done = (result: ArtifactMeta | undefined, error?: Error): void => {
      stream.off('readable', onReadable)
      stream.off('end', onEnd)
      stream.off('error', onError)
      // Settled on the next tick: removing the 'readable' listener leaves the stream paused
      // until Node notices (itself on the next tick), and a pipe started before that would
      // never flow.
      process.nextTick(() => (error !== undefined ? reject(error) : resolve(result)))
    }
    const onReadable = (): void => {
      if (headLength === undefined) {
        const prefix = stream.read(4) as Buffer | null
        if (prefix === null) return
        if (prefix.length < 4) return done(undefined)
        headLength = prefix.readUInt32BE(0)
        // read(0) would never consume, and no head we write is under 2 bytes (`{}`)
        if (headLength < 2 || headLength > MAX_HEAD) return done(undefined)
      }
      const json = stream.read(headLength) as Buffer | null
      if (json === null) return
      if (json.length < headLength) return done(undefined)
      let meta: ArtifactMeta
      try {
        meta = JSON.parse(json.toString('utf8')) as ArtifactMeta
      } catch {
        return done(undefined)
      }
      if (!Number.isSafeInteger(meta.length) || meta.length < 0) return done(undefined)
      done(meta)
    }
    const onEnd = (): void => done(undefined)
    const onError = (error: Error): void => done(undefined, error)
    stream.on('readable', onReadable)
    stream.once('end', onEnd)
    stream.once('error', onError)
  })
}
