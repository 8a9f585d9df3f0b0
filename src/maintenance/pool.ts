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

  constructor(threads: number) {
    this.#threads = threads
  }

  run<T>(input: TaskInput, options: { signal?: AbortSignal; transfer?: ArrayBuffer[] } = {}): Promise<T> {
    // piscina is loaded with the first task (~50 ms a cache or a CLI command without
    // maintenance work never pays).
    this.#pool ??= new (createRequire(import.meta.url)('piscina') as typeof import('piscina')).Piscina({
      filename: workerFile(),
      minThreads: 0,
      maxThreads: this.#threads,
      idleTimeout: IDLE_MS,
    })
    return this.#pool.run(input, { signal: options.signal, transferList: options.transfer }) as Promise<T>
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
