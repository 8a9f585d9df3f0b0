/**
 * Parent side of the adapters' multi-process tests: a child is `node
 * test/adapters/children/<script> ...args` (compiled, or through tsx: `runScript`), run from the
 * repository root, that uses the real host library over a larder directory and prints one JSON
 * line with what it saw.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { repoRoot, runScript } from '../children/shared.ts'

const run = promisify(execFile)

/** Runs a child to completion and returns the JSON it printed last. */
export function runChild<T = Record<string, unknown>>(script: string, ...args: string[]): Promise<T> {
  return runChildWith<T>([], script, ...args)
}

/** runChild, with node's own flags before the script (`--max-old-space-size=32`). */
export async function runChildWith<T = Record<string, unknown>>(flags: string[], script: string, ...args: string[]): Promise<T> {
  const file = fileURLToPath(new URL(`./children/${script}`, import.meta.url))
  let stdout: string
  try {
    ;({ stdout } = await run(process.execPath, [...flags, ...runScript(file), ...args], {
      cwd: repoRoot,
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
    }))
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string }
    throw new Error(
      `child ${script} ${args.join(' ')} failed: ${e.message}\n--- stdout\n${e.stdout ?? ''}\n--- stderr\n${e.stderr ?? ''}`,
      { cause: error },
    )
  }
  const last = stdout.trim().split('\n').at(-1) ?? ''
  return JSON.parse(last) as T
}

/** The child side: prints the result as the one JSON line the parent reads. */
export function report(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
