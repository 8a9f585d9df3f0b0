import type { FastifyInstance } from 'fastify'
import type { ServerContext } from '../context.js'

/**
 *   GET /healthz   200 while the process serves (no token needed: for load balancers)
 *   GET /readyz    200 when the cache directory takes a write and gives it back (a probe
 *                  entry in the `larder:health` namespace), 503 with the reason otherwise
 *   GET /metrics   Prometheus text (metrics.ts); needs a token when the server has any
 */
const HEALTH_NAMESPACE = 'larder:health'

export async function operationRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  app.get('/healthz', { config: { access: 'public', rateLimit: false } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { config: { access: 'public', rateLimit: false } }, async (_request, reply) => {
    const probe = `probe-${process.pid}`
    const written = String(Date.now())
    try {
      const cache = await ctx.namespaces.get(HEALTH_NAMESPACE, 'health')
      await cache.set(probe, written)
      const read = await cache.get(probe)
      if (String(read) !== written) throw new Error('the probe entry read back differently')
      return { status: 'ready', disk: 'writable' }
    } catch (error) {
      const reason = (error as Error).message ?? String(error)
      return reply.code(503).send({ status: 'unavailable', disk: `not writable: ${reason}` })
    }
  })

  app.get('/metrics', { config: { access: 'read' } }, async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics()
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text)
  })
}
