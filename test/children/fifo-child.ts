/**
 * `fifo-child.ts <dir> <where>`: plants a FIFO (that nobody writes) where a file of the cache
 * belongs, then does what reads that file; prints `done <json>` when every call returned. A
 * read that opens the FIFO without O_NONBLOCK blocks the thread for ever, so the parent sees
 * no `done`.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../../src/index.ts'
import { keyNames } from '../../src/store/layout.ts'

const [dir, where] = process.argv.slice(2) as [string, string]
const ns = path.join(dir, 'v1', 'default')
const plant = (file: string): void => {
  fs.rmSync(file, { force: true, recursive: true })
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  execFileSync('mkfifo', [file])
}

const cache = await Larder.open({ dir, maxEntries: 100, evictionPolicy: 'lfu', maintenance: { interval: 0 } })
await cache.set('k', { v: 1 }, { tags: ['users'] })
await cache.invalidateTags(['other'])
await cache.close()

const targets: Record<string, string> = {
  stamp: path.join(ns, 'tags', keyNames.hash('users')),
  budget: path.join(ns, 'meta', 'budget.json'),
  base: path.join(ns, 'meta', 'totals', 'base'),
  epoch: path.join(ns, 'meta', 'totals', 'epoch'),
}
plant(targets[where]!)
const again = await Larder.open({ dir, maxEntries: 100, evictionPolicy: 'lfu', maintenance: { interval: 0 } })
const value = await again.get('k')
const stats = await again.stats()
const pruned = await again.prune().then(
  (r) => r.scanned,
  (e: Error) => e.message,
)
await again.close()
console.log(`done ${JSON.stringify({ value, entries: stats.entries, pruned })}`)
