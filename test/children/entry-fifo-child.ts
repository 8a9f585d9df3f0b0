/**
 * `entry-fifo-child.ts <dir>`: plants a FIFO (that nobody writes) where key `k`'s entry file
 * belongs, then reads it with get, has, info and getStream; prints `done <json>` when every
 * call returned. An open of the FIFO without O_NONBLOCK blocks the thread for ever (SIGTERM
 * included), so the parent sees no `done`.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { Larder } from '../../src/index.ts'
import path from 'node:path'
import { keyNames } from '../../src/store/layout.ts'

const [dir] = process.argv.slice(2) as [string]
const cache = await Larder.open({ dir, memory: false, maintenance: { interval: 0 } })
await cache.set('k', { v: 1 })
const hash = keyNames.hash('k')
const file = path.join(dir, 'v1', 'default', hash.slice(0, 2), hash)
fs.rmSync(file)
execFileSync('mkfifo', [file])

const value = await cache.get('k')
const has = await cache.has('k')
const info = await cache.info('k')
const stream = await cache.getStream('k')
const { corrupt } = await cache.stats()
const left = fs.existsSync(file)
await cache.close()
process.stdout.write(
  `done ${JSON.stringify({ value: value ?? null, has, info: info ?? null, stream: stream !== undefined, corrupt, left })}\n`,
)
