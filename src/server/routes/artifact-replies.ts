import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { isLarderError, type Larder } from '../../index.js'
import { declaredLength, getArtifact, putArtifact, type ArtifactMeta, type ArtifactRead } from '../artifact-store.js'
import type { ResolvedOptions } from '../../options.js'
import type { ServerContext } from '../context.js'
import { HttpError } from '../http-error.js'
import type { Protocol } from '../namespaces.js'

/**
 * The steps every artifact protocol shares (turbo, nx, ccache, Bazel): a download streamed
 * from `getStream` with its `Content-Length`, a HEAD that answers with the metadata (of an
 * entry checked whole first: artifact-store.ts), an upload streamed into `setStream`. Each
 * protocol wraps them with its own paths, namespaces and answers (turbo's JSON errors, nx's
 * exact statuses).
 *
 * A disk failure on a read is answered as a miss (and counted): a build tool then rebuilds,
 * which is what a cache that cannot read should cause.
 */

/** Sends the artifact (200) and returns its metadata, or returns undefined on a miss, having
 *  sent nothing. `headers` adds protocol headers from the metadata. */
export async function sendArtifact(
  ctx: ServerContext,
  reply: FastifyReply,
  protocol: Protocol,
  cache: Larder,
  key: string,
  read: ArtifactRead,
  headers?: (meta: ArtifactMeta) => Record<string, string>,
): Promise<ArtifactMeta | undefined> {
  const headOnly = read === 'head'
  let found
  try {
    found = await getArtifact(cache, key, read)
  } catch (error) {
    readFailed(ctx, protocol, error)
    found = undefined
  }
  // A HEAD asks whether the artifact is there (ccache's before each upload, after the GET that
  // missed): neither a hit nor a miss, as no artifact is read out.
  if (found === undefined) {
    if (!headOnly) ctx.metrics.miss(protocol)
    return undefined
  }
  const { meta, body } = found
  if (!headOnly) countWhenSent(ctx, protocol, body)
  reply.code(200).header('content-type', 'application/octet-stream').header('content-length', meta.length)
  if (headers !== undefined) reply.headers(headers(meta))
  if (headOnly) {
    await reply.send()
    return meta
  }
  reply.raw.once('finish', () => ctx.metrics.sent(protocol, meta.length))
  // A pipelined response still queued behind another has no socket yet, and hears nothing
  // when its client hangs up: fastify never pipes the body, so it is destroyed here when the
  // connection closes (its entry's file closed at once, not by GC).
  const socket = reply.request.raw.socket
  const hungUp = (): void => void body.destroy()
  if (socket.destroyed) hungUp()
  else {
    socket.once('close', hungUp)
    reply.raw.once('close', () => socket.off('close', hungUp))
  }
  await reply.send(body)
  return meta
}

/**
 * Counts a download once its body is done: a hit if it went out whole (or its client left
 * before the end), a miss and a read error if the body failed. A large artifact's answer
 * begins before its entry's checksum (at its end) is checked: a damaged one is cut short,
 * which the client takes as a failure and rebuilds, so it is no hit.
 */
function countWhenSent(ctx: ServerContext, protocol: Protocol, body: Readable): void {
  let ended = false
  body.once('end', () => {
    ended = true
    ctx.metrics.hit(protocol, 'file')
  })
  body.once('close', () => {
    if (ended) return
    if (body.errored === null) return ctx.metrics.hit(protocol, 'file')
    ctx.metrics.miss(protocol)
    ctx.metrics.failed(protocol, false)
    ctx.log(`${protocol}: a download was cut short, counted as a miss: ${body.errored.message}`)
  })
}

export type StoreOutcome = { stored: true; length: number } | { stored: false; error: HttpError }

/**
 * Streams the request body into `key`. Resolves with what happened rather than throwing, so
 * each protocol answers in its own way; a body over the limit or without a length is refused
 * before a byte is read.
 */
export async function storeArtifact(
  ctx: ServerContext,
  request: FastifyRequest,
  protocol: Protocol,
  cache: Larder,
  key: string,
  meta: Omit<ArtifactMeta, 'length' | 'storedAt'>,
  sha256?: string,
): Promise<StoreOutcome> {
  try {
    // Checked again here (the route checked before opening the namespace): a reload may have
    // changed the budget meanwhile, and ccache's namespaces are not checked before.
    const length = uploadLength(ctx, request, cache.options)
    const limits = {
      length,
      maxBody: ctx.options.maxBody,
      rateWindowMs: ctx.options.idleTimeout,
      ...(sha256 === undefined ? {} : { sha256 }),
    }
    await putArtifact(cache, key, request.raw, limits, meta)
    ctx.metrics.stored(protocol, length)
    return { stored: true, length }
  } catch (error) {
    if (error instanceof HttpError) return { stored: false, error }
    if (isLarderError(error, 'ERR_UNAVAILABLE') || isLarderError(error, 'ERR_CLOSED')) {
      ctx.metrics.failed(protocol, true)
      ctx.log(`${protocol}: an upload was not stored: ${error.message}`)
      return {
        stored: false,
        error: new HttpError(
          503,
          error.code,
          'The cache could not store this upload (its disk is failing or the server is stopping); nothing was stored',
        ),
      }
    }
    if (request.raw.destroyed || request.raw.readableAborted) {
      return { stored: false, error: new HttpError(400, 'ERR_BODY_LENGTH', 'The client went away mid-upload; nothing was stored') }
    }
    throw error
  }
}

/**
 * The declared length of an upload, refused (411, 413) before a byte is read: none, over
 * --max-body, or over what the namespace's budget keeps. Stored, an artifact over the budget
 * would be the first entry the next prune evicts (maintenance/policy.ts: anything larger than
 * the prune's target by itself goes first), so it is refused rather than written and thrown
 * away. A route checks it before opening its namespace (`options`: those it would open
 * with, `Namespaces.resolvedOptionsOf`), so an upload refused for its length opens (creates)
 * no team.
 */
export function uploadLength(ctx: ServerContext, request: FastifyRequest, options: Readonly<ResolvedOptions>): number {
  const length = declaredLength(request.raw, ctx.options.maxBody)
  const keeps = budgetKeeps(options)
  if (length > keeps) {
    throw new HttpError(
      413,
      'ERR_BODY_TOO_LARGE',
      `Artifact too large for this cache: its budget keeps at most ${keeps} bytes (--max-size)`,
    )
  }
  return length
}

/** More than an artifact's entry file holds besides the artifact (its head with turbo's tag,
 *  the entry's head and key, the frames' headers, the trailer). */
const ENTRY_BYTES_BESIDES_ARTIFACT = 64 * 1024

/** The largest upload the namespace's budget would keep: what a prune brings it down to (the
 *  budget times maintenance's `lowWater`), or no limit without a budget. Read per upload:
 *  a reload may change the budget. */
function budgetKeeps(options: Readonly<ResolvedOptions>): number {
  const { maxSize, maintenance } = options
  if (maxSize === undefined) return Infinity
  // The prune compares entry files: an artifact's carries its head, key and trailer too.
  return Math.max(0, Math.floor(maxSize * maintenance.lowWater) - ENTRY_BYTES_BESIDES_ARTIFACT)
}

export function readFailed(ctx: ServerContext, protocol: Protocol, error: unknown): void {
  ctx.metrics.failed(protocol, false)
  ctx.log(`${protocol}: read answered as a miss: ${(error as Error).message ?? String(error)}`)
}

/** Whether a key holds an artifact, without counting a hit or a miss. */
export async function artifactExists(cache: Larder, key: string): Promise<boolean> {
  try {
    return await cache.has(key)
  } catch {
    return false
  }
}

/** An early error answer to an upload whose body was not read: the connection closes after
 *  it, so the unread body is never taken for the next request. */
export function refuseUpload(reply: FastifyReply): FastifyReply {
  return reply.header('connection', 'close')
}
