import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ServerContext } from '../context.js'
import { allowedNamespace } from '../namespace-access.js'
import { artifactHash, teamName } from '../validation.js'
import { artifactExists, refuseUpload, sendArtifact, storeArtifact, uploadLength } from './artifact-replies.js'

/**
 * Nx's self-hosted remote cache (nx ≥ 20.8, `NX_SELF_HOSTED_REMOTE_CACHE_SERVER`):
 *
 *   GET /v1/cache/:hash   200 the artifact, 404 a miss
 *   PUT /v1/cache/:hash   exactly 200 once stored; 409 if the hash exists (entries are
 *                         immutable, so a poisoned upload cannot replace a good one); 403 for
 *                         a read-only token
 *
 * nx is strict: any other status fails the whole run, so this front end degrades on purpose
 * (statusForNx): a disk failure reads as a miss (404), and an upload the disk could not take
 * answers 403, which nx skips silently. A body cut short fails the run too, so a download is
 * checked whole before its first byte is sent (a damaged entry is a miss). A 401 is `text/plain` exactly (nx shows the body only then).
 *
 * nx has no team: the server URL may carry one as a path prefix
 * (`NX_SELF_HOSTED_REMOTE_CACHE_SERVER=http://host:4000/nx/<team>`), a namespace of its own
 * (`nx:<team>`); without it, the namespace is `nx`.
 */
function namespaceOf(ctx: ServerContext, request: FastifyRequest): string {
  const team = (request.params as { team?: string }).team
  return allowedNamespace(ctx, request, team === undefined ? 'nx' : `nx:${teamName(team, 'team')}`)
}

/**
 * The status nx is told for `status`: nx fails its whole run on any answer but 200 and 404 to a
 * read, and 200, 403 and 409 to an upload. What the server will not or cannot do for it (a
 * disk failure, an artifact over a size limit, the rate limit, too many teams) is a miss or a
 * skipped upload; only a refused token (401), or one that may not open the namespace (403),
 * is passed on, so a misconfigured run says so.
 */
export function statusForNx(method: string, status: number): number {
  if (status === 401 || status === 403) return status
  if (method === 'PUT') return status === 200 || status === 403 || status === 409 ? status : 403
  return status === 200 || status === 404 ? status : 404
}

function text(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).header('content-type', 'text/plain').send(message)
}

/** How long an upload waits behind others of its hash, in idle timeouts: an upload ahead that
 *  trickles at the 1 KiB/s floor may take hours, and nx's task would hang as long. */
const WAIT_IDLE_TIMEOUTS = 10

/**
 * Takes `slot` for this upload once the uploads ahead of it (of the same hash) have ended, and
 * returns its release; undefined if they took longer than `bound` ms (0: no bound). The slot
 * is taken with no await between the last look and the take: a third upload arriving
 * meanwhile finds it taken and waits in turn. While it waits the socket sends and takes
 * nothing, so Node's idle timer (the server's `connectionTimeout`) is off meanwhile: it cut
 * the waiting upload with no answer, which fails nx's task.
 */
async function takeSlot(
  uploads: Map<string, Promise<void>>,
  slot: string,
  socket: Socket,
  bound: number,
): Promise<(() => void) | undefined> {
  if (uploads.has(slot)) {
    const idle = socket.timeout ?? 0
    socket.setTimeout(0)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>((resolve) => {
      if (bound > 0) timer = setTimeout(resolve, bound, false)
    })
    try {
      for (let current = uploads.get(slot); current !== undefined; current = uploads.get(slot))
        if ((await Promise.race([current, late])) === false) return undefined
    } finally {
      clearTimeout(timer)
      socket.setTimeout(idle)
    }
  }
  let ended!: () => void
  uploads.set(slot, new Promise<void>((resolve) => (ended = resolve)))
  return () => {
    uploads.delete(slot)
    ended()
  }
}

export function nxUploads(app: FastifyInstance, ctx: ServerContext): void {
  /** Hashes being uploaded now, each with the end of its upload. */
  const uploading = new Map<string, Promise<void>>()
  const upload = async (request: FastifyRequest, reply: FastifyReply) => {
    const hash = artifactHash((request.params as { hash: string }).hash)
    const namespace = namespaceOf(ctx, request)
    uploadLength(ctx, request, ctx.namespaces.resolvedOptionsOf(namespace, 'nx')) // a refused upload opens (creates) no team
    const cache = await ctx.namespaces.get(namespace, 'nx', reply.raw)
    // A second upload of a hash waits for the one in flight (bounded: an upload that stalls
    // past the idle timeout fails, and past WAIT_IDLE_TIMEOUTS the wait is skipped) and then
    // looks at the disk: a 409 if that one stored it, else it stores its own. Answering 409 at
    // once, as before, left nothing stored when the first then failed (a client gone
    // mid-upload, a full disk).
    const release = await takeSlot(uploading, `${namespace}\0${hash}`, request.raw.socket, ctx.options.idleTimeout * WAIT_IDLE_TIMEOUTS)
    if (release === undefined) {
      ctx.metrics.refused('nx')
      return text(refuseUpload(reply), 403, `Upload skipped: another upload of ${hash} is still in flight`)
    }
    try {
      if (await artifactExists(cache, hash)) {
        ctx.metrics.refused('nx')
        return text(refuseUpload(reply), 409, `Cannot override an existing record: ${hash} is already cached`)
      }
      const outcome = await storeArtifact(ctx, request, 'nx', cache, hash, {})
      if (outcome.stored) return text(reply, 200, '')
      return text(refuseUpload(reply), statusForNx('PUT', outcome.error.statusCode), outcome.error.message)
    } finally {
      release()
    }
  }
  const config = { access: 'write' as const, protocol: 'nx' as const, namespaced: true }
  app.put('/v1/cache/:hash', { config }, upload)
  app.put('/nx/:team/v1/cache/:hash', { config }, upload)
}

export function nxRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const download = async (request: FastifyRequest, reply: FastifyReply) => {
    const hash = artifactHash((request.params as { hash: string }).hash)
    const cache = await ctx.namespaces.forReading(namespaceOf(ctx, request), 'nx', reply.raw)
    if (cache === undefined) ctx.metrics.miss('nx')
    const meta = cache === undefined ? undefined : await sendArtifact(ctx, reply, 'nx', cache, hash, 'verified body')
    if (meta === undefined) return text(reply, 404, `No artifact ${hash}`)
    return reply
  }
  const config = { access: 'read' as const, protocol: 'nx' as const, namespaced: true }
  app.get('/v1/cache/:hash', { config, exposeHeadRoute: false }, download)
  app.get('/nx/:team/v1/cache/:hash', { config, exposeHeadRoute: false }, download)
}
