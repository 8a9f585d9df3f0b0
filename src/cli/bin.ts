#!/usr/bin/env node
import { endRunOnInterrupt } from './early-interrupt.js'
import { EXIT } from './exit-codes.js'
import { jsonRequested } from './json-mode.js'

// First, before the commands load: an interrupt from now on ends the run with exit 130 and,
// with --json, its one JSON document.
endRunOnInterrupt(jsonRequested(process.argv))

// stdout may be a pipe closed early (`larder ls | head`): that ends the output, not in a crash.
// Any other failure to write it (a full disk behind `> file`, EIO) is one line and exit 1, as
// every other failure is; never a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  process.stderr.write(`larder: cannot write to stdout: ${error.message}\n`)
  process.exit(EXIT.failed)
})
const { main } = await import('./main.js')
process.exitCode = await main(process.argv)
