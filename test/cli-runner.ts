/** Runs larder's built bin in a child process, as an operator's shell would. */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
  text: string
}

export interface RunOptions {
  input?: Buffer | string
  env?: Record<string, string>
  cwd?: string
  /** Kill the child (SIGKILL: a thread blocked in a syscall ignores SIGTERM's handler) after
   *  this many ms; the run then ends with `signal: 'SIGKILL'`. */
  killAfter?: number
}

/** Runs `bin` with `args`; stdin from `input` (or nothing); no LARDER_* variable but those
 *  given leaks in from the test's own environment. */
export function runBin(bin: string, args: string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LARDER_')))
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...env, ...options.env },
      cwd: options.cwd ?? repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.on('error', reject)
    const timer = options.killAfter === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.killAfter)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stdout = Buffer.concat(out)
      resolve({ code, signal, stdout, stderr: err, text: stdout.toString() })
    })
    child.stdin.end(options.input ?? '')
  })
}
