// W2, memory tier: 1,000 keys written to disk, a new instance that holds them in memory after
// one read each, then `iters` sequential gets cycling over them. larder: memory: true (an
// lru-cache inside). lru-cache: the reference, filled with the same values. map: a Map, the
// ceiling for a get that is awaited. Every get is awaited alike, as async code would.
import { smallKey, smallValue } from '../data.mjs'
import { checkRows, seconds, settle } from '../measure.mjs'
import { openStore } from './open.mjs'

export async function mem1k(args) {
  const { keys: count, iters } = args
  const keys = Array.from({ length: count }, (_, i) => smallKey(i))
  let store
  if (args.impl === 'map') {
    const map = new Map(keys.map((k, i) => [k, smallValue(i)]))
    store = { get: (key) => map.get(key), close: async () => {} }
  } else if (args.impl === 'larder') {
    const writer = await openStore(args)
    for (let i = 0; i < count; i++) await writer.set(keys[i], smallValue(i))
    await writer.check()
    await writer.close()
    store = await openStore(args, { memory: true })
  } else {
    store = await openStore(args)
    for (let i = 0; i < count; i++) await store.set(keys[i], smallValue(i))
  }
  for (let i = 0; i < count; i++) checkRows(await store.get(keys[i]), i) // fills larder's memory tier
  for (let j = 0; j < iters / 5; j++) await store.get(keys[j % count]) // warm-up
  settle()
  const expected = keys.map((_, i) => JSON.stringify(smallValue(i)))
  let wrong = 0
  const started = performance.now()
  for (let j = 0; j < iters; j++) {
    const value = await store.get(keys[j % count])
    // A cheap check on every read (a full compare would cost more than the get); a full one below.
    if (value?.[0]?.id !== (j % count) * 8) wrong++
  }
  const elapsed = seconds(started)
  if (wrong) throw new Error(`${wrong} wrong values`)
  for (let i = 0; i < count; i++) checkRows(await store.get(keys[i]), i, expected[i])
  const info = { seconds: elapsed, iterations: iters }
  if (store.stats) info.memoryHits = (await store.stats()).memoryHits
  await store.check?.()
  await store.close()
  return { metrics: { opsPerSec: iters / elapsed }, info }
}
