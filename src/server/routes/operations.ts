import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Larder } from '../../index.js'
import type { ServerContext } from '../context.js'

/**
 *   GET /healthz   200 while the process serves (no token needed: for load balancers)
 *   GET /readyz    200 when the cache directory takes a write and gives it back (a probe
 *                  entry in the `larder:health` namespace) and, with `--redis`, so does the
 *                  shared tier (the same probe in Redis alone); 503 with the reason otherwise
 *   GET /metrics   Prometheus text (metrics.ts); needs a token when the server has any
 */
const HEALTH_NAMESPACE = 'larder:health'
const SHARED_HEALTH_NAMESPACE = 'larder:health:shared'

/** This server's probes' names: random, not the pid, which every replica in a container shares
 *  (PID 1), and one replica read another's probe (a 503 for nothing). */
const PROBE_ID = randomUUID()
let probes = 0

/** Writes a probe into `cache`, reads it back and removes it; throws if a step fails or the value
 *  differs. Each probe has its own key: two /readyz at once never read each other's. */
async function probe(cache: Larder): Promise<void> {
  const key = `probe-${PROBE_ID}-${probes++}`
  const written = String(Date.now())
  await cache.set(key, written, { ttl: 60_000 })
  const read = await cache.get(key)
  await cache.delete(key)
  if (String(read) !== written) throw new Error('the probe entry read back differently')
}

/** What /readyz, which anyone may ask, says of a failure: its codes (`ERR_UNAVAILABLE: EACCES`),
 *  never its message, which names paths and hosts; the message goes to the server's log. */
function reasonOf(error: unknown): string {
  const codes = [(error as { code?: unknown }).code, (error as { cause?: { code?: unknown } }).cause?.code]
  const named = codes.filter((code): code is string => typeof code === 'string')
  return named.length > 0 ? named.join(': ') : 'failed'
}

export function operationRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/healthz', { config: { access: 'public', rateLimit: false } }, () => Promise.resolve({ status: 'ok' }))

  app.get('/readyz', { config: { access: 'public', rateLimit: false } }, async (_request, reply) => {
    const answer: Record<string, string> = { status: 'ready', disk: 'writable' }
    let ready = true
    try {
      await probe(await ctx.namespaces.get(HEALTH_NAMESPACE, 'health'))
    } catch (error) {
      ready = false
      answer.disk = `not writable: ${reasonOf(error)}`
      ctx.log(`readyz: the disk probe failed: ${(error as Error).message ?? String(error)}`)
    }
    if (ctx.namespaces.sharedRedis !== undefined) {
      try {
        await probe(await ctx.namespaces.get(SHARED_HEALTH_NAMESPACE, 'shared-health'))
        answer.redis = 'reachable'
      } catch (error) {
        ready = false
        answer.redis = `not reachable: ${reasonOf(error)}`
        ctx.log(`readyz: the Redis probe failed: ${(error as Error).message ?? String(error)}`)
      }
    }
    if (ready) return answer
    return reply.code(503).send({ ...answer, status: 'unavailable' })
  })

  app.get('/metrics', { config: { access: 'read' } }, async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics()
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text)
  })
}
