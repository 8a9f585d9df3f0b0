import fs from 'node:fs'
import path from 'node:path'
import type { Command } from 'commander'
import { loadHasher } from '../format/checksum.js'
import { findConfigFile, loadConfigFile } from '../config/config-file.js'
import { holdsSealedEntries } from './sealed-sample.js'
import { layerOptions } from '../config/layered-options.js'
import { keysFromEnv } from '../crypto/keys.js'
import { LarderError } from '../errors.js'
import { Larder } from '../larder.js'
import { readBudget, type RecordedBudget } from '../maintenance/budget-record.js'
import { defaultCacheDir, isEvictionPolicy, resolveOptions, type LarderOptions } from '../options.js'
import { Layout } from '../store/layout.js'
import { foreignContents, isLarderCache, nonDirectoryAbove, tagReadFailure } from '../store/cache-root.js'
import { EXIT } from './exit-codes.js'
import { ago, count, size } from './format.js'
import { OutputClosed, stdoutClosed, writeDocument } from './output.js'

/** The options every command shares, as commander parsed them. */
export interface GlobalOptions {
  dir?: string
  namespace?: string
  json?: boolean
  quiet?: boolean
}

/** The config file of this run (found from the working directory up), loaded before a
 *  command runs (main.ts): its `dir` and `namespace` are the defaults of `--dir` and
 *  `--namespace`. */
let configured: { dir?: unknown; namespace?: unknown } = {}

export async function loadCliConfig(cwd = process.cwd()): Promise<void> {
  const file = findConfigFile(cwd)
  configured = file === undefined ? {} : (await loadConfigFile(file)).options
  // Checked here, as the library checks the file: a bad `dir` or `namespace` must stop the
  // command, not leave it to act on the default directory or namespace (a `clear --yes`).
  for (const [field, value] of [
    ['dir', configured.dir],
    ['namespace', configured.namespace],
  ] as const) {
    if (value === undefined || (typeof value === 'string' && (field === 'namespace' || value !== ''))) continue
    throw new LarderError(
      'ERR_INVALID_OPTION',
      `${path.basename(file!)}: ${field}: Invalid option "${field}": expected ${field === 'dir' ? 'a non-empty path' : 'a string'}, got ${JSON.stringify(value) ?? typeof value}`,
      { field },
    )
  }
}

/** What the CLI takes of the environment and the config file beyond `dir` and `namespace`:
 *  how entries are written and read (CliContext.entryOptions). */
const ENTRY_OPTIONS = [
  'defaultTtl',
  'compression',
  'compressionLevel',
  'compressThreshold',
  'streamCompression',
  'serializer',
  'maxValueSize',
  'durable',
  'shared',
  'encryption',
] as const

/** Exit codes: 0 ok, 1 the work failed (or found what it looks for missing), 2 usage. */
export { EXIT }

/**
 * A failure the command already explained: `main` prints `larder: <message>` on stderr, exits
 * with `exit`, and with --json writes `{ error: { code, message } }` unless the command already
 * wrote its document (a partial report).
 */
export class CliFailure extends Error {
  readonly exit: number
  /** A stable code for --json: a LarderError's, or the CLI's own (ERR_USAGE, ERR_NOT_FOUND,
   *  ERR_NOT_A_CACHE, ERR_CORRUPT, ERR_ABORTED). */
  readonly code: string

  constructor(message: string, exit: number = EXIT.failed, code: string = exit === EXIT.usage ? 'ERR_USAGE' : 'ERR_FAILED') {
    super(message)
    this.exit = exit
    this.code = code
  }
}

/**
 * How a command uses the cache:
 * - `read` (stats, ls, get, verify without --repair): opened `readOnly`, so nothing at all is
 *   written; the directory must already be a larder cache.
 * - `maintain` (prune, rm, clear, verify --repair): writes, but only into an existing cache.
 * - `preview` (prune --dry-run): opened `readOnly` as `read` is (nothing written, no lock
 *   taken), with the recorded budget as `maintain` has, so it reports what prune would remove.
 * - `create` (set, serve): may create a cache, where none is, or in an empty directory.
 * A folder that is not a larder cache is never marked as one (its CACHEDIR.TAG would make
 * `tar --exclude-caches` and other backup tools skip the folder's own files): the rule is
 * store/cache-root.ts's, which `Larder.open` follows too.
 */
export type CacheUse = 'read' | 'maintain' | 'preview' | 'create'

/** Where the budget a command works with came from. */
export interface Budget extends RecordedBudget {
  source: 'command line' | 'recorded' | 'none'
  /** The variables (LARDER_MAX_SIZE, LARDER_MAX_ENTRIES) a 'command line' budget was read from
   *  instead of its flags: an application's own variable, left set where a cron job runs. */
  variables?: string[]
}

/**
 * What a command needs: the parsed global options, how to print, and the cache. Human output
 * goes to stdout unless `--quiet`; with `--json`, stdout carries exactly one JSON document and
 * everything else (progress, notes) goes to stderr or nowhere.
 */
export class CliContext {
  readonly options: GlobalOptions
  readonly #command: Command

  constructor(command: Command) {
    this.#command = command
    const given = command.optsWithGlobals<GlobalOptions>()
    // Flags (and their variables) first, then the config file.
    this.options = {
      ...given,
      dir: given.dir ?? (typeof configured.dir === 'string' ? configured.dir : undefined),
      namespace: given.namespace ?? (typeof configured.namespace === 'string' ? configured.namespace : undefined),
    }
  }

  get json(): boolean {
    return this.options.json === true
  }

  get dir(): string {
    return path.resolve(this.options.dir ?? defaultCacheDir())
  }

  /** Progress bars only where a person watches: a terminal on stderr, not --json or --quiet. */
  get interactive(): boolean {
    return process.stderr.isTTY === true && !this.json && this.options.quiet !== true
  }

  /** Human output written as it comes (a long listing, a chunk at a time): nothing with --quiet
   *  or --json (whose one document goes through `print`). Resolves once stdout has taken the
   *  text, so a slow reader holds the command back instead of its output piling up in memory. */
  async write(text: string): Promise<void> {
    if (this.json || this.options.quiet === true) return
    // Its reader gone (`larder ls | head`), the listing stops: the run ends quietly (output.ts).
    if (stdoutClosed()) throw new OutputClosed()
    if (!process.stdout.write(text)) {
      // 'drain' never comes once the reader has gone: its 'close' ends the wait too.
      await new Promise<void>((resolve) => {
        const done = (): void => {
          process.stdout.off('drain', done)
          process.stdout.off('close', done)
          resolve()
        }
        process.stdout.once('drain', done)
        process.stdout.once('close', done)
      })
      if (stdoutClosed()) throw new OutputClosed()
    }
  }

  /** Prints the human form, or the JSON form with --json. */
  print(human: () => string, json: () => unknown): void {
    if (this.json) writeDocument(json())
    else if (this.options.quiet !== true) process.stdout.write(human() + '\n')
  }

  /**
   * Opens the cache for one command: failures are reported, not swallowed (`failOpen: false`),
   * and no automatic maintenance runs behind the command's back. A writing command opens with
   * the budget the application recorded, so the record stays as the application left it.
   * `shared`: the Redis tier, for a command that also removes from it (cli/shared-tier.ts).
   */
  async open(use: CacheUse, shared: Pick<LarderOptions, 'redis' | 'encryption'> = {}): Promise<Larder> {
    const configured = await this.entryOptions()
    this.checkDir(use)
    if (use === 'maintain' || use === 'preview') await this.checkNamespaceExists()
    const recorded = use === 'read' ? undefined : await this.recordedBudget()
    return Larder.open({
      ...configured,
      dir: this.dir,
      namespace: this.options.namespace ?? '',
      failOpen: false,
      maintenance: false,
      readOnly: use === 'read' || use === 'preview',
      ...(recorded?.maxSize !== undefined ? { maxSize: recorded.maxSize } : {}),
      ...(recorded?.maxEntries !== undefined ? { maxEntries: recorded.maxEntries } : {}),
      ...(isEvictionPolicy(recorded?.evictionPolicy) ? { evictionPolicy: recorded.evictionPolicy } : {}),
      // Sealed entries are read and written with the keys of the environment (never a flag).
      encryption: keysFromEnv(process.env) ?? configured.encryption,
      ...shared,
    })
  }

  /**
   * The options of the environment (`LARDER_…`) and the config file, as an application opened
   * with `config: true` reads them, that decide how entries are written and read (ENTRY_OPTIONS),
   * so an entry the CLI writes is one the application would have written (its compression,
   * serializer, file modes, durability). All of both is validated, a mistake naming its source
   * (ERR_INVALID_OPTION: exit 2); the rest (Redis, the memory tier, maintenance, budgets) is for
   * the application's own instances, and a command names what it needs of those with its flags.
   */
  async entryOptions(): Promise<Partial<LarderOptions>> {
    const { input } = await layerOptions({ config: { env: true }, dir: this.dir, namespace: this.options.namespace ?? '' })
    return Object.fromEntries(ENTRY_OPTIONS.filter((name) => input[name] !== undefined).map((name) => [name, input[name]]))
  }

  /** Refuses (CliFailure) a `--dir` this use may not open: see CacheUse. */
  checkDir(use: CacheUse): void {
    checkCacheDir(this.dir, use)
  }

  /** checkDir for a command that looks at the directory before it opens the cache (stats,
   *  prune, clear), after the environment and config file are validated (entryOptions, as
   *  open does): a mistake there is reported as one (exit 2, naming its source), not hidden
   *  behind the "not a larder cache" that the file's `dir`, not made yet, leads to. */
  async checkConfigAndDir(use: CacheUse): Promise<void> {
    await this.entryOptions()
    this.checkDir(use)
  }

  /** Refuses a `--namespace` that no application ever wrote to, for a command that changes
   *  the cache: a misspelt name made prune, rm or clear create the namespace and report
   *  success, having touched nothing of the one meant. */
  async checkNamespaceExists(): Promise<void> {
    const name = this.options.namespace
    if (name === undefined || name === '') return
    if (!fs.existsSync((await this.layout()).namespaceDir))
      throw new CliFailure(
        `${this.dir} has no namespace ${JSON.stringify(name)} (no application wrote to it; \`larder stats\` lists those there are): nothing was changed`,
        EXIT.failed,
        'ERR_NOT_FOUND',
      )
  }

  /** Refuses (exit 2) to `act` on a namespace whose entries are sealed when neither the
   *  environment nor the config file gives keys: a `set` would store plaintext the application
   *  then removes as a forgery, an `rm` would remove nothing and say so (sealed-sample.ts). */
  async requireKeysIfSealed(act: string): Promise<void> {
    if (keysFromEnv(process.env) !== undefined || (await this.entryOptions()).encryption !== undefined) return
    if (holdsSealedEntries((await this.layout()).namespaceDir))
      throw new CliFailure(
        `this cache's entries are sealed (encryption at rest): set LARDER_ENCRYPTION_KEYS to its keys to ${act}; nothing was changed`,
        EXIT.usage,
        'ERR_USAGE',
      )
  }

  /** The budget the application recorded in the cache, if any. */
  async recordedBudget(): Promise<RecordedBudget | undefined> {
    return readBudget(await this.layout())
  }

  /** Where the command's namespace lives in the cache directory. */
  async layout(): Promise<Layout> {
    await loadHasher()
    return new Layout(this.dir, resolveOptions({ dir: this.dir, namespace: this.options.namespace ?? '' }).namespace)
  }

  /** The budget to work with: the command line's, if it gives one, else the recorded one. */
  async budget(flags: { maxSize?: number | undefined; maxEntries?: number | undefined }): Promise<Budget> {
    if (flags.maxSize !== undefined || flags.maxEntries !== undefined) {
      const variables = (['maxSize', 'maxEntries'] as const)
        .filter((name) => flags[name] !== undefined && this.#command.getOptionValueSource(name) === 'env')
        .map((name) => (name === 'maxSize' ? 'LARDER_MAX_SIZE' : 'LARDER_MAX_ENTRIES'))
      return {
        source: 'command line',
        ...(variables.length > 0 ? { variables } : {}),
        ...(flags.maxSize !== undefined ? { maxSize: flags.maxSize } : {}),
        ...(flags.maxEntries !== undefined ? { maxEntries: flags.maxEntries } : {}),
      }
    }
    const recorded = await this.recordedBudget()
    return recorded === undefined ? { source: 'none' } : { source: 'recorded', ...recorded }
  }

  /** Runs `work` with the cache open, closing it however `work` ends. */
  async withCache<T>(
    use: CacheUse,
    work: (cache: Larder) => Promise<T>,
    shared: Pick<LarderOptions, 'redis' | 'encryption'> = {},
  ): Promise<T> {
    const cache = await this.open(use, shared)
    try {
      return await work(cache)
    } finally {
      await cache.close()
    }
  }
}

/** "20 entries and 1 GB", "no budget" */
export function budgetAmount(b: Budget): string {
  const parts = [
    ...(b.maxEntries !== undefined ? [`${count(b.maxEntries)} ${b.maxEntries === 1 ? 'entry' : 'entries'}`] : []),
    ...(b.maxSize !== undefined ? [size(b.maxSize)] : []),
  ]
  return parts.join(' and ')
}

/** Where the budget came from, for people: "recorded by the application 3 min ago". */
export function budgetOrigin(b: Budget): string {
  if (b.source === 'command line')
    return b.variables === undefined
      ? 'from the command line'
      : `from ${b.variables.length < [b.maxSize, b.maxEntries].filter((n) => n !== undefined).length ? 'the command line and ' : ''}the environment (${b.variables.join(', ')})`
  if (b.source === 'none') return 'no application has recorded one: meta/budget.json is missing'
  const when = b.recordedAt === undefined ? '' : `, ${ago(b.recordedAt)}`
  if (budgetAmount(b) === '') return `the application last opened the cache without one${when}`
  return `recorded by the application in meta/budget.json${when}`
}

/** One line for prune's output: "budget: 20 entries, recorded by the application …". */
export function budgetLine(b: Budget): string {
  const amount = budgetAmount(b)
  return amount === '' ? `no budget: ${budgetOrigin(b)}` : `budget: ${amount}, ${budgetOrigin(b)}`
}

/** The budget as --json reports show it. */
export function budgetJson(b: Budget): {
  maxSize: number | null
  maxEntries: number | null
  source: Budget['source']
  recordedAt: number | null
} {
  return { maxSize: b.maxSize ?? null, maxEntries: b.maxEntries ?? null, source: b.source, recordedAt: b.recordedAt ?? null }
}

/** Refuses, before anything is opened (and so created), a `--dir` a command may not use. */
function checkCacheDir(dir: string, use: CacheUse): void {
  let stat: fs.Stats
  try {
    stat = fs.statSync(dir)
  } catch (error) {
    const above = (error as { code?: string }).code === 'ENOTDIR' ? nonDirectoryAbove(dir) : undefined
    if (above !== undefined) throw new CliFailure(`--dir ${dir} lies under ${above}, not a cache directory`, EXIT.usage, 'ERR_USAGE')
    if ((error as { code?: string }).code !== 'ENOENT') throw error
    if (use === 'create') return
    throw new CliFailure(`${dir} is not a larder cache (nothing is there); nothing was created`, EXIT.failed, 'ERR_NOT_A_CACHE')
  }
  if (!stat.isDirectory()) throw new CliFailure(`--dir ${dir} is a file, not a cache directory`, EXIT.usage, 'ERR_USAGE')
  if (isLarderCache(dir)) return
  if (use === 'create' && foreignContents(dir) === undefined) return
  const failure = tagReadFailure(dir) // another user's cache, or a failing disk: said as such
  if (failure !== undefined) throw failure
  throw new CliFailure(
    `${dir} is not a larder cache (no CACHEDIR.TAG written by larder); nothing was read or written`,
    EXIT.failed,
    'ERR_NOT_A_CACHE',
  )
}
