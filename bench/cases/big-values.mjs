// W4: ~64 KiB semi-compressible JSON values (half prose-like text, half base64 of random bytes),
// n keys, one at a time: set, then get from a new instance. Timed from open, as in W1/W2.
import { bigKey, bigValue } from '../data.mjs'
import { diskBytes, seconds, settle, shuffled } from '../measure.mjs'
import { storeOpener } from './open.mjs'

export async function set64k(args) {
  const { n } = args
  const keys = Array.from({ length: n }, (_, i) => bigKey(i))
  const values = Array.from({ length: n }, (_, i) => bigValue(i))
  const open = await storeOpener(args)
  settle()
  const started = performance.now()
  const store = await open()
  for (let i = 0; i < n; i++) await store.set(keys[i], values[i])
  await store.flush?.()
  const elapsed = seconds(started)
  await store.check?.()
  // Untimed, as every store's close; reported, because larder's waits for its workers to
  // compress the values its sets wrote uncompressed (compressLater).
  const closing = performance.now()
  await store.close()
  const closeSeconds = seconds(closing)
  // Disk per entry: the sizes of the files left (untimed), so compression's saving is weighed
  // beside its cost.
  const diskKiBPerEntry = (await diskBytes(args.dir)) / 1024 / n
  return {
    metrics: { opsPerSec: n / elapsed, diskKiBPerEntry },
    info: { seconds: elapsed, closeSeconds, valueBytes: Buffer.byteLength(JSON.stringify(values[0])) },
  }
}

export async function get64k(args) {
  const { n } = args
  const keys = Array.from({ length: n }, (_, i) => bigKey(i))
  const order = shuffled(n)
  const open = await storeOpener(args, { memory: false })
  settle()
  const started = performance.now()
  const store = await open()
  for (let j = 0; j < n; j++) {
    const i = order[j]
    const value = await store.get(keys[i])
    // id, and both big strings compared whole (same pool entry as bigValue(i))
    const want = bigValue(i)
    if (value?.id !== i || value.body !== want.body || value.attachment !== want.attachment) throw new Error(`wrong value for key ${i}`)
  }
  const elapsed = seconds(started)
  await store.check?.()
  await store.close()
  return { metrics: { opsPerSec: n / elapsed }, info: { seconds: elapsed } }
}
