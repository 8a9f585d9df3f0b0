import { EXIT } from './exit-codes.js'
import { writeError, wroteDocument } from './output.js'

/** The command's own interrupt handlers now listening (answerInterrupts). */
let answering = 0

/**
 * Ctrl-C (SIGINT) or SIGTERM at any moment of a run ends it as the README says: exit 130 and,
 * with --json, `{ "error": { "code": "ERR_ABORTED" } }` as stdout's one document (unless the
 * command already wrote its own). The bin installs this before it loads the commands, which
 * takes hundreds of milliseconds on a busy machine; Node's default would kill the process with
 * nothing printed. While a command answers the signal itself (a partial report: progress.ts
 * `interruptSignal`; serve's orderly stop: answerInterrupts) this one leaves the signal to it.
 * A signal that arrives while Node itself is still starting, before any line of the bin runs,
 * cannot be heard: it kills the process as before.
 */
export function endRunOnInterrupt(json: boolean): void {
  const onSignal = (): void => {
    // Not judged by process.listenerCount: an open cache's exit hook (signal-exit) listens too,
    // and leaves the signal to any other listener, so with both a `set` reading a pipe heard
    // neither, went on to the pipe's end and stored what a killed producer had written.
    if (answering > 0) return
    // The one line goes to stderr with --json too, as every other failure's does (README:
    // "the one-line message still goes to stderr").
    process.stderr.write('larder: interrupted\n')
    if (json && !wroteDocument()) writeError('ERR_ABORTED', 'interrupted')
    process.exit(EXIT.interrupted)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

/** A command's own handler of SIGINT and SIGTERM is listening, until the function returned is
 *  called: meanwhile endRunOnInterrupt leaves the signals to it. */
export function answerInterrupts(): () => void {
  answering++
  let stopped = false
  return () => {
    if (stopped) return
    stopped = true
    answering--
  }
}
