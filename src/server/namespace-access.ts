import type { FastifyRequest } from 'fastify'
import type { ServerContext } from './context.js'
import { Tokens } from './auth.js'
import { HttpError } from './http-error.js'

/**
 * The one check between a request and the namespace it names, called by every route as it
 * resolves that namespace (a team's slug, an nx team, `ccache`, `bazel`, `api`): a server
 * token (or a server without tokens) passes, as the onRequest hook already checked its access;
 * a namespace token passes only for a namespace it was given, with the access it was given
 * there (or, if it is also a server read token, anywhere to read). Routes that name no
 * namespace and show every one (metrics, the dashboard's figures) are not `namespaced`, and
 * the hook refuses namespace tokens there.
 */
export function allowedNamespace(ctx: ServerContext, request: FastifyRequest, name: string): string {
  const grant = request.grant
  if (grant?.namespaces === undefined) return name
  const access = Tokens.accessTo(grant, name)
  const { protocol, access: needed = 'write' } = request.routeOptions.config
  if (access === undefined) {
    if (protocol !== undefined) ctx.metrics.refused(protocol)
    throw new HttpError(403, 'ERR_FORBIDDEN_NAMESPACE', `Forbidden: this token is not for the namespace ${name}`)
  }
  if (needed === 'write' && access === 'read') {
    if (protocol !== undefined) ctx.metrics.refused(protocol)
    throw new HttpError(403, 'ERR_READ_ONLY_TOKEN', `Forbidden: this token may only read the namespace ${name}`)
  }
  return name
}
