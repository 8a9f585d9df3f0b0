import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after } from 'node:test'
import { childScript, runScript, repoRoot } from './children/shared.ts'

/** Every tempDir of this process not removed yet: removed at exit too. An `after` hook
 *  registered from inside a running test does not always run (hundreds of directories were
 *  left in /tmp by each run of the suite). */
const tempDirs = new Set<string>()
process.once('exit', () => {
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // a directory a test made unreadable to this user, or one still in use: left
    }
  }
})

/** A fresh directory under the OS temp dir, removed when the test file finishes. */
export function tempDir(label = 'larder'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`))
  tempDirs.add(dir)
  // Retried: an instance still open on it (closed in a later hook) may be removing a clear's
  // trash at that moment, and a directory emptied under rimraf's feet answers ENOTEMPTY.
  // Still failing (a worker of an instance left open still emptying a trash directory: seen
  // once in CI after a cluster test killed a master), it is left to the removal at exit: the
  // cleanup of a scratch directory is no result of the test.
  after(() => {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 })
      tempDirs.delete(dir)
    } catch {
      // removed at exit (above)
    }
  })
  return dir
}

/** Every file under `dir`, recursively, as paths relative to it. */
export function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath ?? (d as unknown as { path: string }).path, d.name)))
}

/** Entry files (named by a 16-hex-digit hash) under a cache directory. */
export function entryFiles(dir: string): string[] {
  return listFiles(dir)
    .filter((f) => /(^|\/)[0-9a-f]{16}$/.test(f) && !f.includes('/tags/'))
    .map((f) => path.join(dir, f))
}

/** What each of this process's open file descriptors leads to (Linux: /proc/self/fd). */
export function openFileTargets(): string[] {
  const targets: string[] = []
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      targets.push(fs.readlinkSync(`/proc/self/fd/${fd}`))
    } catch {
      // closed since it was listed (readdir's own)
    }
  }
  return targets
}

/**
 * Runs a script of test/children/ (through tsx) with `args`, and kills it (SIGKILL: a thread
 * blocked in a syscall, such as open() of a FIFO, ignores SIGTERM's handler) if it has not
 * exited after `killAfter` ms. Its exit code (null when killed), stdout and stderr.
 */
export async function runChildScript(
  name: string,
  args: string[],
  killAfter = 30_000,
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [...runScript(childScript(name)), ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfter)
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  clearTimeout(timer)
  return { code, out, err }
}

/** A loader the test releases: counts its calls, resolves to `value` (or rejects) on release. */
export function heldLoader(value: unknown): { loader: () => Promise<unknown>; calls: () => number; release: (error?: Error) => void } {
  let calls = 0
  let settle: ((error?: Error) => void) | undefined
  const gate = new Promise<void>((resolve, reject) => (settle = (error) => (error === undefined ? resolve() : reject(error))))
  return {
    loader: async () => {
      calls++
      await gate
      return value
    },
    calls: () => calls,
    release: (error) => settle!(error),
  }
}

/** `call()`'s promise, asserting it threw nothing at once: larder's promise-returning calls
 *  report every failure (a listener's too) as a rejection. */
export function calledWithoutThrowing<T>(call: () => Promise<T>, what = 'the call'): Promise<T> {
  let thrown: unknown
  let answer: Promise<T> | undefined
  try {
    answer = call()
  } catch (error) {
    thrown = error
  }
  assert.equal(thrown, undefined, `${what} threw nothing synchronously`)
  return answer!
}
