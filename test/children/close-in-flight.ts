/**
 * `close()` with streams in flight, then exit: `close-in-flight.ts <dir>`. Starts three
 * streams (an endless slow source, a source that stalls after its first chunk, and a quick
 * 3 MiB one started just before close), calls `close()`, and reports what had settled and
 * which files existed when it resolved, and again half a second later; then exits.
 */
import { randomBytes } from 'node:crypto'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'

const dir = process.argv[2]!
const cache = await Larder.open({ dir })
const stored = new Set<string>()
cache.on('set', (key) => stored.add(key))
const outcome: Record<string, string> = {}
let started = 0
let markStarted: () => void
const bothStarted = new Promise<void>((resolve) => (markStarted = resolve))

function track(key: string, write: Promise<void>): void {
  write.then(
    () => (outcome[key] = stored.has(key) ? 'stored' : 'dropped'),
    (error: Error & { code?: string }) => (outcome[key] = `rejected: ${error.code ?? String(error)}`),
  )
}

async function* endless(): AsyncGenerator<Buffer> {
  for (let i = 0; ; i++) {
    yield Buffer.alloc(10_000, i % 251)
    if (i === 0 && ++started === 2) markStarted()
    await delay(50)
  }
}

async function* stalled(): AsyncGenerator<Buffer> {
  yield Buffer.alloc(10_000, 7)
  if (++started === 2) markStarted()
  await new Promise(() => {}) // never settles
}

function* quick(): Generator<Buffer> {
  for (let i = 0; i < 3; i++) yield randomBytes(1024 * 1024)
}

/** Files in the partitions of the default namespace. */
function files(): string[] {
  const ns = path.join(dir, 'v1', 'default')
  const out: string[] = []
  let names: string[]
  try {
    names = readdirSync(ns)
  } catch {
    return out
  }
  for (const p of names) {
    if (!/^[0-9a-f]{2}$/.test(p)) continue
    for (const f of readdirSync(path.join(ns, p))) out.push(`${p}/${f}`)
  }
  return out.sort()
}

track('endless', cache.setStream('endless', endless()))
track('stalled', cache.setStream('stalled', stalled()))
await bothStarted
await delay(100) // their temp files exist by now
track('quick', cache.setStream('quick', quick()))
await cache.close()
await new Promise((resolve) => setImmediate(resolve)) // let settled promises run their callbacks
const settled = { ...outcome }
const filesAtClose = files()
await delay(500)
process.send!(
  { type: 'closed', outcome: settled, filesAtClose, tempsAtClose: filesAtClose.filter((f) => f.includes('.')), filesLater: files() },
  () => process.exit(0),
)
