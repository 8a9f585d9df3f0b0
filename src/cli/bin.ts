#!/usr/bin/env node
import { endRunOnInterrupt } from './early-interrupt.js'
import { EXIT } from './exit-codes.js'
import { jsonRequested } from './json-mode.js'
import { readerLeft } from './output.js'

// First, before the commands load: an interrupt from now on ends the run with exit 130 and,
// with --json, its one JSON document.
endRunOnInterrupt(jsonRequested(process.argv))

// stdout may be a pipe closed early (`larder ls | head`): that ends the output, quietly, and the
// run ends as its command does (output.ts readerLeft): with its own exit code, so a failure the
// command found (verify's damage) is not hidden behind the 0 of an immediate exit. Any other
// failure to write it (a full disk behind `> file`, EIO) is one line and exit 1, as every other
// failure is; never a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') return readerLeft()
  process.stderr.write(`larder: cannot write to stdout: ${error.message}\n`)
  process.exit(EXIT.failed)
})
const { main } = await import('./main.js')
process.exitCode = await main(process.argv)
