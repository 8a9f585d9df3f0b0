import { Command, CommanderError, Option, type OutputConfiguration } from 'commander'
import { isLarderError } from '../errors.js'
import { applyBooleanEnv, booleanOptions, dirArgument } from './arguments.js'
import { clearCommand } from './commands/clear.js'
import { getCommand } from './commands/get.js'
import { lsCommand } from './commands/ls.js'
import { pruneCommand } from './commands/prune.js'
import { rekeyCommand } from './commands/rekey.js'
import { rmCommand } from './commands/rm.js'
import { serveCommand } from './commands/serve.js'
import { setCommand } from './commands/set.js'
import { statsCommand } from './commands/stats.js'
import { verifyCommand } from './commands/verify.js'
import { CliFailure, EXIT, loadCliConfig } from './context.js'
import { jsonRequested } from './json-mode.js'
import { OutputClosed, stdoutClosed, writeDocument, writeError, wroteDocument } from './output.js'

declare const LARDER_VERSION: string

/**
 * The `larder` command line. Each command lives in its own file under `commands/`; this file
 * wires them to the global options and turns every way a command can end into an exit code,
 * at most one line on stderr, and with --json exactly one JSON document on stdout: 0 ok, 1 the
 * work failed, 2 a usage error, 130 interrupted.
 */
export function program(output: Partial<OutputConfiguration> = {}): Command {
  const configure = (command: Command): Command =>
    command.exitOverride().configureOutput({
      outputError: (message, write) => write(oneLine(message)),
      ...output,
    })
  const [json, noJson] = booleanOptions(
    '--json',
    'machine-readable output: exactly one JSON document on stdout, whatever happens',
    'LARDER_JSON',
  )
  const [quiet, noQuiet] = booleanOptions('-q, --quiet', 'print nothing on success', 'LARDER_QUIET')
  const root = configure(new Command('larder'))
    .description('Inspect, maintain and serve a larder cache directory.')
    .version(typeof LARDER_VERSION === 'string' ? LARDER_VERSION : '0.0.0-dev', '-V, --version')
    .addOption(
      new Option('--dir <path>', 'the cache directory (default: node_modules/.cache/larder under the current directory)')
        .env('LARDER_DIR')
        .argParser(dirArgument),
    )
    .addOption(new Option('--namespace <name>', 'the namespace the application uses (default: none)').env('LARDER_NAMESPACE'))
    .addOption(json)
    .addOption(noJson)
    .addOption(quiet)
    .addOption(noQuiet)
    .hook('preAction', async (_root, action) => {
      applyBooleanEnv(action)
      await loadCliConfig()
    })
  for (const command of [
    statsCommand(),
    pruneCommand(),
    verifyCommand(),
    rekeyCommand(),
    lsCommand(),
    getCommand(),
    setCommand(),
    rmCommand(),
    clearCommand(),
    serveCommand(),
  ]) {
    root.addCommand(configure(command))
  }
  root.addHelpText(
    'after',
    `
Environment: the options marked (env: NAME) can come from that variable; a flag's variable is
1/true/yes/on or 0/false/no/off, and its --no-… form turns it off whatever the variable says.
Exit codes: 0 ok, 1 the operation failed (a miss for get, damage found by verify, not a cache), 2 usage error, 130 interrupted.
With --json, stdout is one JSON document however the run ends; a failure is { "error": { "code", "message" } }.`,
  )
  return root
}

/** commander's "error: option '--max-size <size>' argument '5XB' is invalid. not a size…" as
 *  one line in larder's voice, with where to look next. */
function oneLine(message: string): string {
  return `larder: ${message
    .trim()
    .replace(/^error: /, '')
    // commander repeats an unknown `--flag=value` whole: the value may be a token
    .replace(/'(-{1,2}[^'=\s]+)=[^']*'/g, "'$1=…'")
    .replace(/\s*\n\s*/g, ' ')} (see --help)\n`
}

/** The variables besides `LARDER_…` the CLI reads (`larder serve`, the seeds' names). */
const SEED_VARIABLES = new Set(['CACHE_L1_MAX_ENTRIES', 'CACHE_DEFAULT_TTL', 'REDIS_URL', 'REDIS_PASSWORD', 'REDIS_DB'])

/** An empty variable counts as unset, as in the library (config/env-options.ts): commander
 *  would take `LARDER_DIR=` (a blanked line in a CI file) as the current directory, and
 *  `LARDER_MAX_SIZE=` as a bad size. */
function dropEmptyVariables(env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if ((name.startsWith('LARDER_') || SEED_VARIABLES.has(name)) && value?.trim() === '') delete env[name]
  }
}

export async function main(argv: string[]): Promise<number> {
  dropEmptyVariables(process.env)
  const json = jsonRequested(argv)
  let shown = '' // help or version text, held back to go inside the JSON document
  let usage = '' // commander's one-line complaint
  const root = program({
    writeOut: (text) => (json ? (shown += text) : process.stdout.write(text)),
    // Help written as an error (no command given): with --json, one line instead (below).
    writeErr: (text) => (json ? undefined : process.stderr.write(text)),
    outputError: (message) => {
      usage = oneLine(message)
      process.stderr.write(usage)
    },
  })
  try {
    await root.parseAsync(argv)
    return EXIT.ok
  } catch (error) {
    // stdout's reader has gone (`larder get KEY | head -c 10`): nothing more to say, quietly.
    if (readerGone(error)) return EXIT.ok
    const { exit, code, message } = ending(error, usage)
    if (exit !== EXIT.ok && (!(error instanceof CommanderError) || (json && error.code === 'commander.help')))
      process.stderr.write(`larder: ${message}\n`)
    if (json && !wroteDocument()) {
      if (exit !== EXIT.ok) writeError(code, message)
      else if ((error as CommanderError).code === 'commander.version') writeDocument({ version: shown.trim() })
      else writeDocument({ help: shown })
    }
    return exit
  }
}

/** Whether `error` is only the end of the output, whose reader has gone (output.ts readerLeft):
 *  a listing stopped at its next write, or `get`'s stream cut by its pipeline. */
function readerGone(error: unknown): boolean {
  if (error instanceof OutputClosed) return true
  const code = (error as { code?: unknown } | undefined)?.code
  return stdoutClosed() && (code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED')
}

/** How a run that threw ends: its exit code, and the code and message a --json run reports. */
function ending(error: unknown, usage: string): { exit: number; code: string; message: string } {
  if (error instanceof CommanderError) {
    // Help and version "errors" are successes; anything else commander rejects is usage
    // (commander has already written its one line to stderr).
    if (error.code === 'commander.help' && error.exitCode !== 0)
      return { exit: EXIT.usage, code: 'ERR_USAGE', message: 'no command given: larder <command> (see --help)' }
    const message = usage.replace(/^larder: /, '').trim() || error.message
    return error.exitCode === 0 ? { exit: EXIT.ok, code: '', message: '' } : { exit: EXIT.usage, code: 'ERR_USAGE', message }
  }
  if (error instanceof CliFailure) return { exit: error.exit, code: error.code, message: error.message }
  if (isLarderError(error, 'ERR_ABORTED')) return { exit: EXIT.interrupted, code: 'ERR_ABORTED', message: 'interrupted' }
  if (isLarderError(error))
    return { exit: error.code.startsWith('ERR_INVALID') ? EXIT.usage : EXIT.failed, code: error.code, message: error.message }
  const errno = (error as { code?: unknown }).code
  const message = `${(error as Error).message ?? String(error)}${typeof errno === 'string' ? ` (${errno})` : ''}`
  return { exit: EXIT.failed, code: 'ERR_FAILED', message }
}
