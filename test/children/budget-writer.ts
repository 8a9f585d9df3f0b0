/**
 * One of several writers of a burst over a small budget, for test/budget-burst.test.ts:
 * `budget-writer.ts <dir> <writes> <tag>` sets `<writes>` distinct 6,000-byte values, one after
 * another, into a cache of `maxSize` 256 KiB (automatic prune, no compression), then closes.
 */
import { Larder } from '../../src/index.ts'

const [dir, writes, tag] = process.argv.slice(2) as [string, string, string]
const cache = await Larder.open({ dir, maxSize: '256KiB', compression: 'none' })
const value = 'z'.repeat(6000)
for (let i = 0; i < Number(writes); i++) await cache.set(`${tag}-${i}`, value)
await cache.close()
