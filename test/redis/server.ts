/**
 * A real redis-server for a test file: started on a free loopback port with persistence off,
 * stopped (SIGKILL if it lingers) in after(). Tests that need a dead, paused or restarted
 * server do it to this one.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { after } from 'node:test'

export function redisAvailable(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

export class RedisServer {
  proc: ChildProcess | undefined
  readonly port: number
  readonly dir: string
  readonly extra: string[]

  constructor(port: number, extra: string[] = []) {
    this.port = port
    this.extra = extra
    this.dir = mkdtempSync(path.join(tmpdir(), 'larder-redis-'))
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start(): Promise<void> {
    this.proc = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
        '--protected-mode',
        'no',
        ...this.extra,
      ],
      { stdio: 'ignore' },
    )
    const proc = this.proc
    for (let i = 0; i < 200; i++) {
      // Our server died (the port was taken between freePort() and its bind), or another
      // test file's server answers on this port: either way, not ours to use.
      if (proc.exitCode !== null || proc.signalCode !== null) throw new PortTaken(this.port)
      if (this.ping()) {
        if (this.cli('INFO', 'server').includes(`process_id:${proc.pid}\r`)) return
        await this.kill()
        throw new PortTaken(this.port)
      }
      await delay(25)
    }
    throw new Error(`redis-server on port ${this.port} did not start`)
  }

  /** Sends a command with redis-cli (with the server's `--requirepass`, if it has one); its output. */
  cli(...args: string[]): string {
    const at = this.extra.indexOf('--requirepass')
    const auth = at < 0 ? [] : ['-a', this.extra[at + 1]!, '--no-auth-warning']
    return execFileSync('redis-cli', ['-p', String(this.port), ...auth, ...args], { encoding: 'utf8' }).trim()
  }

  ping(): boolean {
    try {
      return this.cli('PING') === 'PONG'
    } catch {
      return false
    }
  }

  /** SIGKILL, and waits until it is gone. */
  async kill(): Promise<void> {
    const proc = this.proc
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const gone = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGKILL')
    await gone
  }

  async stop(): Promise<void> {
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A port freePort() found free was taken before redis-server bound it (test files run two
 *  at a time, each picking ports): seen in CI as another file's server answering the PING,
 *  then going away with that file, and every command of this one refused. */
export class PortTaken extends Error {
  constructor(port: number) {
    super(`port ${port} was taken before redis-server bound it`)
  }
}

/** The server `make` gives (on ports freePort() found), started; while a port is taken
 *  before redis-server binds it (PortTaken: its own, a TLS port, a cluster's bus port at
 *  +10000), another server from `make`, up to 5 in all. */
export async function startOnFreePorts(make: () => Promise<RedisServer>): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    const server = await make()
    try {
      await server.start()
      return server
    } catch (error) {
      await server.stop()
      if (!(error instanceof PortTaken) || attempt === 5) throw error
    }
  }
}

/** A started server on a free port (another tried if the first is taken meanwhile), stopped
 *  when the test file ends. */
export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const server = await startOnFreePorts(async () => new RedisServer(await freePort(), extra))
  after(() => server.stop())
  return server
}

/** Polls `check` until it holds (every 5 ms, at most `ms`); whether it did. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await delay(5)
  }
}
