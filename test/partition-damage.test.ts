/**
 * Something other than a directory at a partition's name (a stray file, a hard link to a file
 * outside, a FIFO, a symlink to a file): found by an adversarial review (2026-12-06). Every read
 * and write of the partition's keys met ENOTDIR, counted it as a disk failure and opened the
 * breaker for the whole cache, and nothing repaired it. Now such a read misses and the next
 * write puts a directory there; nothing outside the cache is touched.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Larder, type LarderOptions } from '../src/index.ts'
import { Layout } from '../src/store/layout.ts'
import { tempDir } from './helpers.ts'

const plants: Record<string, (at: string, outside: string) => void> = {
  'a regular file': (at) => fs.writeFileSync(at, 'stray'),
  'a hard link to a file outside the cache': (at, outside) => fs.linkSync(outside, at),
  'a FIFO': (at) => execFileSync('mkfifo', [at]),
  'a symlink to a file outside the cache': (at, outside) => fs.symlinkSync(outside, at),
}

/** A cache holding `before`, whose key `k`'s partition is then replaced by `plant`. */
async function damaged(
  plant: (at: string, outside: string) => void,
  options: Partial<LarderOptions>,
  before: Record<string, string>,
): Promise<{ cache: Larder; partition: string; outside: string }> {
  const root = tempDir('larder-partition-damage')
  const dir = path.join(root, 'cache')
  const outside = path.join(root, 'outside.txt')
  fs.writeFileSync(outside, 'not ours')
  const cache = await Larder.open({ dir, maintenance: false, ...options })
  for (const [key, value] of Object.entries(before)) await cache.set(key, value)
  const layout = new Layout(dir, '')
  const partition = path.dirname(layout.entryPath(layout.hashKey('k')))
  fs.rmSync(partition, { recursive: true, force: true })
  plant(partition, outside)
  return { cache, partition, outside }
}

for (const [what, plant] of Object.entries(plants)) {
  test(`${what} where a partition belongs: its keys miss, no disk failure is counted, and the next write repairs it`, async () => {
    const { cache, partition, outside } = await damaged(plant, {}, { elsewhere: 'kept' })
    try {
      for (let i = 0; i < 8; i++) assert.equal(await cache.get('k'), undefined)
      for (let i = 0; i < 8; i++) await cache.set('k', `v${i}`)
      assert.equal(await cache.get('k'), 'v7')
      assert.equal(await cache.get('elsewhere'), 'kept')
      const stats = await cache.stats()
      assert.equal(stats.errors, 0)
      assert.equal(stats.breaker.state, 'closed')
      assert.equal(stats.breaker.failures, 0)
      assert.ok(fs.lstatSync(partition).isDirectory(), 'a real directory is back')
      assert.equal(fs.readFileSync(outside, 'utf8'), 'not ours')
    } finally {
      await cache.close()
    }
  })

  test(`${what} where a partition belongs: a delete of its keys finds nothing, and no disk failure is counted (failOpen: false too)`, async () => {
    const { cache, outside } = await damaged(plant, { failOpen: false }, { k: 'v' })
    try {
      assert.equal(await cache.delete('k'), false)
      assert.equal(await cache.deleteMany(['k', 'k2']), 0)
      const stats = await cache.stats()
      assert.equal(stats.errors, 0)
      assert.equal(stats.breaker.failures, 0)
      assert.equal(fs.readFileSync(outside, 'utf8'), 'not ours')
    } finally {
      await cache.close()
    }
  })
}
