/**
 * `npm run demo`, the README's first look at larder: it runs on the embedded default (a local
 * cache directory, nothing else), and what it prints is true: the warm reads are hits, the
 * stats count them, and the invalidated value is gone.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { tempDir } from './helpers.js'

const demo = fileURLToPath(new URL('../dist/demo.js', import.meta.url))

test('the demo caches, reads warm from disk and memory, invalidates, and counts what it did', async () => {
  const cwd = tempDir('demo')
  const env = { ...process.env }
  delete env.LARDER_DIR
  const { stdout } = await promisify(execFile)(process.execPath, [demo], { cwd, env })
  assert.match(stdout, /^larder demo — cache directory .*\.larder-cache$/m)
  for (const line of ['cold: compute and store', 'warm: read from disk (new instance)', 'warm: memory tier', 'invalidate tag "reports"'])
    assert.match(stdout, new RegExp(`^${line.replace(/[()]/g, '\\$&')}\\s+[0-9.]+ ms$`, 'm'), line)
  assert.match(stdout, /^after invalidation, get → undefined$/m)
  const stats = JSON.parse(stdout.slice(stdout.indexOf('{'))) as Record<string, unknown>
  // the reader's disk hit and the memory instance's two (its first read from disk, then memory)
  assert.equal(stats.hits, 3)
  // the cold getOrSet and the read after invalidation
  assert.equal(stats.misses, 2)
  assert.equal(stats.sets, 1)
  assert.equal(stats.corrupt, 0)
  assert.equal(stats.errors, 0)
  assert.ok(fs.existsSync(path.join(cwd, '.larder-cache', 'CACHEDIR.TAG')), 'the cache is in ./.larder-cache')
})
