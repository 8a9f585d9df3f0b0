import { Command, CommanderError, Option } from 'commander'
import { isLarderError } from '../errors.js'
import { clearCommand } from './commands/clear.js'
import { getCommand } from './commands/get.js'
import { lsCommand } from './commands/ls.js'
import { pruneCommand } from './commands/prune.js'
import { rmCommand } from './commands/rm.js'
import { setCommand } from './commands/set.js'
import { statsCommand } from './commands/stats.js'
import { verifyCommand } from './commands/verify.js'
import { CliFailure, EXIT } from './context.js'

declare const LARDER_VERSION: string

/**
 * The `larder` command line. Each command lives in its own file under `commands/`; this file
 * wires them to the global options and turns every way a command can end into an exit code
 * and at most one line on stderr: 0 ok, 1 the work failed, 2 a usage error, 130 interrupted.
 */
export function program(): Command {
  const root = new Command('larder')
    .description('Inspect and maintain a larder cache directory.')
    .version(typeof LARDER_VERSION === 'string' ? LARDER_VERSION : '0.0.0-dev', '-V, --version')
    .addOption(new Option('--dir <path>', 'the cache directory (default: node_modules/.cache/larder under the current directory)').env('LARDER_DIR'))
    .addOption(new Option('--namespace <name>', 'the namespace the application uses (default: none)').env('LARDER_NAMESPACE'))
    .addOption(new Option('--json', 'machine-readable output: one JSON document on stdout, nothing else').env('LARDER_JSON'))
    .addOption(new Option('-q, --quiet', 'print nothing on success').env('LARDER_QUIET'))
    .exitOverride()
    .configureOutput({ outputError: (message, write) => write(oneLine(message)) })
  for (const command of [statsCommand(), pruneCommand(), verifyCommand(), lsCommand(), getCommand(), setCommand(), rmCommand(), clearCommand()]) {
    root.addCommand(command.exitOverride().configureOutput({ outputError: (message, write) => write(oneLine(message)) }))
  }
  root.addHelpText('after', `
Environment: every option can come from a variable, shown as (env: NAME) beside it.
Exit codes: 0 ok, 1 the operation failed (a miss for get, damage found by verify), 2 usage error, 130 interrupted.`)
  return root
}

/** commander's "error: option '--max-size <size>' argument '5XB' is invalid. not a size…" as
 *  one line in larder's voice, with where to look next. */
function oneLine(message: string): string {
  return `larder: ${message.trim().replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')} (see --help)\n`
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv)
    return EXIT.ok
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version "errors" are successes; anything else commander rejects is usage.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage
    }
    if (error instanceof CliFailure) {
      process.stderr.write(`larder: ${error.message}\n`)
      return error.code
    }
    if (isLarderError(error, 'ERR_ABORTED')) {
      process.stderr.write('larder: interrupted\n')
      return EXIT.interrupted
    }
    if (isLarderError(error)) {
      process.stderr.write(`larder: ${error.message}\n`)
      return error.code.startsWith('ERR_INVALID') ? EXIT.usage : EXIT.failed
    }
    const code = (error as { code?: unknown }).code
    process.stderr.write(`larder: ${(error as Error).message ?? String(error)}${typeof code === 'string' ? ` (${code})` : ''}\n`)
    return EXIT.failed
  }
}
