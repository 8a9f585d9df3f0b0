import { Command, InvalidArgumentError, Option } from 'commander'
import { booleanOptions, collect, countArgument, sizeArgument, timerDurationArgument } from '../arguments.js'
import { isLarderError } from '../../errors.js'
import { CliContext, CliFailure, EXIT } from '../context.js'
import { answerInterrupts } from '../early-interrupt.js'
import type { LarderOptions } from '../../options.js'
import { ServeCredentials } from '../serve-credentials.js'
import { TokensFileError } from '../../server/tokens-file.js'
import { writeDocument } from '../output.js'

/**
 * `larder serve`: the cache over HTTP for build tools (Turborepo, Nx, ccache, Bazel),
 * applications (the cache API) and operators (metrics, dashboard). The server itself is in
 * src/server/ (loaded only by this command). Its first line on stdout is exactly
 * `larder listening on http://HOST:PORT`, with the port it got for `--port 0` (with `--json`,
 * stdout is one JSON document of the start, its URL in `listening`, and the later lines go to
 * stderr). SIGINT or SIGTERM stops it in order: no new connections, requests in flight
 * finished (bounded), every namespace closed, exit 0.
 */
interface ServeFlags {
  host: string
  port: number
  token?: string[]
  readToken?: string[]
  namespaceToken?: string[]
  namespaceReadToken?: string[]
  tokensFile?: string
  tlsCert?: string
  tlsKey?: string
  maxSize?: number
  maxBody?: number
  origin?: string
  redis?: string
  dashboard: boolean
  memoryEntries?: number
  defaultTtl?: number
  rateLimit?: number
  idleTimeout?: number
  maxTeams?: number
  logRequests?: boolean
  watchConfig: boolean
}

function portArgument(value: string): number {
  const port = countArgument(value)
  if (port > 65535) throw new InvalidArgumentError('not a port: use 0 (any free port) to 65535')
  return port
}

/** `--max-body`: fastify takes a whole number of bytes, at least 1 (0 or 0.5 stopped the
 *  server at start with fastify's own error, exit 1). */
function bodyLimitArgument(value: string): number {
  const bytes = sizeArgument(value)
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new InvalidArgumentError('a whole number of bytes, at least 1')
  return bytes
}

/** `--max-teams`: at least 1 (0 started a server whose every team upload was a 507). */
function teamsArgument(value: string): number {
  const teams = countArgument(value)
  if (teams < 1) throw new InvalidArgumentError('at least 1')
  return teams
}

function urlArgument(value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new InvalidArgumentError('not a URL: use http://host:port/path or https://…')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('not an http(s) URL')
  return value
}

/**
 * The shared tier's URL: `--redis` (or `LARDER_REDIS_URL`), else the seed service's
 * `REDIS_URL`; the seed's `REDIS_PASSWORD` and `REDIS_DB` fill in what the URL leaves out. No
 * URL, no shared tier (`REDIS_PASSWORD` or `REDIS_DB` alone turn nothing on).
 */
export function redisUrlFrom(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const given = flag ?? (env.REDIS_URL === undefined || env.REDIS_URL === '' ? undefined : env.REDIS_URL)
  if (given === undefined) return undefined
  const source = flag !== undefined ? '--redis (LARDER_REDIS_URL)' : 'REDIS_URL'
  let url: URL
  try {
    url = new URL(given)
  } catch {
    throw new CliFailure(`${source} is not a URL: expected redis://[user:password@]host:port[/db]`, EXIT.usage)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw new CliFailure(`${source} must be a redis:// or rediss:// URL`, EXIT.usage)
  const password = env.REDIS_PASSWORD
  // Percent-encoded whole: the URL setter leaves a `%` as it is, which the client then decodes
  // (`abc%41` became `abcA`; a lone `%` failed every command).
  if (password !== undefined && password !== '' && url.password === '') url.password = encodeURIComponent(password)
  const db = env.REDIS_DB
  if (db !== undefined && db !== '' && (url.pathname === '' || url.pathname === '/')) {
    if (!/^\d{1,5}$/.test(db)) throw new CliFailure('REDIS_DB must be a database number (0, 1, …)', EXIT.usage)
    url.pathname = `/${db}`
  }
  return url.toString()
}

/** A Redis URL as it may be shown: host, port and database, never the credentials. */
export function redisForDisplay(url: string): string {
  const u = new URL(url)
  return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`
}

/** The startup line's part naming the cache API's shared tier (from --redis, the config file
 *  or the environment), credentials never shown; nothing without one. */
function sharedTierShown(redis: LarderOptions['redis']): string | undefined {
  if (redis === undefined) return undefined
  if (typeof redis === 'string') return redisForDisplay(redis)
  if (redis.url !== undefined) return redisForDisplay(redis.url)
  return redis.cluster !== undefined ? 'a Redis Cluster' : 'the Redis client given'
}

export function serveCommand(): Command {
  const [dashboard, noDashboard] = booleanOptions('--dashboard', 'the dashboard page at /', 'LARDER_DASHBOARD', true)
  const [logRequests, noLogRequests] = booleanOptions(
    '--log-requests',
    'one line per request on stderr (method, path, status, time; never a header or token)',
    'LARDER_LOG_REQUESTS',
  )
  return new Command('serve')
    .description(
      'serve the cache over HTTP: Turborepo (v8), Nx (self-hosted), ccache and Bazel, the cache API, Prometheus metrics and a dashboard',
    )
    .addOption(
      new Option(
        '--tokens-file <path>',
        'tokens from a file, one a line: "write|read [namespace] <token>"; read again on SIGHUP and when it changes',
      ).env('LARDER_TOKENS_FILE'),
    )
    .addOption(
      new Option('--tls-cert <path>', 'serve HTTPS with this certificate (PEM, chain after it); with --tls-key').env('LARDER_TLS_CERT'),
    )
    .addOption(new Option('--tls-key <path>', "the certificate's private key (PEM); both are read again on SIGHUP").env('LARDER_TLS_KEY'))
    .addOption(
      new Option('--host <host>', 'the address to listen on; without a token only a loopback address is allowed')
        .env('LARDER_HOST')
        .default('127.0.0.1'),
    )
    .addOption(
      new Option('--port <port>', 'the port (0: any free port, printed on the first line)')
        .env('LARDER_PORT')
        .argParser(portArgument)
        .default(4000),
    )
    .option('--token <token>', 'a token that may read and write; repeatable (env: LARDER_TOKEN, comma-separated)', collect)
    .option('--read-token <token>', 'a token that may only read; repeatable (env: LARDER_READ_TOKEN, comma-separated)', collect)
    .option(
      '--namespace-token <namespace=token>',
      'a token that may read and write one namespace only (turbo:<team>, nx:<team>, nx, ccache, bazel, api); repeatable (env: LARDER_NAMESPACE_TOKENS, comma-separated)',
      collect,
    )
    .option(
      '--namespace-read-token <namespace=token>',
      'a token that may only read one namespace; repeatable (env: LARDER_NAMESPACE_READ_TOKENS, comma-separated)',
      collect,
    )
    .addOption(
      new Option('--max-size <size>', 'the size budget of each namespace (one per tool and team), kept by pruning')
        .env('LARDER_MAX_SIZE')
        .argParser(sizeArgument),
    )
    .addOption(
      new Option('--max-body <size>', 'the largest upload accepted; larger ones answer 413 (default 1GiB)')
        .env('LARDER_MAX_BODY')
        .argParser(bodyLimitArgument),
    )
    .addOption(
      new Option(
        '--redis <url>',
        'the shared tier of the cache API (redis://[user:password@]host:port[/db]); replicas with the same one share values and invalidations (env also: REDIS_URL, REDIS_PASSWORD, REDIS_DB)',
      ).env('LARDER_REDIS_URL'),
    )
    .addOption(
      new Option('--origin <url>', 'read-through origin: a miss on GET /api/cache/:key fetches <url>/<key>')
        .env('LARDER_ORIGIN')
        .argParser(urlArgument),
    )
    .addOption(dashboard)
    .addOption(noDashboard)
    .option('--no-watch-config', 'reload the config file on SIGHUP only, not when it changes')
    .addOption(
      new Option('--memory-entries <n>', "entries in the cache API's memory tier; 0 turns it off (default 10000)")
        .env('CACHE_L1_MAX_ENTRIES')
        .argParser(countArgument),
    )
    .addOption(
      new Option('--default-ttl <seconds>', 'ttl of cache API values stored without one; 0 = never (default 0)')
        .env('CACHE_DEFAULT_TTL')
        .argParser(countArgument),
    )
    .addOption(
      new Option(
        '--max-teams <n>',
        'team namespaces (turbo:<team>, nx:<team>) open at once; past it the idle one used least recently is closed (default 256)',
      )
        .env('LARDER_MAX_TEAMS')
        .argParser(teamsArgument),
    )
    .addOption(
      new Option('--rate-limit <n>', 'requests per minute from one client address; 0: no limit (default 60000)')
        .env('LARDER_RATE_LIMIT')
        .argParser(countArgument),
    )
    .addOption(
      new Option(
        '--idle-timeout <duration>',
        'close a connection that sends and takes nothing for this long (a stalled upload); 0: never (default 30s)',
      )
        .env('LARDER_IDLE_TIMEOUT')
        .argParser(timerDurationArgument),
    )
    .addOption(logRequests)
    .addOption(noLogRequests)
    .action(async (flags: ServeFlags, command: Command) => {
      const ctx = new CliContext(command)
      // A flag given to serve is a mistake; the application's LARDER_NAMESPACE left in the
      // environment (or exported for `larder stats`) is not: it is ignored, as the config
      // file's namespace is, and said once.
      const namespaceSource = command.parent?.getOptionValueSource('namespace')
      if (namespaceSource === 'cli')
        throw new CliFailure('serve keeps one namespace per tool and team; --namespace does not apply', EXIT.usage)
      if (namespaceSource === 'env')
        process.stderr.write('larder: LARDER_NAMESPACE is ignored: serve keeps one namespace per tool and team\n')
      ctx.checkDir('create')
      const { configuredServe, applyToNamespaces, watchConfigFile } = await import('../../server/config-reload.js')
      const configured = await configuredServe(ctx.dir, flags).catch((error: unknown) => {
        throw isLarderError(error) ? new CliFailure(error.message, EXIT.usage, error.code) : error
      })
      const { serveOptions, assertSafeBinding, serverUrl, UnsafeBindingError, isLoopback } = await import('../../server/options.js')
      const credentials = new ServeCredentials(flags)
      const { TlsFilesError } = await import('../../server/tls-files.js')
      let tokens, tls
      try {
        tokens = credentials.tokens()
        tls = await credentials.tls()
      } catch (error) {
        if (error instanceof TokensFileError) throw new CliFailure(`--tokens-file: ${error.message}`, EXIT.usage)
        if (error instanceof TlsFilesError) throw new CliFailure(error.message, EXIT.usage)
        throw error
      }
      const options = serveOptions({
        tls,
        dir: ctx.dir,
        host: flags.host,
        port: flags.port,
        ...tokens,
        maxSize: configured.maxSize,
        memoryEntries: configured.memoryEntries,
        defaultTtl: configured.defaultTtl,
        cacheOptions: configured.cacheOptions,
        origin: flags.origin,
        redis: redisUrlFrom(flags.redis, process.env),
        dashboard: flags.dashboard,
        logRequests: flags.logRequests === true,
        ...(flags.maxBody === undefined ? {} : { maxBody: flags.maxBody }),
        ...(flags.rateLimit === undefined ? {} : { rateLimit: flags.rateLimit }),
        ...(flags.idleTimeout === undefined ? {} : { idleTimeout: flags.idleTimeout }),
        ...(flags.maxTeams === undefined ? {} : { maxTeams: flags.maxTeams }),
      })
      if (options.origin !== undefined) {
        const { originProblem } = await import('../../server/origin.js')
        const problem = originProblem(options.origin)
        if (problem !== undefined) throw new CliFailure(`--origin: ${problem}`, EXIT.usage)
      }
      try {
        assertSafeBinding(options)
      } catch (error) {
        if (error instanceof UnsafeBindingError) throw new CliFailure(error.message, EXIT.usage)
        throw error
      }
      const { createServer } = await import('../../server/app.js')
      const { Namespaces } = await import('../../server/namespaces.js')
      // What larder accepts may still not open beside what the server chooses for a namespace
      // (a compression level where artifacts are stored as they come): said now, not at the
      // first upload.
      try {
        new Namespaces(options, () => {}).checkOptions()
      } catch (error) {
        throw new CliFailure(`configuration: ${(error as Error).message}`, EXIT.usage)
      }
      const server = await createServer(options)
      let address: { host: string; port: number }
      try {
        address = await server.listen()
      } catch (error) {
        await server.close().catch(() => {})
        const code = (error as { code?: string }).code
        throw new CliFailure(
          `cannot listen on ${options.host}:${options.port}: ${code === 'EADDRINUSE' ? 'the port is in use' : (error as Error).message}`,
        )
      }
      const url = serverUrl(address.host, address.port, tls !== undefined)
      const notes: string[] = []
      if (options.tokens.length + options.readTokens.length + options.namespaceTokens.length === 0) {
        notes.push(
          `no token given: serving this machine only (${isLoopback(address.host) ? 'loopback' : address.host}); pass --token to serve others`,
        )
      }
      const sharedTier = sharedTierShown(options.redis ?? configured.cacheOptions.redis)
      const dashboard = options.dashboard ? `${url}/` : undefined
      if (ctx.json) {
        // --json: stdout is one JSON document, the start; what follows (reloads) goes to stderr.
        const config = configured.configFile ?? null
        writeDocument({
          listening: url,
          cache: options.dir,
          sharedTier: sharedTier ?? null,
          dashboard: dashboard ?? null,
          config,
          notes: [...notes, ...credentials.lines()],
        })
      } else {
        const lines = [`larder listening on ${url}`, ...notes]
        lines.push(
          `cache ${options.dir}${sharedTier === undefined ? '' : `; shared tier ${sharedTier}`}${dashboard === undefined ? '' : `; dashboard at ${dashboard}`}`,
        )
        if (configured.configFile !== undefined) lines.push(`config ${configured.configFile}`)
        lines.push(...credentials.lines())
        // One write, so a reader of the first line has the others too.
        process.stdout.write(lines.join('\n') + '\n')
      }
      const say = (line: string): void => void (ctx.json ? process.stderr : process.stdout).write(`${line}\n`)
      // Reloads, one at a time: SIGHUP, or the file changed (debounced).
      let reloading = Promise.resolve()
      // The tokens file: all of it or nothing (a file that does not parse, or holds no token,
      // leaves the tokens as they were).
      const reloadTokens = (why: string): void => {
        if (credentials.tokensFile === undefined) return
        reloading = reloading.then(() => {
          try {
            const next = credentials.tokens()
            server.context.tokens.replace(next.tokens, next.readTokens, next.namespaceTokens)
            const count = next.tokens.length + next.readTokens.length + next.namespaceTokens.length
            say(`tokens reloaded (${why}): ${count} tokens`)
          } catch (error) {
            say(`tokens not reloaded (${why}): ${(error as Error).message}; the server keeps its tokens`)
          }
        })
      }
      const reload = (why: string): void => {
        reloading = reloading.then(async () => {
          try {
            const { configFile, ...next } = await configuredServe(ctx.dir, flags)
            // Checked whole before anything is taken: a file every namespace cannot open with
            // is not applied at all.
            new Namespaces({ ...options, ...next }, () => {}).checkOptions()
            // The cache API's memory tier cannot be turned on or off while it runs.
            const memorySwitch = next.memoryEntries > 0 !== options.memoryEntries > 0
            if (memorySwitch) next.memoryEntries = options.memoryEntries
            Object.assign(options, next)
            say(`config reloaded (${why}): ${configFile ?? 'no config file'}`)
            if (memorySwitch) say('config api: memory cannot change while the server runs; restart to apply it (kept as it was)')
            await applyToNamespaces(server.context.namespaces, say)
          } catch (error) {
            say(`config not reloaded (${why}): ${(error as Error).message}; the server keeps its configuration`)
          }
        })
      }
      // The certificate and key: a renewed pair is taken by connections made after it.
      const reloadTls = (): void => {
        if (tls === undefined) return
        reloading = reloading.then(async () => {
          try {
            server.setTls((await credentials.tls())!)
            say(`tls reloaded (SIGHUP): ${credentials.tlsFiles!.cert}`)
          } catch (error) {
            say(`tls not reloaded (SIGHUP): ${(error as Error).message}; the server keeps its certificate`)
          }
        })
      }
      const onHangup = (): void => {
        reloadTls()
        reloadTokens('SIGHUP')
        reload('SIGHUP')
      }
      process.on('SIGHUP', onHangup)
      const watcher =
        configured.configFile !== undefined && flags.watchConfig
          ? watchConfigFile(configured.configFile, () => reload('file changed'))
          : undefined
      const tokensWatcher =
        credentials.tokensFile !== undefined && flags.watchConfig
          ? watchConfigFile(credentials.tokensFile, () => reloadTokens('file changed'))
          : undefined
      // Listeners stay attached until the end: larder's exit hook (signal-exit) kills the
      // process on a signal when it sees no other listener, and a `once` listener is removed
      // before that check runs.
      let stop = (_signal: string): void => {}
      const stopping = new Promise<string>((resolve) => {
        stop = resolve
      })
      const onSignal = (signal: NodeJS.Signals): void => stop(signal)
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      const answered = answerInterrupts()
      const signal = await stopping
      watcher?.close()
      tokensWatcher?.close()
      process.off('SIGHUP', onHangup)
      await reloading
      process.stderr.write(`larder: ${signal}: stopping (finishing the requests in flight, closing the cache)\n`)
      await server.close()
      process.stderr.write('larder: stopped\n')
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      answered()
    })
}
