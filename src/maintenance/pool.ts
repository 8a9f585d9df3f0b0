import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { Piscina } from 'piscina'
import type { TaskInput } from './worker.js'

/**
 * The cache's worker pool, started lazily: no thread exists until the first maintenance
 * task, and a worker idle for a second exits. Piscina unrefs idle workers, so the pool never
 * keeps the process alive; `destroy()` (from `close()`) ends it at once.
 */
const IDLE_MS = 1000

/** The worker script: the built `maintenance-worker.js` beside the bundle, or the source
 *  file when larder runs from its TypeScript sources (its tests). */
function workerFile(): string {
  const here = import.meta.url
  return fileURLToPath(new URL(here.endsWith('.ts') ? './worker.ts' : './maintenance-worker.js', here))
}

export class MaintenancePool {
  readonly #threads: number
  #pool: Piscina | undefined
  /** The rejections of the tasks in flight, failed together if a thread cannot start. */
  readonly #waiting = new Set<(error: unknown) => void>()

  constructor(threads: number) {
    this.#threads = threads
  }

  run<T>(input: TaskInput, options: { signal?: AbortSignal; transfer?: ArrayBuffer[] } = {}): Promise<T> {
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
