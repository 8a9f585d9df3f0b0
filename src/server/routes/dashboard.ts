import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { ServerContext } from '../context.js'
import { metricsDocument } from '../snapshot.js'
import { API_NAMESPACE } from './cache-api.js'

/**
 * The operator's page: `GET /` serves `dashboard/index.html`, its script and style come from
 * `/dashboard/…`, all from the package (no CDN, nothing fetched from elsewhere), and it polls
 * `GET /dashboard/data` (the figures of `/api/cache/metrics` plus the last prunes and the
 * hit-rate history). The page itself holds no data, so it needs no token; its data does when
 * the server has tokens (the page asks for one and keeps it in the tab's sessionStorage).
 *
 * The assets sit beside this module: `src/server/dashboard/` when run from source,
 * `dist/dashboard/` (copied by `npm run build`) beside the bundled `dist/cli.js`.
 */
const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
}

function assetDir(): URL {
  const here = new URL('.', import.meta.url)
  // From source this module is src/server/routes/; bundled, everything is one file in dist/.
  return here.pathname.endsWith('/routes/') ? new URL('../dashboard/', here) : new URL('./dashboard/', here)
}

export function dashboardRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const dir = assetDir()
  const files = new Map(Object.entries(ASSETS).map(([name, type]) => [name, { type, body: readFileSync(new URL(name, dir)) }]))
  // The page as a server with tokens serves it: it then asks for a token before its first
  // request for the figures, instead of learning it from a 401 (an error in the console).
  const index = files.get('index.html')!
  const tokenPage = { ...index, body: Buffer.from(index.body.toString('utf8').replace('<body>', '<body data-token="required">')) }
  const send = (name: string) => async (_request: unknown, reply: import('fastify').FastifyReply) => {
    const file = name === 'index.html' && ctx.tokens.required ? tokenPage : files.get(name)!
    return reply
      .header('content-type', file.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(file.body)
  }
  const page = { config: { access: 'public' as const } }
  app.get('/', page, send('index.html'))
  app.get('/dashboard/dashboard.js', page, send('dashboard.js'))
  app.get('/dashboard/dashboard.css', page, send('dashboard.css'))

  app.get('/dashboard/data', { config: { access: 'read' } }, async () => {
    const api = await ctx.namespaces.get(API_NAMESPACE, 'api')
    const s = await api.stats()
    const metrics = await metricsDocument(ctx.metrics, ctx.namespaces, s, ctx.options.memoryEntries)
    return { metrics, prunes: ctx.metrics.prunes, history: [...ctx.metrics.history, ctx.metrics.sample()] }
  })
}
