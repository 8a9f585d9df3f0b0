import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ServerContext } from '../context.js'
import { allowedNamespace } from '../namespace-access.js'
import { badRequest, errorBody } from '../http-error.js'
import type { Protocol } from '../namespaces.js'
import { objectPath } from '../validation.js'
import { readFailed, refuseUpload, sendArtifact, storeArtifact } from './artifact-replies.js'

/**
 * ccache's HTTP remote storage and the Bazel HTTP cache, one handler for both:
 *
 *   /ccache/<path>     ccache (`remote_storage = http://HOST:PORT/ccache`), any layout:
 *                      `subdirs` (ab/cdef…), `flat` (abcdef…), `bazel` (ac/<64 hex>);
 *                      namespace `ccache`
 *   /ac/<hash>         Bazel's action cache; namespace `bazel`
 *   /cas/<sha256>      Bazel's content-addressed store: an upload whose sha256 is not its
 *                      name is refused (400), so the store holds only what its names say
 *
 * GET 200 / 404, HEAD 200 / 404 (ccache asks before uploading), PUT 200 (overwrites), DELETE
 * 200 / 404. The object path is validated (400) and, like every key, hashed before it
 * reaches the disk.
 */
interface Target {
  protocol: Protocol
  namespace: string
  key: string
  /** The sha256 a CAS upload must have. */
  sha256?: string
}

function ccacheTarget(request: FastifyRequest): Target {
  return { protocol: 'ccache', namespace: 'ccache', key: objectPath((request.params as { '*': string })['*']) }
}

function bazelTarget(store: 'ac' | 'cas') {
  return (request: FastifyRequest): Target => {
    const key = objectPath((request.params as { '*': string })['*'])
    const target: Target = { protocol: 'bazel', namespace: 'bazel', key: `${store}/${key}` }
    if (store === 'cas') {
      // A CAS object's name is its content's sha256: anything else can never be checked.
      if (!/^[0-9a-f]{64}$/.test(key))
        throw badRequest('ERR_INVALID_HASH', 'Invalid CAS name: expected the sha256 of the content, 64 lowercase hex digits')
      target.sha256 = key
    }
    return target
  }
}

export function objectUploads(app: FastifyInstance, ctx: ServerContext): void {
  const upload = (target: (request: FastifyRequest) => Target) => async (request: FastifyRequest, reply: FastifyReply) => {
    const t = target(request)
    allowedNamespace(ctx, request, t.namespace)
    const cache = await ctx.namespaces.get(t.namespace, t.protocol)
    const outcome = await storeArtifact(ctx, request, t.protocol, cache, t.key, {}, t.sha256)
    if (!outcome.stored)
      return refuseUpload(reply).code(outcome.error.statusCode).send(errorBody(outcome.error.code, outcome.error.message))
    return reply.code(200).send()
  }
  app.put('/ccache/*', { config: { access: 'write', protocol: 'ccache', namespaced: true } }, upload(ccacheTarget))
  app.put('/ac/*', { config: { access: 'write', protocol: 'bazel', namespaced: true } }, upload(bazelTarget('ac')))
  app.put('/cas/*', { config: { access: 'write', protocol: 'bazel', namespaced: true } }, upload(bazelTarget('cas')))
}

export function objectRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const download =
    (target: (request: FastifyRequest) => Target, headOnly: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
      const t = target(request)
      allowedNamespace(ctx, request, t.namespace)
      const cache = await ctx.namespaces.get(t.namespace, t.protocol)
      const meta = await sendArtifact(ctx, reply, t.protocol, cache, t.key, headOnly ? 'head' : 'body')
      // A HEAD's answer has the GET's headers (its Content-Type and Content-Length); Node sends no body.
      if (meta === undefined) return reply.code(404).send(errorBody('ERR_NOT_FOUND', `No object ${t.key}`))
      return reply
    }
  const remove = (target: (request: FastifyRequest) => Target) => async (request: FastifyRequest, reply: FastifyReply) => {
    const t = target(request)
    allowedNamespace(ctx, request, t.namespace)
    const cache = await ctx.namespaces.get(t.namespace, t.protocol)
    let deleted: boolean
    try {
      deleted = await cache.delete(t.key)
    } catch (error) {
      readFailed(ctx, t.protocol, error)
      return reply.code(503).send(errorBody('ERR_UNAVAILABLE', 'The cache could not remove the object (its disk is failing)'))
    }
    if (!deleted) return reply.code(404).send(errorBody('ERR_NOT_FOUND', `No object ${t.key}`))
    ctx.metrics.deleted(t.protocol)
    return reply.code(200).send()
  }
  for (const [prefix, target, protocol] of [
    ['/ccache/*', ccacheTarget, 'ccache'],
    ['/ac/*', bazelTarget('ac'), 'bazel'],
    ['/cas/*', bazelTarget('cas'), 'bazel'],
  ] as const) {
    app.get(prefix, { config: { access: 'read', protocol, namespaced: true }, exposeHeadRoute: false }, download(target, false))
    app.head(prefix, { config: { access: 'read', protocol, namespaced: true } }, download(target, true))
    app.delete(prefix, { config: { access: 'write', protocol, namespaced: true } }, remove(target))
  }
}
