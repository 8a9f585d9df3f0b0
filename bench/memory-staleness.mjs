// How late a memory tier hears another process's delete: one writer process sets a key (100 B
// or 200 KB, at random) and deletes it, pausing 0–30 ms after each; two reader processes on the
// same directory (`memory: true`, the second read-only) loop `await get()` as fast as they can.
// A hit of a value more than 15 ms after its delete resolved is late. For each late hit it
// finds where the reader's run of reads last broke (two reads more than 2 ms apart: the process
// paused, for a garbage collection or because the machine's cores were busy) and reports how
// many reads after that break it came. The README's rule: at most 16 hits after a pause.
//
//   npm run build && node bench/memory-staleness.mjs [--seconds 8]
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const here = path.dirname(new URL(import.meta.url).pathname)
const { Larder } = await import(path.join(here, '..', 'dist', 'index.js'))
const wall = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const LATE_MS = 15
const PAUSE_MS = 2
const [role, dir, readOnly, secondsArg] = process.argv.slice(2)

if (role === 'reader') {
  const cache = await Larder.open({ dir, readOnly: readOnly === '1', memory: true, maintenance: false })
  // Two flat arrays, not an array per read: a reader's own garbage must not make the pauses.
  const at = new Float64Array(40_000_000)
  const seqs = new Int32Array(at.length)
  let reads = 0
  const end = Date.now() + Number(secondsArg) * 1000
  while (Date.now() < end && reads < at.length) {
    at[reads] = wall()
    const value = await cache.get('k')
    seqs[reads++] = value === undefined ? -1 : value.seq
  }
  await cache.close()
  process.send({ at: Array.from(at.subarray(0, reads)), seqs: Array.from(seqs.subarray(0, reads)) }, () => process.exit(0))
} else {
  const argv = process.argv.slice(2)
  const seconds = argv.includes('--seconds') ? Number(argv[argv.indexOf('--seconds') + 1]) : 8
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-staleness-'))
  try {
    const writer = await Larder.open({ dir: work, maintenance: false })
    const readers = [0, 1].map((i) => fork(new URL(import.meta.url).pathname, ['reader', work, String(i), String(seconds)]))
    const results = readers.map((reader) => new Promise((resolve) => reader.once('message', resolve)))
    const deletedAt = new Map()
    const end = Date.now() + seconds * 1000
    for (let seq = 1; Date.now() < end; seq++) {
      await writer.set('k', { seq, body: 'y'.repeat(Math.random() < 0.5 ? 100 : 200_000) })
      await sleep(Math.random() * 30)
      await writer.delete('k')
      deletedAt.set(seq, wall())
      await sleep(Math.random() * 30)
    }
    await writer.close()
    for (const [i, { at, seqs }] of (await Promise.all(results)).entries()) {
      let late = 0
      let worst = 0
      let furthest = 0
      let breakAt = 0
      for (let j = 0; j < at.length; j++) {
        if (j > 0 && at[j] - at[j - 1] > PAUSE_MS) breakAt = j
        const deleted = deletedAt.get(seqs[j])
        if (deleted === undefined || at[j] - deleted <= LATE_MS) continue
        late++
        worst = Math.max(worst, at[j] - deleted)
        furthest = Math.max(furthest, breakAt === 0 ? Infinity : j - breakAt + 1)
      }
      console.log(
        JSON.stringify({
          reader: i,
          readOnly: i === 1,
          reads: at.length,
          late,
          worstMs: Number(worst.toFixed(1)),
          mostReadsAfterAPause: furthest,
        }),
      )
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}
