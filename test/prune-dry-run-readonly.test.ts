/**
 * A dry run only reads (README: `larder prune --dry-run`, "what would go, without removing
 * it"): on a readOnly cache, `prune({ dryRun: true })` and the CLI's `prune --dry-run` report
 * what a prune would remove and change nothing in the directory, not even the maintenance
 * lock's directory (which a read-only mount refuses). Tests run as root, whom chmod does not
 * stop, so "nothing written" is checked as every file's and directory's size and mtime.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Larder, LarderError } from '../src/index.ts'
import { runBin } from './cli-runner.ts'

const BIN = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), 'dist', 'cli.js')
const dirs: string[] = []
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
})

/** A cache holding 10 `user:` entries and 30 others, written and closed. */
async function filledCache(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'larder-dry-ro-'))
  dirs.push(dir)
  const cache = await Larder.open({ dir, maintenance: false })
  await cache.setMany(Array.from({ length: 10 }, (_, i) => ({ key: `user:${i}`, value: { i } })))
  await cache.setMany(Array.from({ length: 30 }, (_, i) => ({ key: `page:${i}`, value: { i } })))
  await cache.close()
  return dir
}

/** Every path under `dir` with its kind, size and mtime. */
function tree(dir: string): string[] {
  const out: string[] = []
  const walk = (at: string): void => {
    for (const name of fs.readdirSync(at).sort()) {
      const full = path.join(at, name)
      const stat = fs.lstatSync(full)
      out.push(`${path.relative(dir, full)} ${stat.isDirectory() ? 'dir' : 'file'} ${stat.size} ${stat.mtimeMs}`)
      if (stat.isDirectory()) walk(full)
    }
  }
  out.push(`. ${fs.statSync(dir).mtimeMs}`)
  walk(dir)
  return out
}

test('prune({ dryRun: true }) on a readOnly cache reports what would go and writes nothing; a real prune is still ERR_READ_ONLY', async () => {
  const dir = await filledCache()
  const before = tree(dir)
  const reader = await Larder.open({ dir, readOnly: true })
  const matched = await reader.prune({ dryRun: true, pattern: 'user:*' })
  assert.equal(matched.dryRun, true)
  assert.equal(matched.matched, 10)
  assert.deepEqual([...matched.keys!].sort(), Array.from({ length: 10 }, (_, i) => `user:${i}`).sort())
  assert.equal(matched.remainingEntries, 30)
  const evicting = await reader.prune({ dryRun: true, maxEntries: 25 })
  assert.equal(evicting.evicted, 15)
  assert.equal(evicting.remainingEntries, 25)
  await assert.rejects(reader.prune({ pattern: 'user:*' }), (e: unknown) => e instanceof LarderError && e.code === 'ERR_READ_ONLY')
  await reader.close()
  assert.deepEqual(tree(dir), before)
  const check = await Larder.open({ dir, readOnly: true })
  assert.equal((await check.entries()).length, 40)
  await check.close()
})

test('larder prune --dry-run opens the cache read-only: the report is right and nothing in the directory changed', async () => {
  const dir = await filledCache()
  const before = tree(dir)
  const run = await runBin(BIN, ['prune', '--dry-run', '--pattern', 'user:*', '--dir', dir, '--json'])
  assert.equal(run.code, 0, run.stderr)
  const report = JSON.parse(run.text) as { dryRun: boolean; matched: number; remainingEntries: number }
  assert.equal(report.dryRun, true)
  assert.equal(report.matched, 10)
  assert.equal(report.remainingEntries, 30)
  assert.deepEqual(tree(dir), before)
})
