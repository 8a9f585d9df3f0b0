/**
 * What the `larder` bin writes to stdout. With `--json`, exactly one JSON document, however a
 * run ends: a command's result, `{ "error": { "code", "message" } }` when it fails, or the help
 * or version text inside one. Everything else (progress bars, the one-line error, notes) goes
 * to stderr. One run of the bin is one process, so this state is the process's.
 */
let documentWritten = false

/** Writes the run's one JSON document (a second is a bug, and is dropped). */
export function writeDocument(value: unknown): void {
  if (documentWritten) return
  const text = JSON.stringify(value, null, 2) + '\n' // may throw: then no document was written
  documentWritten = true
  process.stdout.write(text)
}

/** Whether this run already wrote its document (a partial report, a report with a failing
 *  exit code): then a failure adds nothing to stdout. */
export function wroteDocument(): boolean {
  return documentWritten
}

/** The document of a failed run. */
export function writeError(code: string, message: string): void {
  writeDocument({ error: { code, message } })
}

/** Whether stdout's reader has gone (EPIPE: `larder ls | head`, `larder get KEY | head -c 10`). */
let readerGone = false

/**
 * stdout's reader has gone: what is still to be written is dropped, not an error, and the run
 * ends as its command ends, with the command's own exit code (0 unless it failed for a reason
 * of its own: damage `verify` found, an interrupt). Most Unix tools die of SIGPIPE there, which
 * a shell reports as 141 and `set -o pipefail` as a failure of `larder ls | head`; Node ignores
 * SIGPIPE, and larder ends quietly instead: no EPIPE message, no stack trace. A command that
 * writes as it goes (`ls`) stops at its next write (OutputClosed); `get`'s stream is cut by
 * its pipeline. `serve` goes on serving, its log lines dropped.
 */
export function readerLeft(): void {
  readerGone = true
  process.stdout.write = () => true
}

/** Whether stdout's reader has gone (readerLeft). */
export function stdoutClosed(): boolean {
  return readerGone
}

/** Thrown by a command that writes as it goes once stdout's reader has gone: the run ends
 *  quietly, with exit 0 (main.ts). */
export class OutputClosed extends Error {
  constructor() {
    super("stdout's reader has gone")
  }
}
