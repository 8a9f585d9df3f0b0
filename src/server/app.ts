import type https from 'node:https'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { isLarderError } from '../index.js'
import { Tokens, presentedToken } from './auth.js'
import type { ServerContext } from './context.js'
import { HttpError, errorBody } from './http-error.js'
import { ServerMetrics } from './metrics.js'
import { NamespaceCollisionError, Namespaces, TooManyNamespacesError } from './namespaces.js'
import { allowedNamespace } from './namespace-access.js'
import { MAX_JSON_BODY, type ServeOptions, type TlsFiles } from './options.js'
import { Origin } from './origin.js'
import { HitSources, cacheApiRoutes } from './routes/cache-api.js'
import { objectRoutes, objectUploads } from './routes/ccache.js'
import { dashboardRoutes } from './routes/dashboard.js'
import { nxRoutes, nxUploads, statusForNx } from './routes/nx.js'
import { operationRoutes } from './routes/operations.js'
import { turboRoutes, turboUploads } from './routes/turbo.js'

/**
 * `larder serve`: one fastify app that speaks every protocol (one file per protocol in
 * routes/) over namespaces of one cache directory (namespaces.ts). This file wires what they
 * share: authentication (auth.ts), the rate limit, error answers without stack traces, the
 * request log and duration histogram, and an orderly stop.
 */
export interface LarderServer {
  app: FastifyInstance
  /** Where it listens, once `listen` resolved: `http://HOST:PORT`. */
  listen(): Promise<{ host: string; port: number }>
  /** A server started with `tls` takes this certificate and key for the connections that
   *  begin after it (a renewed certificate); throws, keeping the old one, if they do not
   *  make a context (not PEM, a key that is not the certificate's). */
  setTls(tls: TlsFiles): void
  /** Stops accepting, lets requests in flight finish (up to `shutdownGrace`, then cuts
   *  them), and closes every namespace. */
  close(): Promise<void>
  context: ServerContext
}

/** The answer to a request that arrives while the server stops. */
const STOPPING = 'The server is stopping: retry against another replica or once it is back'

/** The most requests one connection may have waiting behind the one being answered. */
const PIPELINE_DEPTH = 32

/** How often the dashboard's hit-rate history gets a point. */
const HISTORY_EVERY_MS = 5000

export async function createServer(
  options: ServeOptions,
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<LarderServer> {
  const hits = new HitSources()
  const namespaces = new Namespaces(
    options,
    ({ name, protocol, cache }) => {
      cache.on('prune', (r) =>
        metrics.pruned(name, {
          namespace: name,
          at: Date.now(),
          evicted: r.evicted,
          expired: r.expired,
          freedBytes: r.freedBytes,
          remainingBytes: r.remainingBytes,
          durationMs: r.durationMs,
        }),
      )
      cache.on('error', (error) => log(`${name}: ${error.message}`))
      if (protocol === 'api') cache.on('hit', (key, _tier, source) => hits.record(key, source))
    },
    () => metrics.teamClosed(),
  )
  // Declared after the namespaces it reads: their open hook uses it only inside a prune handler.
  const metrics = new ServerMetrics(() => namespaces.all())
  const tokens = new Tokens(options.tokens, options.readTokens, options.namespaceTokens)
  const ctx: ServerContext = { options, namespaces, metrics, tokens, log }

  const jsonLimit = Math.min(options.maxBody, MAX_JSON_BODY)
  // Typed as the HTTP server's instance: routes and hooks are the same on either.
  const app = Fastify({
    ...(options.tls === undefined ? {} : { https: { cert: options.tls.cert, key: options.tls.key } }),
    logger: false,
    bodyLimit: jsonLimit,
    forceCloseConnections: 'idle',
    // Node's socket inactivity timeout: a connection that neither sends nor takes a byte for
    // this long is destroyed (an upload stalled mid-body is aborted: its temp file goes, and
    // the next upload of its key no longer waits behind it). A slow but moving transfer stays.
    connectionTimeout: options.idleTimeout,
    // Answered by the first onRequest hook below instead, in the server's own shape (fastify's
    // is another, and its 503 to nx's read failed the run).
    return503OnClosing: false,
    routerOptions: { ignoreDuplicateSlashes: true, ignoreTrailingSlash: true, maxParamLength: 2048 },
    // A request Node's HTTP parser refuses (a negative Content-Length, a broken request line):
    // the same shape, written to the socket, which then closes (nothing after it can be read).
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return socket.destroy()
      const [status, code, message] = clientErrorAnswer((error as { code?: string }).code)
      const body = JSON.stringify(errorBody(code, message))
      socket.end(
        `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      )
    },
    // What the router refuses (a URL that does not decode, `%ff`; a parameter too long): the
    // same one-line JSON answer as every other error, and never the URL repeated back.
    frameworkErrors: (error, request, reply) => {
      const [status, code, message] =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? [414, 'ERR_URL_TOO_LONG', 'Request URL too long: a name or key is at most 2048 characters']
          : [400, 'ERR_BAD_URL', 'Bad request: the URL does not decode']
      // Answered before any route or hook: the onResponse hook never hears of it (it was in no
      // request log line, nor in the duration histogram), nor do the stop's 503 and the rate
      // limit, met here instead (a client sending such URLs was never limited).
      reply.raw.once('finish', () => answered(request, reply))
      const send = (status: number, code: string, message: string): void => {
        if (stopping) reply.header('connection', 'close')
        void (reply as unknown as FastifyReply).code(status).send(errorBody(code, message))
      }
      if (stopping) return send(503, 'ERR_STOPPING', STOPPING)
      void (limit?.(request as unknown as FastifyRequest, reply as unknown as FastifyReply) ?? Promise.resolve()).then(
        () => send(status, code, message),
        (refusal: unknown) =>
          refusal instanceof HttpError ? send(refusal.statusCode, refusal.code, refusal.message) : send(status, code, message),
      )
    },
  })

  // A pipelined request (sent on a connection before the answers to those ahead of it) waits
  // for its turn to answer before anything is read for it: Node queues its answer behind the
  // others, and an artifact opened for it meanwhile held its file and the first MiB of its body
  // in that queue: a client that sent 300 GETs of a large artifact and read nothing held 300
  // files and ~390 MB. Past PIPELINE_DEPTH requests waiting on one connection, it is closed;
  // a request whose connection closed before its turn goes no further (no one is there to
  // answer), and neither does one parsed from the same bytes after that.
  const waiting = new WeakMap<object, number>()
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket
    if (reply.raw.socket !== null) return done()
    if (socket.destroyed) return
    const depth = (waiting.get(socket) ?? 0) + 1
    if (depth > PIPELINE_DEPTH) return void socket.destroy()
    waiting.set(socket, depth)
    const settle = (go: boolean) => (): void => {
      waiting.set(socket, (waiting.get(socket) ?? 1) - 1)
      reply.raw.off('socket', onTurn)
      socket.off('close', onClose)
      if (go) done()
    }
    const onTurn = settle(true)
    const onClose = settle(false)
    reply.raw.once('socket', onTurn)
    socket.setMaxListeners(PIPELINE_DEPTH + 10)
    socket.once('close', onClose)
  })

  // A request that reaches the server while it stops (pipelined behind one in flight, or on a
  // kept-alive connection that was busy when the stop began) is refused before anything else:
  // 503, or for nx a miss or a skipped upload (nx fails its whole run on a 5xx).
  let stopping = false
  app.addHook('onRequest', async (request, reply) => {
    if (!stopping) return
    if (request.routeOptions.config.protocol === 'nx')
      return reply.code(statusForNx(request.method, 503)).header('content-type', 'text/plain').send(STOPPING)
    return reply.code(503).send(errorBody('ERR_STOPPING', STOPPING))
  })

  // Before the token check: a request refused for its token counts against its address too,
  // or a client could try tokens at full speed.
  let limit: ((request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) | undefined
  if (options.rateLimit > 0) {
    await app.register(rateLimit, {
      // One hook of the app's own, not one per route (a route's hooks run after the app's, so
      // after the token check): every request counts, whatever it is answered.
      global: false,
      max: options.rateLimit,
      timeWindow: 60_000,
      errorResponseBuilder: (_request, context) =>
        new HttpError(
          429,
          'ERR_RATE_LIMITED',
          `Too many requests: at most ${context.max} a minute from one address; retry in ${context.after}`,
        ),
    })
    const hook = app.rateLimit()
    limit = (request, reply) => hook.call(app, request, reply)
    app.addHook('onRequest', async (request, reply) => {
      if (request.routeOptions.config.rateLimit === false) return // health checks
      await hook.call(app, request, reply)
    })
  }

  app.decorateRequest('grant', undefined)
  app.addHook('onRequest', async (request, reply) => {
    const { access = 'write', protocol, namespaced = false, namespace } = request.routeOptions.config
    if (!tokens.required) {
      // No token: the server listens on loopback only, but a browser on this machine is on
      // loopback too. A web page of another origin (its requests carry an Origin), or one
      // whose name was rebound to 127.0.0.1 (a Host that is no loopback name), must not write
      // artifacts a build will run, nor clear the cache.
      const refusal = browserRefusal(request.headers)
      if (refusal !== undefined) {
        reply.code(403)
        if (protocol === 'nx') return reply.header('content-type', 'text/plain').send(refusal)
        return reply.send(errorBody('ERR_FORBIDDEN_ORIGIN', refusal))
      }
    }
    if (access === 'public' || !tokens.required) return
    const grant = tokens.grant(presentedToken(request.headers))
    if (grant === undefined) {
      const message = 'Unauthorized: a valid token is required (Authorization: Bearer <token>)'
      reply.code(401).header('www-authenticate', 'Bearer realm="larder"')
      // nx shows the body only when it is text/plain exactly.
      if (protocol === 'nx') return reply.header('content-type', 'text/plain').send(message)
      return reply.send(errorBody('ERR_UNAUTHORIZED', message))
    }
    request.grant = grant
    // No such route: its 404, whatever the token may do (a read or namespace token was told
    // 403, as if the route existed and it lacked the right).
    if (request.is404) return
    // A token with namespace grants is checked where each route names its namespace, or here
    // when the route always names the same one (before a body is parsed for nothing).
    if (namespaced && namespace !== undefined && grant.namespaces !== undefined) allowedNamespace(ctx, request, namespace)
    if (grant.server === undefined) {
      if (namespaced) return
      if (protocol !== undefined) metrics.refused(protocol)
      return reply
        .code(403)
        .send(errorBody('ERR_FORBIDDEN_NAMESPACE', 'Forbidden: a namespace token opens its namespaces only, not this server-wide route'))
    }
    // A server read token that may also write some namespaces: checked there too.
    if (access === 'write' && grant.server === 'read' && !(namespaced && grant.namespaces !== undefined)) {
      if (protocol !== undefined) metrics.refused(protocol)
      const message = 'Forbidden: this token may only read'
      reply.code(403)
      if (protocol === 'nx') return reply.header('content-type', 'text/plain').send(message)
      return reply.send(errorBody('ERR_READ_ONLY_TOKEN', message))
    }
  })

  // A response finished during shutdown closes its connection: a kept-alive socket would
  // otherwise hold the stop up until its keep-alive timeout.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (stopping) reply.header('connection', 'close')
    return payload
  })

  const heard = new WeakSet<FastifyRequest>()
  const answered = (request: FastifyRequest, reply: FastifyReply, cut = false): void => {
    if (heard.has(request)) return
    heard.add(request)
    const route = request.routeOptions.url ?? 'unmatched'
    metrics.duration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000)
    // The route, not the path: hashes and cache keys are the clients' business (and a query
    // could carry anything a client put there).
    if (options.logRequests)
      log(`${request.method} ${routeOf(request)} ${reply.statusCode} ${reply.elapsedTime.toFixed(1)}ms${cut ? ' cut short' : ''}`)
  }
  app.addHook('onResponse', async (request, reply) => answered(request, reply))
  // A response that never finished (its body failed, as a damaged artifact's does, or its
  // client left mid-answer): fastify's onResponse never hears of it, and it had no log line
  // nor a place in the histogram. One begun is heard as it closes.
  app.addHook('onSend', async (request, reply, payload) => {
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) answered(request, reply, true)
    })
    return payload
  })

  app.setErrorHandler((error: FastifyError | HttpError | Error, request, reply) => {
    // A route may parse less than the server's JSON limit (turbo's query and events: 1 MiB).
    const { status, code, message } = errorAnswer(error, request.routeOptions.bodyLimit ?? jsonLimit, jsonLimit)
    if (status >= 500) log(`${request.method} ${routeOf(request)}: ${error.message}`)
    if (status === 413 || status === 411) reply.header('connection', 'close')
    if (request.routeOptions.config.protocol === 'nx') {
      return reply.code(statusForNx(request.method, status)).header('content-type', 'text/plain').send(message)
    }
    return reply.code(status).send(errorBody(code, message))
  })
  app.setNotFoundHandler((request, reply) =>
    // Not the path: it may carry a hash or a key (the router's refusals do not repeat it either).
    reply.code(404).send(errorBody('ERR_NOT_FOUND', `No route for ${request.method} at this path`)),
  )

  // CORS preflight (turbo sends it with --preflight): every method, and Authorization allowed,
  // or turbo drops the token from the request that follows.
  app.options('/*', { config: { access: 'public' } }, async (_request, reply) =>
    reply
      .code(200)
      .header('access-control-allow-origin', '*')
      .header('access-control-allow-methods', 'GET, HEAD, PUT, POST, DELETE, OPTIONS')
      .header(
        'access-control-allow-headers',
        'Authorization, Content-Type, Content-Length, User-Agent, x-artifact-duration, x-artifact-tag, x-artifact-client-ci, x-artifact-client-interactive, x-artifact-sha, x-artifact-dirty-hash',
      )
      .header('access-control-max-age', '600')
      .send(),
  )

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify takes a plugin as async or with a done callback; async makes a throw while registering reject register()
  await app.register(async (json) => {
    // `Content-Type: application/json` with no body is a request without one: a client that
    // sets the header on every call sent DELETE /api/cache/:key, DELETE /cache/l1 or POST
    // /cache/stats/reset, which read no body, and was told 400 "Body cannot be empty". A
    // route that needs a body says what it expected (400 naming it).
    const parseJson = json.getDefaultJsonParser('error', 'error')
    json.removeContentTypeParser('application/json')
    json.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) =>
      body === '' ? done(null, undefined) : parseJson(request, body as string, done),
    )
    operationRoutes(json, ctx)
    turboRoutes(json, ctx)
    nxRoutes(json, ctx)
    objectRoutes(json, ctx)
    cacheApiRoutes(json, ctx, hits, options.origin === undefined ? undefined : new Origin(options.origin))
    if (options.dashboard) dashboardRoutes(json, ctx)
  })
  // Uploads read the raw request stream, whatever its Content-Type: no parser may consume it.
  // eslint-disable-next-line @typescript-eslint/require-await -- as above: a plugin is async or takes done
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers()
    raw.addContentTypeParser('*', (_request, _payload, done) => done(null))
    turboUploads(raw, ctx)
    nxUploads(raw, ctx)
    objectUploads(raw, ctx)
  })

  metrics.record()
  const sampler = setInterval(() => metrics.record(), HISTORY_EVERY_MS)
  sampler.unref()

  let closing: Promise<void> | undefined
  return {
    app,
    context: ctx,
    setTls(tls) {
      if (options.tls === undefined) throw new Error('this server was started without TLS')
      ;(app.server as unknown as https.Server).setSecureContext({ cert: tls.cert, key: tls.key })
      options.tls = tls
    },
    async listen() {
      await app.listen({ host: options.host, port: options.port })
      const address = app.server.address()
      if (address === null || typeof address === 'string') throw new Error(`unexpected listening address ${String(address)}`)
      return { host: options.host, port: address.port }
    },
    close() {
      closing ??= (async () => {
        stopping = true
        clearInterval(sampler)
        const cut = setTimeout(() => app.server.closeAllConnections(), options.shutdownGrace)
        cut.unref()
        try {
          await app.close()
        } finally {
          clearTimeout(cut)
          await namespaces.close()
        }
      })()
      return closing
    },
  }
}

/** What a failed request answers: deliberate errors as they are, fastify's own 4xx with their
 *  message, larder's bad-input errors as 400, a failing disk as 503, anything else as a bare
 *  500 (logged, never described to the client). */
function errorAnswer(
  error: FastifyError | HttpError | Error,
  routeLimit: number,
  jsonLimit: number,
): { status: number; code: string; message: string } {
  if (error instanceof HttpError) return { status: error.statusCode, code: error.code, message: error.message }
  if (error instanceof TooManyNamespacesError) return { status: 507, code: 'ERR_TOO_MANY_NAMESPACES', message: error.message }
  if (error instanceof NamespaceCollisionError) return { status: 409, code: 'ERR_NAMESPACE_COLLISION', message: error.message }
  if (isLarderError(error)) {
    if (error.code.startsWith('ERR_INVALID') || error.code === 'ERR_SERIALIZE')
      return { status: 400, code: error.code, message: error.message }
    if (error.code === 'ERR_TOO_LARGE') return { status: 413, code: error.code, message: error.message }
    // An entry another application wrote with a serializer of its own (into Redis, or a shared
    // directory): not the client's mistake, nor a failure of the server; the entry stays for
    // its writer, and a PUT replaces it.
    if (error.code === 'ERR_DESERIALIZE')
      return { status: 409, code: error.code, message: 'The entry was written with a serializer this server does not have' }
    if (error.code === 'ERR_UNAVAILABLE' || error.code === 'ERR_CLOSED' || error.code === 'ERR_BUSY')
      return {
        status: 503,
        code: error.code,
        message: 'The cache is unavailable (its disk or its shared tier is failing, or the server is stopping)',
      }
  }
  const fastifyError = error as FastifyError
  const status = fastifyError.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Only the JSON parser enforces fastify's bodyLimit (uploads check their own: artifact-store.ts).
    if (status === 413)
      return {
        status,
        code: 'ERR_BODY_TOO_LARGE',
        message:
          routeLimit === jsonLimit
            ? `Request body too large: the limit for JSON bodies is ${jsonLimit} bytes (--max-body, at most ${MAX_JSON_BODY})`
            : `Request body too large: the limit for this route's JSON bodies is ${routeLimit} bytes`,
      }
    return { status, code: fastifyError.code ?? 'ERR_BAD_REQUEST', message: fastifyError.message }
  }
  return { status: 500, code: 'ERR_INTERNAL', message: 'Internal error (logged by the server)' }
}

/** The answer to a request Node's HTTP server refused before it reached the app: its status
 *  line, code and message. */
function clientErrorAnswer(nodeCode: string | undefined): [status: string, code: string, message: string] {
  if (nodeCode === 'HPE_HEADER_OVERFLOW')
    return ['431 Request Header Fields Too Large', 'ERR_HEADERS_TOO_LARGE', 'Request headers too large']
  // Node's headersTimeout (60 s): headers that trickle in, never idle long enough for the idle
  // timeout, are a timeout, not a request that does not parse.
  if (nodeCode === 'ERR_HTTP_REQUEST_TIMEOUT')
    return ['408 Request Timeout', 'ERR_REQUEST_TIMEOUT', 'Request timeout: its headers did not arrive in time']
  return ['400 Bad Request', 'ERR_BAD_REQUEST', 'Bad request: the HTTP request does not parse']
}

/** What a log line names of a request: its route's pattern (`/v8/artifacts/:hash`), never the
 *  path itself, whose hashes and cache keys are the clients' business. */
function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? '(no route)'
}

/** Names a browser may reach this host's loopback by without DNS (RFC 6761's `localhost`, its
 *  subdomains, 127.0.0.0/8, ::1): a name rebound by DNS to 127.0.0.1 is none of these. */
const LOOPBACK_NAME = /^(?:localhost|[a-z0-9.-]+\.localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i

/**
 * Why a request to a server without tokens is refused as coming from a web page, or undefined.
 * A browser says so (an Origin, or the `Sec-Fetch-*` headers every current browser sends); a
 * build tool sends neither, and may use any name for this host (an /etc/hosts alias). From a
 * browser, the Host must be a loopback name (a name rebound by DNS to 127.0.0.1 makes the
 * attacker's page same-origin with this server) and the page must be the server's own: its
 * Origin, or without one its `Sec-Fetch-Site` (the dashboard's own requests carry no Origin, or
 * this one). The message names neither.
 */
function browserRefusal(headers: FastifyRequest['headers']): string | undefined {
  const { host, origin } = headers
  if (origin === undefined && headers['sec-fetch-mode'] === undefined && headers['sec-fetch-site'] === undefined) return undefined
  const name = host === undefined ? undefined : hostName(host)
  if (name !== undefined && !LOOPBACK_NAME.test(name))
    return 'Forbidden: a server without a token answers a web page only under a loopback name (localhost, 127.0.0.1, [::1])'
  let own = false
  if (origin === undefined) {
    // A browser's GET carries no Origin, a page's <script>, <img> or no-cors fetch neither, but
    // it says whose page asked: another site's learnt a hit from a miss (onload or onerror) and,
    // with --origin, had the server fetch and store. A navigation shows the answer to the user.
    const site = headers['sec-fetch-site']
    own = (site !== 'cross-site' && site !== 'same-site') || headers['sec-fetch-mode'] === 'navigate'
  } else {
    try {
      own = host !== undefined && new URL(origin).host.toLowerCase() === host.toLowerCase()
    } catch {
      // `null` (a sandboxed page, a file) or not a URL: not this server's
    }
  }
  return own ? undefined : 'Forbidden: a server without a token answers no web page but its own (start it with --token to serve browsers)'
}

/** The name in a Host header (`name`, `name:port`, `[v6]:port`). */
function hostName(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1)
  const colon = host.lastIndexOf(':')
  return colon === -1 ? host : host.slice(0, colon)
}
