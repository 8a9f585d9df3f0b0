#!/usr/bin/env node
import { main } from './main.js'

// stdout may be a pipe closed early (`larder ls | head`): that ends the output, not in a crash.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  throw error
})
process.exitCode = await main(process.argv)
