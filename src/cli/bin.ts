#!/usr/bin/env node
import { EXIT } from './context.js'
import { main } from './main.js'

// stdout may be a pipe closed early (`larder ls | head`): that ends the output, not in a crash.
// Any other failure to write it (a full disk behind `> file`, EIO) is one line and exit 1, as
// every other failure is; never a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  process.stderr.write(`larder: cannot write to stdout: ${error.message}\n`)
  process.exit(EXIT.failed)
})
process.exitCode = await main(process.argv)
