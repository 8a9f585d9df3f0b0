// Measures the partition layout choice (see src/store/layout.ts): N files written as larder
// writes them (an exclusive temp file, then rename: src/store/atomic-write.ts) into (a) one
// level of 256 directories created up front, (b) one level of 256 created on first use, (c) two
// levels of 256×256 created on first use. (Earlier runs wrote through write-file-atomic.)
// Each layout runs in its own process, interleaved, median of 3. Usage: node bench/layout-fanout.mjs [N]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const TEMP_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW
let sequence = 0

/** Temp file beside `file`, every byte written, then rename: larder's write, without its checks. */
function writeAtomic(file, data) {
  const temp = `${file}.${process.pid}-${++sequence}.tmp`
  const fd = fs.openSync(temp, TEMP_FLAGS, 0o600)
  for (let done = 0; done < data.length;) done += fs.writeSync(fd, data, done, data.length - done)
  fs.closeSync(fd)
  fs.renameSync(temp, file)
}

const N = Number(process.argv[3] ?? process.argv[2] ?? 20000)

if (process.argv[2] === 'child') {
  const layout = process.argv[4]
  const { onExit } = require('signal-exit')
  onExit(() => {}) // as larder does: keep signal-exit's handlers installed
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fanout-'))
  const data = Buffer.alloc(1024, 'x')
  const hex = (i) =>
    (Math.imul(i + 1, 2654435761) >>> 0).toString(16).padStart(8, '0') + (Math.imul(i + 7, 40503) >>> 0).toString(16).padStart(8, '0')
  if (layout === 'flat-precreated') for (let i = 0; i < 256; i++) fs.mkdirSync(path.join(root, i.toString(16).padStart(2, '0')))
  const made = new Set()
  const started = performance.now()
  for (let i = 0; i < N; i++) {
    const h = hex(i)
    const dir = layout === 'two-level' ? path.join(root, h.slice(0, 2), h.slice(2, 4)) : path.join(root, h.slice(0, 2))
    if (layout !== 'flat-precreated' && !made.has(dir)) {
      fs.mkdirSync(dir, { recursive: true })
      made.add(dir)
    }
    writeAtomic(path.join(dir, h), data)
  }
  const ms = performance.now() - started
  fs.rmSync(root, { recursive: true, force: true })
  console.log(JSON.stringify({ layout, opsPerSec: Math.round(N / (ms / 1000)), dirs: made.size }))
  process.exit(0)
}

const layouts = ['flat-precreated', 'flat-lazy', 'two-level']
const results = Object.fromEntries(layouts.map((l) => [l, []]))
for (let run = 0; run < 3; run++) {
  for (const layout of layouts) {
    const out = execFileSync(process.execPath, [process.argv[1], 'child', String(N), layout], { encoding: 'utf8' })
    results[layout].push(JSON.parse(out).opsPerSec)
  }
}
console.log(`${N} files of 1 KiB, exclusive temp file + rename, median of 3 (min–max) ops/s`)
for (const layout of layouts) {
  const v = results[layout].sort((a, b) => a - b)
  console.log(`${layout.padEnd(16)} ${String(v[1]).padStart(7)}  (${v[0]}–${v[2]})`)
}
