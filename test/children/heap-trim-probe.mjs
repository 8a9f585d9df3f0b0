// Whether the process's allocator keeps a freed block of a MiB or hands it back to the kernel:
// `node --expose-gc heap-trim-probe.mjs <dir> <plain|compressed>`; prints one JSON line
// `{ faultsPerCall, glibc }`.
//
// The probe opens a cache on <dir> and sets one value: 'compressed' one larder compresses
// (src/format/heap-trim.ts then frees its 4 MiB block), 'plain' one it does not. Then it counts
// the page faults of scrypt with N=1024, r=8: each call mallocs ~1 MiB, writes all of it and
// frees it, synchronously. Where glibc trims the heap after such a free, every call faults
// pages in again, as every compressed set did with zlib's state.
//
// Plain node on the built package, not tsx: tsx's own start-up frees large blocks and would
// move glibc's thresholds before the probe begins.
import { scryptSync } from 'node:crypto'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'

const [dir, mode] = process.argv.slice(2)
const { Larder } = await import(pathToFileURL(path.join(import.meta.dirname, '..', '..', 'dist', 'index.js')).href)

const cache = await Larder.open({ dir, memory: false })
await cache.set('value', mode === 'compressed' ? { text: 'abc '.repeat(5000) } : 'x')
await cache.close()
// larder's block is freed by a collection and a background thread's sweep after it
globalThis.gc()
await sleep(100)
globalThis.gc()

const mib = () => scryptSync('password', 'salt', 16, { N: 1024, r: 8, p: 1 })
mib()
const calls = 20
const before = process.resourceUsage().minorPageFault
for (let i = 0; i < calls; i++) mib()
const faultsPerCall = (process.resourceUsage().minorPageFault - before) / calls
const glibc = process.report.getReport().header.glibcVersionRuntime ?? null
process.stdout.write(JSON.stringify({ faultsPerCall, glibc }) + '\n')
