/**
 * Fills a memory-only cache far beyond the heap it runs in: `pressure-child.ts on|off`, run
 * with a small `--max-old-space-size` and `--expose-gc`. The memory tier's own bound (10,000
 * entries of 256 KiB: 2.5 GiB) never stops it; only memory pressure can. With `on`, once full
 * it clears the cache, collects garbage, waits for the pressure to end, and prints one JSON
 * line: the levels the `pressure` events carried, the entries shed, the entries left when the
 * filling ended, and the first high reading.
 */
import { Larder, type PressureReading } from '../../src/index.ts'

const mode = process.argv[2]
const VALUE = 256 * 1024
const WRITES = 480 // 120 MiB of values: twice the heap
const cache = await Larder.open({
  dir: false,
  memory: { maxEntries: 10_000 },
  memoryPressure: mode === 'off' ? false : { interval: '50ms' },
})
const readings: PressureReading[] = []
cache.on('pressure', (reading) => readings.push(reading))

for (let i = 0; i < WRITES; i++) await cache.set(`k${i}`, 'x'.repeat(VALUE - 8) + String(i).padStart(8, '0'))
const filled = await cache.stats()
// The most recent value is still served from memory.
const last = await cache.get(`k${WRITES - 1}`)

await cache.clear()
;(globalThis as { gc?: () => void }).gc?.()
if (readings.at(-1)?.level === 'high') {
  const alive = setInterval(() => {}, 1000) // the readings' timer is unref'd: keep the process up for them
  await new Promise((resolve) => cache.once('pressure', resolve))
  clearInterval(alive)
}
await cache.close()
console.log(
  JSON.stringify({
    levels: readings.map((r) => r.level),
    shed: filled.tiers.memory?.shed,
    memoryEntries: filled.memoryEntries,
    lastServed: typeof last === 'string' && last.endsWith(String(WRITES - 1).padStart(8, '0')),
    firstHigh: readings.find((r) => r.level === 'high'),
  }),
)
