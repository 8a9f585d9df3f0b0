/**
 * Batch calls under a low file-descriptor limit: `batch-child.ts <dir> <count> <bytes>`,
 * started by the parent under `ulimit -n`. Stores `count` incompressible values of `bytes`
 * each with one `setMany`, reads them back with one `getMany`, and prints one JSON line: how
 * many came back intact, and the cache's disk errors, dropped writes and breaker state.
 */
import crypto from 'node:crypto'
import { Larder } from '../../src/index.ts'

const [dir, countArg, bytesArg] = process.argv.slice(2)
const count = Number(countArg)
const bytes = Number(bytesArg)
const cache = await Larder.open({ dir: dir!, maintenance: false })
const errors: string[] = []
cache.on('error', (e) => errors.push(e.message))
const items = Array.from({ length: count }, (_, i) => ({ key: `big-${i}`, value: crypto.randomBytes(bytes) }))
await cache.setMany(items)
const values = await cache.getMany(items.map((item) => item.key))
const intact = values.filter((v, i) => Buffer.isBuffer(v) && v.equals(items[i]!.value)).length
const stats = await cache.stats()
await cache.close()
console.log(
  JSON.stringify({ intact, errors: stats.errors, dropped: stats.dropped, breaker: stats.breaker.state, firstErrors: errors.slice(0, 3) }),
)
