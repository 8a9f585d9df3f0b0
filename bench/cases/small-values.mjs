// W1–W3: ~1 KiB ORM-like JSON values under distinct keys. The timed part runs from opening a
// store to the last value being on disk (a whole-file store's save included), or to the last
// value read back, so a store that loads everything at open pays for it where it is paid.
import { smallKey, smallValue } from '../data.mjs'
import { checkRows, inFlight, seconds, settle, shuffled } from '../measure.mjs'
import { storeOpener } from './open.mjs'

/** W1: n distinct keys, `conc` sets in flight. Leaves the data in `dir` for W2 and W3. */
export async function set1k(args) {
  const { n, conc } = args
  const keys = Array.from({ length: n }, (_, i) => smallKey(i))
  const values = Array.from({ length: n }, (_, i) => smallValue(i))
  const open = await storeOpener(args)
  settle()
  const started = performance.now()
  const store = await open()
  await inFlight(n, conc, (i) => store.set(keys[i], values[i]))
  await store.flush?.()
  const elapsed = seconds(started)
  await store.check?.()
  await store.close()
  return { metrics: { opsPerSec: n / elapsed }, info: { seconds: elapsed } }
}

/** W2: the keys set1k wrote, read in shuffled order by a new instance (file tier: larder's
 *  memory tier off), `conc` in flight. Every value is compared with what was stored. */
export async function get1k(args) {
  const { n, conc } = args
  const keys = Array.from({ length: n }, (_, i) => smallKey(i))
  const order = shuffled(n)
  const results = new Array(n)
  const open = await storeOpener(args, { memory: false })
  settle()
  const started = performance.now()
  const store = await open()
  await inFlight(n, conc, async (j) => {
    const i = order[j]
    results[i] = await store.get(keys[i])
  })
  const elapsed = seconds(started)
  for (let i = 0; i < n; i++) checkRows(results[i], i)
  await store.check?.()
  await store.close()
  return { metrics: { opsPerSec: n / elapsed }, info: { seconds: elapsed } }
}

/** W3: n keys that were never set, asked of a new instance over set1k's data, one at a time. */
export async function miss1k(args) {
  const { n } = args
  const keys = Array.from({ length: n }, (_, i) => smallKey(10_000_000 + i))
  const open = await storeOpener(args, { memory: false })
  settle()
  const started = performance.now()
  const store = await open()
  let hits = 0
  for (let i = 0; i < n; i++) if ((await store.get(keys[i])) !== undefined) hits++
  const elapsed = seconds(started)
  if (hits) throw new Error(`${hits} of ${n} never-set keys returned a value`)
  await store.check?.()
  await store.close()
  return { metrics: { opsPerSec: n / elapsed }, info: { seconds: elapsed } }
}
