/**
 * A writer that exits without close(), for test/compress-later.test.ts:
 * `plain-leaver.ts <dir> <count>` sets `count` values of 100 kB (each under 1 kB compressed)
 * once its compress-later worker runs, so they are written plain, and exits at once: its
 * worker never compresses them. Prints how many of them it wrote plain.
 */
import { Larder } from '../../src/index.ts'

const [dir, count] = process.argv.slice(2) as [string, string]
const cache = await Larder.open({ dir })
const value = (i: number): string => `value ${i} ${'abcdefgh'.repeat(12_500)}`
// The worker running first: till then a set compresses before it writes.
for (let i = 0; (await cache.stats()).tiers.file!.compressLater!.compressed === 0; i++) {
  await cache.set('warm-up', value(i))
  await new Promise((resolve) => setTimeout(resolve, 50))
}
const before = (await cache.stats()).tiers.file!.compressLater!.queued
for (let i = 0; i < Number(count); i++) await cache.set(`k${i}`, value(i))
console.log((await cache.stats()).tiers.file!.compressLater!.queued - before)
process.exit(0)
