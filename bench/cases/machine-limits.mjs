// The machine's limits for larder's own per-byte work, on the same data as W4 and W5:
// raw DEFLATE at level 1 (larder's default codec and level) both ways, and xxhash64
// (xxhash-wasm h64, larder's checksum) alone. Nothing touches the disk.
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import xxhash from 'xxhash-wasm'
import { artifactOf, bigValue } from '../data.mjs'
import { inFlight, seconds, settle } from '../measure.mjs'

const deflate = promisify(zlib.deflateRaw)
const inflate = promisify(zlib.inflateRaw)
const LEVEL = { level: 1 }

export async function limits({ mib, bigN }) {
  const { create64 } = await xxhash()
  const metrics = {}
  const info = {}
  for (const kind of ['tar', 'compressed']) {
    const pool = artifactOf(kind)
    const blocks = Array.from({ length: mib }, (_, i) => pool[i % pool.length])
    // 1 MiB blocks, 4 in flight: zlib's thread pool on every core, as larder's streams use it.
    settle()
    let started = performance.now()
    const packed = new Array(mib)
    await inFlight(mib, 4, async (i) => {
      packed[i] = await deflate(blocks[i], LEVEL)
    })
    metrics[`deflate_${kind}_MBps`] = (mib * 2 ** 20) / 1e6 / seconds(started)
    info[`deflate_${kind}_ratio`] = packed.reduce((sum, b) => sum + b.length, 0) / (mib * 2 ** 20)
    started = performance.now()
    await inFlight(mib, 4, async (i) => {
      const out = await inflate(packed[i])
      if (out.length !== blocks[i].length) throw new Error('inflate size mismatch')
    })
    metrics[`inflate_${kind}_MBps`] = (mib * 2 ** 20) / 1e6 / seconds(started)
  }
  // xxhash64 over the tar-like artifact, one thread, as a stream is checksummed.
  const pool = artifactOf('tar')
  settle()
  let started = performance.now()
  const hasher = create64()
  for (let i = 0; i < mib; i++) hasher.update(pool[i % pool.length])
  info.h64 = hasher.digest().toString(16)
  metrics.h64_MBps = (mib * 2 ** 20) / 1e6 / seconds(started)

  // Per ~64 KiB value (W4): deflate, inflate and hash alone, one value at a time, synchronous.
  const values = Array.from({ length: bigN }, (_, i) => Buffer.from(JSON.stringify(bigValue(i))))
  settle()
  started = performance.now()
  const packed = values.map((v) => zlib.deflateRawSync(v, LEVEL))
  metrics.deflate_64k_opsPerSec = bigN / seconds(started)
  started = performance.now()
  for (const p of packed) zlib.inflateRawSync(p)
  metrics.inflate_64k_opsPerSec = bigN / seconds(started)
  started = performance.now()
  for (const v of values) create64().update(v).digest()
  metrics.h64_64k_opsPerSec = bigN / seconds(started)
  info.value64kRatio = packed.reduce((sum, b) => sum + b.length, 0) / values.reduce((sum, b) => sum + b.length, 0)
  return { metrics, info }
}
