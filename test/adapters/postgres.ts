/**
 * A throwaway PostgreSQL server for a test file: Debian's `postgresql` binaries (installed by
 * .ci/run), a new cluster in a temp dir run by the `postgres` user, listening on a free
 * loopback port only, with its socket in that dir; stopped and removed by `stop()`.
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Postgres {
  port: number
  stop(): Promise<void>
}

/** The newest installed server's bin directory, if any. */
function serverBin(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!fs.existsSync(root)) return undefined
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] === undefined ? undefined : path.join(root, versions[0], 'bin')
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Starts a cluster, or says why it cannot (then the caller skips with that message). */
export async function startPostgres(): Promise<Postgres | string> {
  const bin = serverBin()
  if (bin === undefined) return "PostgreSQL is not installed (.ci/run installs Debian's postgresql)"
  if (process.getuid?.() !== 0) return 'starting PostgreSQL as the postgres user needs root'
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-pg-'))
  const data = path.join(home, 'data')
  const as = async (command: string, args: string[]): Promise<void> => {
    await run('runuser', ['-u', 'postgres', '--', path.join(bin, command), ...args], { cwd: home, timeout: 60_000 })
  }
  try {
    fs.chmodSync(home, 0o700)
    fs.chownSync(home, Number((await run('id', ['-u', 'postgres'])).stdout), Number((await run('id', ['-g', 'postgres'])).stdout))
    await as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'])
    const port = await freePort()
    await as('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(home, 'log'),
      '-w',
      '-t',
      '60',
      '-o',
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${home} -c fsync=off`,
      'start',
    ])
    return {
      port,
      stop: async () => {
        await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {})
        fs.rmSync(home, { recursive: true, force: true })
      },
    }
  } catch (error) {
    const log = path.join(home, 'log')
    const detail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''
    fs.rmSync(home, { recursive: true, force: true })
    throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${detail}`, { cause: error })
  }
}
