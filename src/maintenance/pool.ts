import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TransferListItem } from 'node:worker_threads'
import type { Piscina } from 'piscina'
import type { TaskInput } from './worker.js'

/**
 * The cache's worker pool, started lazily: no thread exists until the first maintenance
 * task, and a worker idle for a second exits. Piscina unrefs idle workers, so the pool never
 * keeps the process alive; `destroy()` (from `close()`) ends it at once.
 */
const IDLE_MS = 1000

/** The worker script: the built `maintenance-worker.js` beside the bundle, or, when larder
 *  runs from its TypeScript sources (its tests), the source file, or the build the test
 *  command names (builtWorker). */
function workerFile(): string {
  const here = import.meta.url
  if (!here.endsWith('.ts')) return fileURLToPath(new URL('./maintenance-worker.js', here))
  return builtWorker() ?? fileURLToPath(new URL('./worker.ts', here))
}

/**
 * Tests only: the worker compiled from these sources, named by `LARDER_TEST_BUILT_WORKER` (the
 * test command compiles them into .test-build/ first and sets it). A thread loading the source
 * file compiles it through tsx, ~0.4 s of CPU a thread against ~0.08 s compiled, and the suite
 * starts hundreds of pools. Used only if it is newer than every source file, so a test run
 * after an edit without a compile never runs an old worker. Looked at once per process.
 */
let built: string | null | undefined
function builtWorker(): string | undefined {
  if (built === undefined) {
    built = null
    const file = process.env.LARDER_TEST_BUILT_WORKER
    try {
      if (file !== undefined && file !== '') {
        const src = fileURLToPath(new URL('..', import.meta.url))
        const builtAt = fs.statSync(file).mtimeMs
        if (newestIn(src) <= builtAt) built = path.resolve(file)
      }
    } catch {
      // no build: the source file
    }
  }
  return built ?? undefined
}

function newestIn(dir: string): number {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs)
  }
  return newest
}

export class MaintenancePool {
  readonly #threads: number
  #pool: Piscina | undefined
  /** The rejections of the tasks in flight, failed together if a thread cannot start. */
  readonly #waiting = new Set<(error: unknown) => void>()

  constructor(threads: number) {
    this.#threads = threads
  }

  run<T>(input: TaskInput, options: { signal?: AbortSignal; transfer?: TransferListItem[] } = {}): Promise<T> {
    const pool = this.#started()
    return new Promise<T>((resolve, reject) => {
      this.#waiting.add(reject)
      ;(pool.run(input, { signal: options.signal, transferList: options.transfer }) as Promise<T>)
        .then(resolve, reject)
        .finally(() => this.#waiting.delete(reject))
    })
  }

  #started(): Piscina {
    if (this.#pool !== undefined) return this.#pool
    // piscina is loaded with the first task (~50 ms a cache or a CLI command without
    // maintenance work never pays).
    const pool = new (createRequire(import.meta.url)('piscina') as typeof import('piscina')).Piscina({
      filename: workerFile(),
      minThreads: 0,
      maxThreads: this.#threads,
      idleTimeout: IDLE_MS,
    })
    // A thread that cannot start (the worker file missing from a build, say) leaves the tasks
    // waiting for it queued forever, and its 'error' event, unheard, would be thrown into the
    // host. So the tasks fail with that error, and the next task starts a new pool.
    pool.on('error', (error: unknown) => {
      for (const reject of this.#waiting) reject(error)
      this.#waiting.clear()
      if (this.#pool === pool) this.#pool = undefined
      void pool.destroy().catch(() => {})
    })
    this.#pool = pool
    return pool
  }

  get threads(): number {
    return this.#pool?.threads.length ?? 0
  }

  async destroy(): Promise<void> {
    const pool = this.#pool
    this.#pool = undefined
    await pool?.destroy()
  }
}
