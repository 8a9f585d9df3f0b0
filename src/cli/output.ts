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
