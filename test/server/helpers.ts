import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after } from 'node:test'
import { createServer, type LarderServer } from '../../src/server/app.ts'
import { serveOptions, type ServeOptions } from '../../src/server/options.ts'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BIN = path.join(root, 'dist', 'cli.js')

export interface Running {
  url: string
  server: LarderServer
  dir: string
  /** What the server logged (stderr lines, in order). */
  logs: string[]
  /** An arrow function (no `this`): tests destructure it. */
  close: () => Promise<void>
}

/** A server in this process on a free loopback port, over a fresh cache directory; stopped
 *  when the test file ends (or earlier by `close`). */
export async function startServer(options: Partial<ServeOptions> = {}): Promise<Running> {
  // The server closes before its directory is removed (after-hooks run in the order they
  // were registered): one hook does both. A directory given by the caller is the caller's.
  const own = options.dir === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), 'larder-serve-')) : undefined
  const dir = options.dir ?? path.join(own!, 'cache')
  const logs: string[] = []
  const server = await createServer(serveOptions({ port: 0, rateLimit: 0, ...options, dir }), (line) => logs.push(line))
  const { port } = await server.listen()
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await server.close()
  }
  after(async () => {
    await close()
    if (own !== undefined) fs.rmSync(own, { recursive: true, force: true })
  })
  return { url: `http://127.0.0.1:${port}`, server, dir, logs, close }
}

export interface CliServer {
  url: string
  child: ChildProcess
  /** stdout lines so far. */
  stdout: string[]
  stderr: () => string
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
  exited: Promise<number | null>
}

/** `larder serve` as a real process; resolves once its first line is out (or it exits). */
export async function startCli(args: string[], env: Record<string, string> = {}, cwd = root): Promise<CliServer> {
  // (A test that gives it a tempDir() stops it in its body: that dir's hook ran first.)
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LARDER_') && !k.startsWith('CACHE_')))
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...clean, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  const stdout: string[] = []
  let err = ''
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const first = await new Promise<string | undefined>((resolve) => {
    let buffered = ''
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop()!
      for (const line of lines) {
        stdout.push(line)
        if (stdout.length === 1) resolve(line)
      }
    })
    void exited.then(() => resolve(undefined))
  })
  const url = first?.match(/^larder listening on (https?:\/\/\S+)$/)?.[1] ?? ''
  return {
    url,
    child,
    stdout,
    stderr: () => err,
    exited,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal)
      return exited
    },
  }
}

/** Every file under `dir` whose name marks a temp file being (or left) written. */
export function tempFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.tmp$/.test(f))
}

/** An error answer's body (every route's, but nx's plain text). */
export interface ErrorAnswer {
  error: { code: string; message: string }
}

/** A `/api/cache/...` answer: a read, a write or a delete (the fields the tests look at). */
export interface CacheAnswer {
  success?: boolean
  hit?: boolean
  value?: unknown
  source?: string
  cached_at: string
  /** null for an entry that never expires; the tests that parse it stored theirs with a ttl. */
  expires_at: string
  deleted?: boolean
}

/** `/api/cache/metrics` (and the dashboard's copy of it). */
export interface MetricsAnswer {
  hits: number
  misses: number
  hit_rate: number
  sets: number
  deletes: number
  evictions: number
  l1_size: number
  l2_hits: number
  l2_misses: number
  l2_errors: number
  origin_fetches: number
  l2: { enabled: boolean }
  protocols: Record<'turbo' | 'nx' | 'ccache' | 'bazel' | 'api', { hits: number; misses: number }>
  total: { entries: number; size_bytes: number; bytes_in: number; bytes_out: number }
  namespaces: { name: string }[]
}

/** `/cache/stats`. */
export interface StatsAnswer {
  hits: number
  l1: { entries: number }
  l2: { enabled: boolean; hits: number }
  file: { entries: number }
}

/** `/readyz`. */
export interface ReadyAnswer {
  status: string
  disk: string
  redis?: string
}

/** `fetch` that never throws for a status, with the body read as text; `json<T>()` parses it as the shape the caller expects. */
export async function call(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; text: string; json: <T>() => T }> {
  const response = await fetch(url, init)
  const text = await response.text()
  return { status: response.status, headers: response.headers, text, json: <T>() => JSON.parse(text) as T }
}

/** The sum of the series of GET /metrics whose name and labels begin with `prefix`
 *  (`larder_cache_hits_total{protocol="api"`: every tier's); 0 when there is none yet. */
export async function metric(url: string, prefix: string): Promise<number> {
  const lines = (await call(`${url}/metrics`)).text.split('\n').filter((l) => l.startsWith(prefix))
  return lines.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0)
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** The shared poll (test/eventually.ts), re-exported so the server tests keep importing it from here. */
export { eventually } from '../eventually.ts'
