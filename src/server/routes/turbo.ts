import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { getArtifact } from '../artifact-store.js'
import type { ServerContext } from '../context.js'
import { allowedNamespace } from '../namespace-access.js'
import { badRequest, errorBody } from '../http-error.js'
import { artifactHash, teamName } from '../validation.js'
import { refuseUpload, sendArtifact, storeArtifact, uploadLength } from './artifact-replies.js'

/**
 * Turborepo's remote cache API, v8 (every turbo 2.x speaks it):
 *
 *   GET  /v8/artifacts/status        {"status":"enabled"}
 *   GET  /v8/artifacts/:hash         200 the artifact (+ x-artifact-duration, x-artifact-tag), 404 a miss
 *   HEAD /v8/artifacts/:hash         200 with the same headers, 404
 *   PUT  /v8/artifacts/:hash         202 {"urls":[…]}; an existing hash is overwritten (turbo
 *                                    re-uploads after a signature or corruption miss)
 *   POST /v8/artifacts               {"hashes":[…]} → { hash: {size, taskDurationMs, tag} | null }
 *   POST /v8/artifacts/events        turbo's hit/miss events: counted, 200
 *
 * Each team is a namespace (`turbo:<team>`), from the `slug` query (TURBO_TEAM) or else
 * `teamId` (TURBO_TEAMID); turbo always sends one. Errors are turbo's JSON
 * `{"error":{"code","message"}}`. A doubled leading slash (`TURBO_API` with a trailing
 * slash sends `//v8/…`) is routed like a single one (app.ts).
 */
const MAX_QUERY_HASHES = 1000

interface TeamQuery {
  slug?: string
  teamId?: string
}

/** The team's namespace the request names, if its token may use it. */
function namespaceOf(ctx: ServerContext, request: FastifyRequest): string {
  const query = request.query as TeamQuery
  if (query.slug !== undefined) return allowedNamespace(ctx, request, `turbo:${teamName(query.slug, 'slug')}`)
  if (query.teamId !== undefined) return allowedNamespace(ctx, request, `turbo:${teamName(query.teamId, 'teamId')}`)
  throw badRequest('ERR_MISSING_TEAM', 'Missing team: pass ?slug=<team> (TURBO_TEAM) or ?teamId=<id> (TURBO_TEAMID)')
}

function metaHeaders(meta: { duration?: string; tag?: string }): Record<string, string> {
  const headers: Record<string, string> = {}
  if (meta.duration !== undefined) headers['x-artifact-duration'] = meta.duration
  if (meta.tag !== undefined) headers['x-artifact-tag'] = meta.tag
  return headers
}

/** A header turbo sends as a plain string (a duration in ms, a base64 tag), bounded. */
function headerValue(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  if (typeof value !== 'string') return undefined
  if (value.length > 1024) throw badRequest('ERR_INVALID_HEADER', `Invalid ${name}: longer than 1024 characters`)
  return value
}

export function turboUploads(app: FastifyInstance, ctx: ServerContext): void {
  app.put('/v8/artifacts/:hash', { config: { access: 'write', protocol: 'turbo', namespaced: true } }, async (request, reply) => {
    const hash = artifactHash((request.params as { hash: string }).hash)
    const namespace = namespaceOf(ctx, request)
    // A refused upload (its length, its headers) opens (creates) no team.
    uploadLength(ctx, request, ctx.namespaces.resolvedOptionsOf(namespace, 'turbo'))
    const meta = { duration: headerValue(request, 'x-artifact-duration'), tag: headerValue(request, 'x-artifact-tag') }
    const cache = await ctx.namespaces.get(namespace, 'turbo', reply.raw)
    const outcome = await storeArtifact(ctx, request, 'turbo', cache, hash, stripUndefined(meta))
    if (!outcome.stored)
      return refuseUpload(reply).code(outcome.error.statusCode).send(errorBody(outcome.error.code, outcome.error.message))
    return reply.code(202).send({ urls: [hash] })
  })
}

export function turboRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const config = { access: 'read' as const, protocol: 'turbo' as const, namespaced: true }

  app.get('/v8/artifacts/status', { config }, () => Promise.resolve({ status: 'enabled' }))

  const download = (headOnly: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const hash = artifactHash((request.params as { hash: string }).hash)
    const cache = await ctx.namespaces.forReading(namespaceOf(ctx, request), 'turbo', reply.raw)
    if (cache === undefined && !headOnly) ctx.metrics.miss('turbo')
    const meta =
      cache === undefined ? undefined : await sendArtifact(ctx, reply, 'turbo', cache, hash, headOnly ? 'head' : 'body', metaHeaders)
    if (meta === undefined) return reply.code(404).send(errorBody('ERR_NOT_FOUND', `No artifact ${hash} for this team`))
    return reply
  }
  app.get('/v8/artifacts/:hash', { config, exposeHeadRoute: false }, download(false))
  app.head('/v8/artifacts/:hash', { config }, download(true))

  // Small JSON bodies (at most 1,000 hashes; turbo's few events): a read token must not make
  // the server parse 64 MiB.
  const small = { config, bodyLimit: 1024 * 1024 }
  app.post('/v8/artifacts', small, async (request, reply) => {
    const body = request.body as { hashes?: unknown } | undefined
    const hashes = body?.hashes
    if (!Array.isArray(hashes) || hashes.length > MAX_QUERY_HASHES) {
      throw badRequest('ERR_INVALID_BODY', `Invalid hashes: expected { "hashes": [...] } with at most ${MAX_QUERY_HASHES} hashes`)
    }
    const valid = hashes.map((h, i) => artifactHash(h, `hashes[${i}]`))
    const cache = await ctx.namespaces.forReading(namespaceOf(ctx, request), 'turbo', reply.raw)
    // No prototype: a hash named `__proto__` (valid hex-ish text) is an answer like any other.
    const answer = Object.create(null) as Record<string, { size: number; taskDurationMs: number; tag?: string } | null>
    for (const hash of valid) {
      const found = cache === undefined ? undefined : await getArtifact(cache, hash, 'listed head').catch(() => undefined)
      answer[hash] =
        found === undefined
          ? null
          : {
              size: found.meta.length,
              taskDurationMs: Number(found.meta.duration ?? 0) || 0,
              ...(found.meta.tag === undefined ? {} : { tag: found.meta.tag }),
            }
    }
    return answer
  })

  app.post('/v8/artifacts/events', small, async (request, reply) => {
    // The counters are the server's: a namespace token counts only under its own team (turbo
    // sends its team with every call).
    if (request.grant?.namespaces !== undefined) namespaceOf(ctx, request)
    const events = request.body
    if (Array.isArray(events)) {
      for (const e of events.slice(0, 10_000) as { source?: unknown; event?: unknown }[]) {
        if ((e?.source === 'LOCAL' || e?.source === 'REMOTE') && (e.event === 'HIT' || e.event === 'MISS'))
          ctx.metrics.turboEvent(e.source, e.event)
      }
    }
    return reply.code(200).send({})
  })
}

function stripUndefined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never
}
