import { randomUUID } from 'node:crypto'
import calculateSlot from 'cluster-key-slot'
import type { FastifyInstance } from 'fastify'
import type { Larder, LarderOptions } from '../../index.js'
import type { ServerContext } from '../context.js'

/**
 *   GET /healthz   200 while the process serves (no token needed: for load balancers)
 *   GET /readyz    200 when the cache directory takes a write and gives it back (a probe
 *                  entry in the `larder:health` namespace) and, with `--redis`, so does the
 *                  shared tier (the same probe in Redis alone; on a Redis Cluster, a probe in
 *                  each 32nd of the hash slots, so every master is written to); 503 with the
 *                  reason otherwise
 *   GET /metrics   Prometheus text (metrics.ts); needs a token when the server has any
 */
const HEALTH_NAMESPACE = 'larder:health'
const SHARED_HEALTH_NAMESPACE = 'larder:health:shared'

/** This server's probes' names: random, not the pid, which every replica in a container shares
 *  (PID 1), and one replica read another's probe (a 503 for nothing). */
const PROBE_ID = randomUUID()
let probes = 0

/** Writes a probe into `cache`, reads it back and removes it; throws if a step fails or the value
 *  differs. Each probe has its own key: two /readyz at once never read each other's. `spread`:
 *  one probe key in each of SLOT_TAGS' parts of a Redis Cluster's hash slots (one key alone
 *  landed on one master, a random one per probe: a master down answered 503 a third of the
 *  time in a cluster of three). */
async function probe(cache: Larder, spread = false): Promise<void> {
  const base = `probe-${PROBE_ID}-${probes++}`
  const keys = spread ? SLOT_TAGS.map((tag) => `${base}-{${tag}}`) : [base]
  const written = String(Date.now())
  await cache.setMany(keys.map((key) => ({ key, value: written, ttl: 60_000 })))
  const read = await cache.getMany(keys)
  await cache.deleteMany(keys)
  if (read.some((value) => String(value) !== written)) throw new Error('the probe entry read back differently')
}

/** A hash tag in each 32nd of a Redis Cluster's 16,384 slots: a probe key holding `{tag}` is
 *  stored in that part (Redis hashes a name's first `{…}` alone; a `redis.prefix` with a tag of
 *  its own puts every key, probes too, in its one slot). Any master holding a 32nd of the slots
 *  in one range (a cluster of up to 32 masters, slots spread evenly) gets at least one. */
const SLOT_TAGS = tagsAcrossSlots(32)

function tagsAcrossSlots(parts: number): string[] {
  const tags: string[] = []
  for (let i = 0, found = 0; found < parts; i++) {
    const tag = i.toString(36)
    const part = Math.floor((calculateSlot(tag) * parts) / 16_384)
    if (tags[part] === undefined) {
      tags[part] = tag
      found++
    }
  }
  return tags
}

/** Whether the shared tier is a Redis Cluster (seeds given, or a caller's ioredis Cluster). */
function isCluster(redis: LarderOptions['redis']): boolean {
  if (typeof redis !== 'object' || redis === null) return false
  return redis.cluster !== undefined || (redis.client as { isCluster?: boolean } | undefined)?.isCluster === true
}

/** What /readyz, which anyone may ask, says of a failure: its codes (`ERR_UNAVAILABLE: EACCES`),
 *  never its message, which names paths and hosts; the message goes to the server's log. */
function reasonOf(error: unknown): string {
  const codes = [(error as { code?: unknown }).code, (error as { cause?: { code?: unknown } }).cause?.code]
  const named = codes.filter((code): code is string => typeof code === 'string')
  return named.length > 0 ? named.join(': ') : 'failed'
}

interface ReadyAnswer {
  ready: boolean
  answer: Record<string, string>
}

/** The disk probe and, with `--redis`, the shared tier's: what /readyz answers. */
async function readiness(ctx: ServerContext): Promise<ReadyAnswer> {
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
      await probe(await ctx.namespaces.get(SHARED_HEALTH_NAMESPACE, 'shared-health'), isCluster(ctx.namespaces.sharedRedis))
      answer.redis = 'reachable'
    } catch (error) {
      ready = false
      answer.redis = `not reachable: ${reasonOf(error)}`
      ctx.log(`readyz: the Redis probe failed: ${(error as Error).message ?? String(error)}`)
    }
  }
  return { ready, answer }
}

export function operationRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/healthz', { config: { access: 'public', rateLimit: false } }, () => Promise.resolve({ status: 'ok' }))

  // Anyone may ask, and the rate limit spares it (a load balancer must never be refused), so
  // the probes are shared: a /readyz that arrives while one is being judged takes its answer
  // (each probe writes, reads and deletes an entry, 32 keys of them on a Redis Cluster: many
  // callers at once made as many probes at once).
  let judging: Promise<ReadyAnswer> | undefined
  app.get('/readyz', { config: { access: 'public', rateLimit: false } }, async (_request, reply) => {
    judging ??= readiness(ctx).finally(() => (judging = undefined))
    const { ready, answer } = await judging
    if (ready) return answer
    return reply.code(503).send({ ...answer, status: 'unavailable' })
  })

  app.get('/metrics', { config: { access: 'read' } }, async (_request, reply) => {
    const text = await ctx.metrics.registry.metrics()
    return reply.header('content-type', ctx.metrics.registry.contentType).send(text)
  })
}
