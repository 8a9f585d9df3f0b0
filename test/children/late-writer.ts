/**
 * Another process's write that lands while the test process is busy with cache calls of its
 * own (memory-tier-race.test.ts):
 *   late-writer.ts <dir> <key> <value JSON> <pause ms> <marker>
 * sets `key`, waits `pause` ms once the set has resolved (past the memory tier's documented
 * bound), then creates the file `marker` (outside the cache) and exits. Needs no IPC: the
 * test process's event loop does not turn while it runs.
 */
import { writeFileSync } from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'

const [dir, key, value, pause, marker] = process.argv.slice(2) as [string, string, string, string, string]
const cache = await Larder.open({ dir, maintenance: false })
await cache.set(key, JSON.parse(value))
await delay(Number(pause))
writeFileSync(marker, '')
await cache.close()
