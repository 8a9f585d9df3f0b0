import type { Grant, Tokens } from './auth.js'
import type { ServerMetrics } from './metrics.js'
import type { Namespaces, Protocol } from './namespaces.js'
import type { ServeOptions } from './options.js'

/** What every route group is built with. */
export interface ServerContext {
  options: ServeOptions
  namespaces: Namespaces
  metrics: ServerMetrics
  tokens: Tokens
  /** One line to the operator (stderr by default). Never given a header or a token. */
  log: (line: string) => void
}

/** Who may call a route, and which protocol it speaks (for metrics and error formats). */
export type RouteAccess = 'public' | 'read' | 'write'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Default `write`: a route must say when it is less. */
    access?: RouteAccess
    protocol?: Protocol
    /** The route reads or writes one namespace, which it checks with `allowedNamespace`
     *  (namespace-access.ts): namespace tokens may call it. Other routes are server tokens' only. */
    namespaced?: boolean
    /** The one namespace a namespaced route always names (the cache API's): a namespace token
     *  is checked for it before the body is read, so a token refused there never has the
     *  server parse a body first. */
    namespace?: string
  }
  interface FastifyRequest {
    /** What the request's token allows (set by the onRequest hook; undefined on a public
     *  route or a server without tokens). */
    grant: Grant | undefined
  }
}
