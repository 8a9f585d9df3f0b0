import { EXIT } from './exit-codes.js'
import { writeError, wroteDocument } from './output.js'

/**
 * Ctrl-C (SIGINT) or SIGTERM at any moment of a run ends it as the README says: exit 130 and,
 * with --json, `{ "error": { "code": "ERR_ABORTED" } }` as stdout's one document (unless the
 * command already wrote its own). The bin installs this before it loads the commands, which
 * takes hundreds of milliseconds on a busy machine; Node's default would kill the process with
 * nothing printed. While a command listens for the signal itself (a partial report:
 * progress.ts `interruptSignal`; serve's orderly stop) this one leaves the signal to it.
 * A signal that arrives while Node itself is still starting, before any line of the bin runs,
 * cannot be heard: it kills the process as before.
 */
export function endRunOnInterrupt(json: boolean): void {
  const onSignal = (name: NodeJS.Signals): void => {
    if (process.listenerCount(name) > 1) return // the command's own handler answers it
    if (!json) process.stderr.write('larder: interrupted\n')
    else if (!wroteDocument()) writeError('ERR_ABORTED', 'interrupted')
    process.exit(EXIT.interrupted)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}
