/**
 * LFU hit logs stay readable however busy the cache: a process starts a new log before its
 * own grows past LOG_ROTATE_BYTES, and compaction writes merged counts in files of at most
 * that much, so no genuine log nears the size above which a log is judged foreign and not read
 * (a busy server's 70 MiB log once lost every count it held: the hottest entries went first).
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { Larder } from '../src/index.ts'
import { compactHitLogs, readHitCounts } from '../src/maintenance/hit-counts.ts'
import { HitLog } from '../src/maintenance/hit-log.ts'
import { Layout } from '../src/store/layout.ts'
import { tempDir } from './helpers.ts'

const hashOf = (i: number): string => i.toString(16).padStart(16, '0')

async function hitsDirOf(label: string): Promise<{ layout: Layout; hits: string }> {
  const dir = tempDir(label)
  await (await Larder.open({ dir, evictionPolicy: 'lfu', maintenance: false })).close()
  const layout = new Layout(dir, '')
  fs.mkdirSync(layout.hitsDir, { recursive: true })
  return { layout, hits: layout.hitsDir }
}

const sizes = (dir: string): number[] => fs.readdirSync(dir).map((name) => fs.statSync(path.join(dir, name)).size)

test('a process whose hits fill its log starts another, and every count of every log is read', async () => {
  const { layout, hits } = await hitsDirOf('larder-hitlog-rotate')
  // At the real size this is 19 MB of appends; a bound of 256 KiB shows the same in less.
  const bound = 256 * 1024
  const log = new HitLog(layout, undefined, bound)
  const flushes = 40 // 2,000 keys hit in each second: ~1.5 MB in all
  for (let f = 0; f < flushes; f++) {
    for (let i = 0; i < 2000; i++) log.hit(hashOf(i))
    log.flush()
  }
  log.stop()
  const onDisk = sizes(hits)
  assert.ok(onDisk.length >= 4, `one log per ${bound} bytes, not one of ${onDisk.join(', ')}`)
  assert.ok(Math.max(...onDisk) <= bound, `every log within the bound: ${onDisk.join(', ')}`)
  const counts = readHitCounts(hits, Date.now(), 0)
  assert.equal(counts.size, 2000)
  assert.ok([...counts.values()].every((count) => count === flushes))
})

test('compaction writes merged counts in files within the bound, and they read back whole', async () => {
  const { hits } = await hitsDirOf('larder-hitlog-merged')
  const bound = 256 * 1024 // LOG_ROTATE_BYTES in production: the same with 64 times the entries
  const entries = 30_000 // merged, ~570 KB: more than two files' worth
  let names = ''
  for (let part = 0; part < 3; part++) {
    let text = `@${Date.now()}\n`
    for (let i = part; i < entries; i += 3) text += `${hashOf(i)} 2\n`
    fs.writeFileSync(path.join(hits, `${part}.seed.log`), text)
  }
  for (let i = 0; i < entries; i++) names += hashOf(i)
  assert.equal(compactHitLogs(hits, names, Date.now(), 0, bound), 3)
  const merged = sizes(hits)
  assert.ok(merged.length >= 3 && Math.max(...merged) <= bound + 64, `merged files: ${merged.join(', ')}`)
  const counts = readHitCounts(hits, Date.now(), 0)
  assert.equal(counts.size, entries)
  assert.ok([...counts.values()].every((count) => count === 2))
})
