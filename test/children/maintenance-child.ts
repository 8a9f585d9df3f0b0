/**
 * A process that uses maintenance, for test/maintenance.test.ts:
 *   maintenance-child.ts burst <dir> <writer> <count> <maxEntries>   writes `count` entries with a budget, then closes
 *   maintenance-child.ts reads <dir> <key>=<times>...                 reads keys (LFU hits from another process), then closes
 *   maintenance-child.ts exit <dir> close|no-close                     runs a prune and a verify, then closes or not
 *   maintenance-child.ts killed-prune <dir> <maxEntries>               prunes to maxEntries, and kills itself (SIGKILL) once
 *                                                                      every victim is evicted, before the prune writes its count
 *   maintenance-child.ts killed-verify <dir>                           verifies with repair, and kills itself (SIGKILL) once every
 *                                                                      partition is checked, before the verify writes its count
 * Prints one JSON line on stdout when done.
 */
import { Larder } from '../../src/index.ts'

const [mode, dir, ...rest] = process.argv.slice(2)

if (mode === 'burst') {
  const [writer, count, maxEntries] = rest.map(Number)
  const cache = await Larder.open({ dir: dir!, maxEntries: maxEntries!, maintenance: { interval: 0 } })
  let pruned = 0
  cache.on('prune', () => pruned++)
  for (let i = 0; i < count!; i++) await cache.set(`burst:${writer}:${i}`, { writer, i, pad: 'x'.repeat(200) })
  await cache.close()
  console.log(JSON.stringify({ pruned }))
} else if (mode === 'reads') {
  const cache = await Larder.open({ dir: dir!, evictionPolicy: 'lfu' })
  for (const spec of rest) {
    const [key, times] = spec.split('=')
    for (let i = 0; i < Number(times); i++) if ((await cache.get(key!)) === undefined) throw new Error(`miss on ${key}`)
  }
  await cache.close()
  console.log(JSON.stringify({ ok: true }))
} else if (mode === 'exit') {
  const cache = await Larder.open({ dir: dir! })
  for (let i = 0; i < 50; i++) await cache.set(`exit:${i}`, i, { ttl: i % 2 === 0 ? 1 : 0 })
  await new Promise((resolve) => setTimeout(resolve, 5))
  const pruned = await cache.prune()
  const verified = await cache.verify()
  if (rest[0] === 'close') await cache.close()
  console.log(JSON.stringify({ expired: pruned.expired, ok: verified.ok }))
} else if (mode === 'killed-prune') {
  const cache = await Larder.open({ dir: dir!, maintenance: false })
  await cache.prune({
    maxEntries: Number(rest[0]),
    onProgress: ({ phase, done, total }) => {
      if (phase === 'evict' && done === total) process.kill(process.pid, 'SIGKILL')
    },
  })
  throw new Error('the prune ended without evicting')
} else if (mode === 'killed-verify') {
  const cache = await Larder.open({ dir: dir!, maintenance: false })
  await cache.verify({
    onProgress: ({ done, total }) => {
      if (done === total && total > 0) process.kill(process.pid, 'SIGKILL')
    },
  })
  throw new Error('the verify ended')
} else {
  throw new Error(`unknown mode ${mode}`)
}
