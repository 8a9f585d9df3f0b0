import { pipeline, Transform } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, preParsingHookHandler } from 'fastify'
import { isLarderError, type Larder } from '../../index.js'
import type { ServerContext } from '../context.js'
import { HttpError, badRequest, errorBody } from '../http-error.js'
import type { HitTier } from '../metrics.js'
import type { Origin } from '../origin.js'
import { l2Figures, metricsDocument } from '../snapshot.js'
import { allowedNamespace } from '../namespace-access.js'
import { apiKey, storedApiKey } from '../validation.js'

/**
 * The seeds' cache API, for applications (JSON values in the `api` namespace, with the
 * memory tier in front of the files):
 *
 *   GET    /api/cache/:key        { key, value, hit, source, cached_at, expires_at }; 404 { hit: false } on a miss
 *                                  (with --origin, the origin's answer: hit false, source 'origin';
 *                                  cached_at null when it was served but not cached)
 *   PUT    /api/cache/:key        { value, ttl?, tags? } (ttl in seconds; 0 = never) → { success, key, expires_at }
 *   DELETE /api/cache/:key        { success, key, deleted }
 *   POST   /api/cache/invalidate  { keys } | { pattern } | { tags } → { success, invalidated }
 *   GET    /api/cache/metrics     the figures (snapshot.ts)
 *
 * and the two-level seed's management routes:
 *
 *   GET    /cache/stats           { l1, l2, file, hits, misses, hit_rate }
 *   DELETE /cache/l1              empties the memory tier (the files keep every entry)
 *   DELETE /cache/l2              empties the shared (Redis) tier with `--redis`; else nothing to empty
 *   DELETE /cache/all             removes every entry of the namespace, in every tier
 *   POST   /cache/stats/reset     zeroes the counters these routes report
 *
 * A value is stored as `{ value, cachedAt, expiresAt }`, so a hit answers `cached_at` and
 * `expires_at` (ISO 8601; null = never) without a second read.
 */
export const API_NAMESPACE = 'api'

interface StoredValue {
  value: unknown
  cachedAt: number
  expiresAt: number | null
}

const MAX_INVALIDATE_KEYS = 10_000
/** Each tag invalidated is a stamp written to disk at once (~8 KiB, three inodes, outside the
 *  size budget) while the event loop waits: 100,000 in one request held every other request
 *  12 s and wrote 789 MiB. A few hundred is more than a deploy's invalidation names. */
const MAX_INVALIDATE_TAGS = 256

function isStored(found: unknown): found is StoredValue {
  return typeof found === 'object' && found !== null && 'value' in found && typeof (found as StoredValue).cachedAt === 'number'
}

/** A time as ISO 8601, or null (none, or beyond what a Date holds: never an exception on a read). */
const iso = (ms: number | null): string | null => (ms === null || !(Math.abs(ms) <= 8.64e15) ? null : new Date(ms).toISOString())
/** The longest ttl the API takes, in seconds: 100 years (a longer one is a mistake; 0 = never). */
const MAX_TTL_SECONDS = 100 * 365 * 24 * 3600

/**
 * Which tier answered each hit, from the instance's `hit` events: a queue per key, taken in
 * the order the reads were answered, so concurrent reads of one key each get one.
 */
export class HitSources {
  readonly #queues = new Map<string, HitTier[]>()

  record(key: string, source: HitTier): void {
    const queue = this.#queues.get(key)
    if (queue === undefined) this.#queues.set(key, [source])
    else queue.push(source)
  }

  take(key: string): HitTier {
    const queue = this.#queues.get(key)
    const tier = queue?.shift() ?? 'file'
    if (queue !== undefined && queue.length === 0) this.#queues.delete(key)
    return tier
  }
}

/** The bytes of each body sent without a `Content-Length` (chunked), counted as they arrive:
 *  what `larder_bytes_in_total` adds for it (the missing header counted 0). */
const chunkedBytes = new WeakMap<FastifyRequest, number>()

const countChunked: preParsingHookHandler = (request, _reply, payload, done) => {
  if (request.headers['content-length'] !== undefined) return done(null, payload)
  chunkedBytes.set(request, 0)
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, next) {
      chunkedBytes.set(request, chunkedBytes.get(request)! + chunk.length)
      next(null, chunk)
    },
  })
  // An aborted request destroys `counted` too, so the body parser hears of it.
  pipeline(payload, counted, () => {})
  done(null, counted)
}

export function cacheApiRoutes(app: FastifyInstance, ctx: ServerContext, hits: HitSources, origin: Origin | undefined): void {
  const api = (request: FastifyRequest): Promise<Larder> => ctx.namespaces.get(allowedNamespace(ctx, request, API_NAMESPACE), 'api')
  const read = { access: 'read' as const, protocol: 'api' as const, namespaced: true, namespace: API_NAMESPACE }
  const write = { access: 'write' as const, protocol: 'api' as const, namespaced: true, namespace: API_NAMESPACE }

  // Every namespace's figures: server tokens only.
  app.get('/api/cache/metrics', { config: { access: 'read', protocol: 'api' } }, async (request) => {
    const cache = await api(request)
    return metricsDocument(ctx.metrics, ctx.namespaces, await cache.stats(), ctx.options.memoryEntries)
  })

  /** A value answered (a hit, or the origin's), its bytes counted out once the reply went
   *  out whole, as artifacts' are (artifact-replies.ts); a HEAD sends no body, so none. */
  const sendCounted = (reply: FastifyReply, body: object): FastifyReply => {
    const text = JSON.stringify(body)
    if (reply.request.method !== 'HEAD') reply.raw.once('finish', () => ctx.metrics.sent('api', Buffer.byteLength(text)))
    return reply.code(200).type('application/json; charset=utf-8').send(text)
  }

  app.get('/api/cache/:key', { config: read }, async (request, reply) => {
    const key = apiKey((request.params as { key: string }).key)
    // A HEAD asks whether the key is there: no value read out, so neither a hit nor a miss.
    const counts = request.method !== 'HEAD'
    const cache = await api(request)
    let found: unknown
    try {
      found = await cache.get(key)
    } catch (error) {
      if (!isLarderError(error, 'ERR_UNAVAILABLE') && !isLarderError(error, 'ERR_TOO_LARGE')) throw error
      ctx.metrics.failed('api', false)
      found = undefined
    }
    if (found !== undefined) {
      const source = hits.take(key)
      if (counts) ctx.metrics.hit('api', source)
      const stored: StoredValue = isStored(found) ? found : { value: found, cachedAt: NaN, expiresAt: null }
      const body = {
        key,
        value: stored.value,
        hit: true,
        source,
        cached_at: Number.isNaN(stored.cachedAt) ? null : iso(stored.cachedAt),
        expires_at: iso(stored.expiresAt),
      }
      return sendCounted(reply, body)
    }
    if (counts) ctx.metrics.miss('api')
    if (origin === undefined)
      return reply.code(404).send({ key, hit: false, value: null, error: { code: 'ERR_NOT_FOUND', message: `No value for ${key}` } })
    const stored = await origin
      .shared(key, async () => {
        let fetched
        try {
          fetched = await origin.fetch(key)
        } catch (error) {
          ctx.metrics.originFetched(false)
          throw error
        }
        ctx.metrics.originFetched(true)
        const ttl = fetched.ttl ?? ctx.options.defaultTtl
        const cachedAt = Date.now()
        const record: StoredValue = { value: fetched.value, cachedAt, expiresAt: ttl > 0 ? cachedAt + ttl : null }
        if (fetched.ttl !== 0) {
          try {
            await cache.set(key, record, { ttl })
            ctx.metrics.stored('api', Buffer.byteLength(JSON.stringify(fetched.value) ?? ''))
            return record
          } catch (error) {
            // Served anyway: the origin answered; only the caching failed.
            if (!isLarderError(error)) throw error
            ctx.metrics.failed('api', true)
            ctx.log(`api: a value from the origin was not cached: ${error.message}`)
          }
        }
        // Served, not cached (no-store, or the write failed): no cached_at or expires_at to tell.
        return { value: fetched.value, cachedAt: NaN, expiresAt: null }
      })
      .catch((error: unknown) => {
        if (error instanceof HttpError) return error
        throw error
      })
    if (stored instanceof HttpError)
      return reply.code(502).send({ key, hit: false, source: 'origin', ...errorBody(stored.code, stored.message) })
    return sendCounted(reply, {
      key,
      value: stored.value,
      hit: false,
      source: 'origin',
      cached_at: iso(stored.cachedAt), // null for NaN: not cached
      expires_at: iso(stored.expiresAt),
    })
  })

  app.put('/api/cache/:key', { config: write, preParsing: countChunked }, async (request) => {
    const key = storedApiKey((request.params as { key: string }).key)
    const body = request.body as { value?: unknown; ttl?: unknown; tags?: unknown } | undefined
    if (body === null || typeof body !== 'object' || Array.isArray(body) || body.value === undefined) {
      throw badRequest('ERR_INVALID_VALUE', 'Invalid body: expected JSON { "value": …, "ttl"?: seconds, "tags"?: [strings] }')
    }
    const extra = Object.keys(body).filter((k) => k !== 'value' && k !== 'ttl' && k !== 'tags')
    if (extra.length > 0)
      throw badRequest('ERR_INVALID_VALUE', `Invalid body: unknown field ${JSON.stringify(extra[0])} (expected value, ttl, tags)`)
    if (body.ttl !== undefined && (typeof body.ttl !== 'number' || !(body.ttl >= 0 && body.ttl <= MAX_TTL_SECONDS))) {
      throw badRequest(
        'ERR_INVALID_TTL',
        `Invalid ttl: expected a number of seconds from 0 (never expires) to ${MAX_TTL_SECONDS} (100 years)`,
      )
    }
    // A positive ttl below a millisecond is one millisecond, not 0 (never expires).
    const ttl = body.ttl === undefined ? ctx.options.defaultTtl : body.ttl > 0 ? Math.max(1, Math.round(body.ttl * 1000)) : 0
    const cachedAt = Date.now()
    const record: StoredValue = { value: body.value, cachedAt, expiresAt: ttl > 0 ? cachedAt + ttl : null }
    const cache = await api(request)
    await cache.set(key, record, { ttl, ...(body.tags === undefined ? {} : { tags: body.tags as string[] }) })
    ctx.metrics.stored('api', chunkedBytes.get(request) ?? Number(request.headers['content-length']))
    return { success: true, key, expires_at: iso(record.expiresAt) }
  })

  app.delete('/api/cache/:key', { config: write }, async (request) => {
    const key = storedApiKey((request.params as { key: string }).key)
    const deleted = await (await api(request)).delete(key)
    if (deleted) ctx.metrics.deleted('api')
    return { success: true, key, deleted }
  })

  app.post('/api/cache/invalidate', { config: write }, async (request) => {
    const body = request.body as { keys?: unknown; pattern?: unknown; tags?: unknown } | undefined
    const cache = await api(request)
    const given =
      body === null || typeof body !== 'object' ? [] : (['keys', 'pattern', 'tags'] as const).filter((k) => body[k] !== undefined)
    if (given.length !== 1)
      throw badRequest(
        'ERR_INVALID_VALUE',
        'Invalid body: expected exactly one of { "keys": [...] }, { "pattern": "user:*" }, { "tags": [...] }',
      )
    if (given[0] === 'keys') {
      if (!Array.isArray(body!.keys) || body!.keys.length > MAX_INVALIDATE_KEYS)
        throw badRequest('ERR_INVALID_VALUE', `Invalid keys: expected an array of at most ${MAX_INVALIDATE_KEYS} keys`)
      const keys = body!.keys.map((k, i) => apiKey(k, `keys[${i}]`))
      const invalidated = await cache.deleteMany(keys)
      ctx.metrics.deleted('api', invalidated)
      return { success: true, invalidated }
    }
    if (given[0] === 'pattern') {
      if (typeof body!.pattern !== 'string' || body!.pattern === '')
        throw badRequest('ERR_INVALID_VALUE', 'Invalid pattern: expected a non-empty glob such as "user:*"')
      const report = await cache.prune({ pattern: body!.pattern, listKeys: true })
      // prune removes files in worker threads; this instance's memory tier still holds the
      // values it served, so the removed keys are deleted here too (cheap: the files are gone).
      if (report.keys !== undefined && report.keys.length > 0) await cache.deleteMany(report.keys)
      ctx.metrics.deleted('api', report.matched)
      return { success: true, invalidated: report.matched }
    }
    const tags = body!.tags
    if (!Array.isArray(tags) || tags.length > MAX_INVALIDATE_TAGS)
      throw badRequest('ERR_INVALID_VALUE', `Invalid tags: expected an array of at most ${MAX_INVALIDATE_TAGS} strings`)
    await cache.invalidateTags(tags as string[])
    return { success: true, invalidated: tags.length, unit: 'tags' }
  })

  // ── the two-level seed's management routes ──
  const management = { access: 'write' as const, protocol: 'api' as const, namespaced: true }
  app.get('/cache/stats', { config: read }, async (request) => {
    const cache = await api(request)
    const s = await cache.stats()
    const t = ctx.metrics.tally('api')
    return {
      l1: { enabled: ctx.options.memoryEntries > 0, entries: s.memoryEntries, max_entries: ctx.options.memoryEntries, hits: t.memoryHits },
      l2: l2Figures(s.tiers.redis),
      file: { entries: s.entries, size_bytes: s.size, hits: t.fileHits, breaker: s.breaker.state },
      hits: t.hits,
      misses: t.misses,
      hit_rate: t.hits + t.misses === 0 ? 0 : t.hits / (t.hits + t.misses),
    }
  })
  // With --redis, clearing a tier reaches every replica through the bus, as the seed's one
  // process did for itself.
  app.delete('/cache/l1', { config: management }, async (request) => {
    const cache = await api(request)
    if (ctx.options.memoryEntries > 0) await cache.clear({ tier: 'memory' })
    return { success: true, cleared: 'l1' }
  })
  app.delete('/cache/l2', { config: management }, async (request) => {
    const cache = await api(request)
    // The namespace's own options: its Redis may come from --redis, the config file or the environment.
    if (cache.options.redis === undefined)
      return { success: true, cleared: 'l2', note: 'no shared tier is configured (--redis): nothing to clear' }
    await cache.clear({ tier: 'redis' })
    return { success: true, cleared: 'l2' }
  })
  app.delete('/cache/all', { config: management }, async (request) => {
    await (await api(request)).clear()
    return { success: true, cleared: 'all' }
  })
  // It zeroes the server's counters of every protocol: server tokens only.
  app.post('/cache/stats/reset', { config: { access: 'write', protocol: 'api' } }, async (request) => {
    ctx.metrics.reset()
    ;(await api(request)).resetStats() // the l2 figures come from the namespace's own counters
    return { success: true }
  })
}
