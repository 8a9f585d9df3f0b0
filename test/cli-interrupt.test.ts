/**
 * Ctrl-C at any moment of a run: exit 130 and, with --json, stdout's one JSON document
 * (README, Command line). The commands take hundreds of milliseconds to load on a busy
 * machine; an interrupt then used to kill the bin with nothing printed. These tests hold the
 * loading of the commands (a module hook delays the child's first import of commander, which
 * only the commands use, and tells the test on fd 3 when it began) and interrupt the child
 * while it loads: at once, and after a short delay.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Larder } from '../src/index.ts'
import { eventually } from './eventually.ts'

const BIN = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), 'dist', 'cli.js')
let work = ''
let cacheDir = ''
let preload = ''

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'larder-cli-interrupt-'))
  cacheDir = path.join(work, 'cache')
  const cache = await Larder.open({ dir: cacheDir, maintenance: false })
  await cache.setMany(Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: { i } })))
  await cache.close()
  const hooks = path.join(work, 'hold-commands.mjs')
  await writeFile(
    hooks,
    `import { writeSync } from 'node:fs'
let held = false
export async function resolve(specifier, context, next) {
  if (specifier === 'commander' && !held) {
    held = true
    writeSync(3, 'loading\\n')
    await new Promise((resolve) => setTimeout(resolve, 3000))
  }
  return next(specifier, context)
}
`,
  )
  preload = path.join(work, 'register.mjs')
  await writeFile(preload, `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)
})

after(async () => {
  await rm(work, { recursive: true, force: true })
})

interface Ending {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs the bin with its commands' loading held, and sends `signal` `delay` ms after the
 *  loading began. */
function interruptWhileLoading(args: string[], signal: NodeJS.Signals, delay: number): Promise<Ending> {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LARDER_')))
    const child = spawn(process.execPath, ['--import', pathToFileURL(preload).href, BIN, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
    ;(child.stdio[3] as Readable).once('data', () => {
      if (delay === 0) child.kill(signal)
      else setTimeout(() => child.kill(signal), delay)
    })
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

/** On Node 22 and later the main thread waits, blocked, while a `module.register` hook
 *  answers (seen on 24.21: no timer fires and no signal is heard during the hold), so the hold
 *  cannot show a signal heard while the commands load there; on Node 20 the hooks answer on
 *  their own thread and the main thread's event loop runs meanwhile, as in a real load. */
const holdBlocks = Number(process.versions.node.split('.')[0]) >= 22
const skip = holdBlocks ? 'a module hook blocks the main thread while it holds the load (Node >= 22)' : false

describe('an interrupt while the commands load', { timeout: 60_000 }, () => {
  for (const delay of [0, 150]) {
    test(`SIGINT ${delay === 0 ? 'at once' : `after ${delay} ms`}: exit 130 and one JSON document, ERR_ABORTED`, { skip }, async () => {
      const run = await interruptWhileLoading(['prune', '--max-entries', '100', '--dir', cacheDir, '--json'], 'SIGINT', delay)
      assert.equal(run.code, 130, `killed by ${run.signal}; stdout: ${run.stdout}; stderr: ${run.stderr}`)
      const document = JSON.parse(run.stdout) as { error: { code: string; message: string } }
      assert.equal(document.error.code, 'ERR_ABORTED')
      assert.equal(typeof document.error.message, 'string')
    })
  }

  test('SIGTERM is an interrupt too; without --json, exit 130 and one line on stderr', { skip }, async () => {
    const run = await interruptWhileLoading(['verify', '--dir', cacheDir], 'SIGTERM', 0)
    assert.equal(run.code, 130, `killed by ${run.signal}; stderr: ${run.stderr}`)
    assert.equal(run.stdout, '')
    assert.equal(run.stderr, 'larder: interrupted\n')
  })

  test('nothing was pruned: the run ended before the command began', async () => {
    const cache = await Larder.open({ dir: cacheDir, readOnly: true })
    assert.equal((await cache.entries()).length, 200)
    await cache.close()
  })
})

/** The temp files of entries being written in the cache (`<name>.<pid>-<n>.tmp`). */
async function tempFiles(): Promise<string[]> {
  return (await readdir(cacheDir, { recursive: true })).filter((name) => name.endsWith('.tmp'))
}

describe('an interrupt while a command works on the open cache', { timeout: 60_000 }, () => {
  test('SIGTERM during a set from a pipe: exit 130, ERR_ABORTED, nothing stored, no temp file left', async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LARDER_')))
    const child = spawn(process.execPath, [BIN, 'set', '--dir', cacheDir, 'piped', '--json'], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.stdin.on('error', () => {}) // the run may be gone when the pipe ends below
    const closed = new Promise<Ending>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
    child.stdin.write(Buffer.alloc(64 * 1024, 1))
    await eventually(async () => (await tempFiles()).length > 0, 'the set began writing its entry', 30_000)
    child.kill('SIGTERM')
    // The same signal kills the producer of a pipe (Ctrl-C on a terminal, a cancelled CI job),
    // whose end must not then be taken for the value's: the run ends before the pipe does.
    const ended = await Promise.race([closed, delay(10_000).then(() => undefined)])
    child.stdin.end()
    const run = ended ?? (await closed)
    assert.equal(run.code, 130, `killed by ${run.signal}; stdout: ${run.stdout}; stderr: ${run.stderr}`)
    assert.equal((JSON.parse(run.stdout) as { error: { code: string } }).error.code, 'ERR_ABORTED')
    assert.equal(run.stderr, 'larder: interrupted\n') // with --json too, as every failure's one line
    const cache = await Larder.open({ dir: cacheDir, readOnly: true })
    assert.equal(await cache.has('piped'), false)
    await cache.close()
    assert.deepEqual(await tempFiles(), [])
  })
})
