import type { Command } from 'commander'
import { Larder } from '../larder.js'
import { readBudget, type RecordedBudget } from '../maintenance/budget-record.js'
import { defaultCacheDir, resolveOptions } from '../options.js'
import { Layout } from '../store/layout.js'
import { loadHasher } from '../format/checksum.js'

/** The options every command shares, as commander parsed them. */
export interface GlobalOptions {
  dir?: string
  namespace?: string
  json?: boolean
  quiet?: boolean
}

/** Exit codes: 0 ok, 1 the work failed (or found what it looks for missing), 2 usage. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const

/** A failure the command already explained; `main` exits with `code` and prints `message`. */
export class CliFailure extends Error {
  constructor(message: string, readonly code: number = EXIT.failed) {
    super(message)
  }
}

/**
 * What a command needs: the parsed global options, how to print, and the cache. Human output
 * goes to stdout unless `--quiet`; with `--json`, stdout carries exactly one JSON document and
 * everything else (progress, notes) goes to stderr or nowhere.
 */
export class CliContext {
  readonly options: GlobalOptions

  constructor(command: Command) {
    this.options = command.optsWithGlobals<GlobalOptions>()
  }

  get json(): boolean {
    return this.options.json === true
  }

  get dir(): string {
    return this.options.dir ?? defaultCacheDir()
  }

  /** Progress bars only where a person watches: a terminal on stderr, not --json or --quiet. */
  get interactive(): boolean {
    return process.stderr.isTTY === true && !this.json && this.options.quiet !== true
  }

  /** Prints the human form, or the JSON form with --json. */
  print(human: () => string, json: () => unknown): void {
    if (this.json) process.stdout.write(JSON.stringify(json(), null, 2) + '\n')
    else if (this.options.quiet !== true) process.stdout.write(human() + '\n')
  }

  /**
   * Opens the cache for one command: failures are reported, not swallowed (`failOpen: false`),
   * and no automatic maintenance runs behind the command's back. The budget is the one given
   * on the command line, else the one the application recorded.
   */
  async open(budget: RecordedBudget = {}): Promise<Larder> {
    return Larder.open({
      dir: this.dir,
      namespace: this.options.namespace ?? '',
      failOpen: false,
      maintenance: false,
      ...(budget.maxSize !== undefined ? { maxSize: budget.maxSize } : {}),
      ...(budget.maxEntries !== undefined ? { maxEntries: budget.maxEntries } : {}),
      ...(budget.evictionPolicy === 'lru' || budget.evictionPolicy === 'lfu' || budget.evictionPolicy === 'fifo' ? { evictionPolicy: budget.evictionPolicy } : {}),
    })
  }

  /** The budget the application recorded in the cache, if any. */
  async recordedBudget(): Promise<RecordedBudget> {
    const options = resolveOptions({ dir: this.dir, namespace: this.options.namespace ?? '' })
    await loadHasher()
    return readBudget(new Layout(options.dir, options.namespace)) ?? {}
  }

  /** Runs `work` with the cache open, closing it however `work` ends. */
  async withCache<T>(work: (cache: Larder) => Promise<T>, budget?: RecordedBudget): Promise<T> {
    const cache = await this.open(budget)
    try {
      return await work(cache)
    } finally {
      await cache.close()
    }
  }
}
