// Issue #14: once larder has compressed a value, glibc keeps freed blocks of a few MiB instead
// of handing them back to the kernel after every use (src/format/heap-trim.ts), so zlib's
// state is not faulted in again for each set. Speed is measured in bench/ (W4 set); here, the
// page faults that were its cause: counted by the kernel, not timed.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { tempDir } from './helpers.ts'

const run = promisify(execFile)
const probe = path.join(import.meta.dirname, 'children', 'heap-trim-probe.mjs')

interface Faults {
  faultsPerCall: number
  glibc: string | null
}

async function faults(mode: 'plain' | 'compressed'): Promise<Faults> {
  const { stdout } = await run(process.execPath, ['--expose-gc', probe, tempDir('heap-trim'), mode])
  return JSON.parse(stdout) as Faults
}

test('after a compressed set, a freed MiB-sized block is kept for the next malloc, not faulted in again', async (t) => {
  const plain = await faults('plain')
  if (!plain.glibc) return t.skip('not glibc: no trim threshold to raise')
  const compressed = await faults('compressed')
  t.diagnostic(`page faults per 1 MiB malloc-write-free: ${plain.faultsPerCall} before any compression, ${compressed.faultsPerCall} after`)
  // Measured: 10.8-12.8 (Node 20) and 6.2-6.6 (Node 24) before (glibc trims, and the next call
  // faults the pages in again), 0.05-0.25 after; without heap-trim.ts, as many after as before.
  assert.ok(compressed.faultsPerCall < 2, `${compressed.faultsPerCall} faults per call after a compressed set`)
})
