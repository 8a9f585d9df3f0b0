/**
 * The directories above `dir` are the user's: found by an adversarial review (2026-12-06), a
 * project deleted while its server ran (`rm -rf ~/proj`) was brought back, every parent of the
 * cache directory, by the next write (`mkdir -p`). They are made once, for a cache that never
 * had its directory; a cache directory that vanishes alone is still made again.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { tempDir } from './helpers.ts'

test('the parents of a cache directory are made at open, never again once removed', async () => {
  const root = tempDir('larder-parents')
  const project = path.join(root, 'project')
  const dir = path.join(project, 'node_modules', '.cache', 'larder')
  const cache = await Larder.open({ dir, maintenance: false })
  try {
    await cache.set('a', 1)
    fs.rmSync(dir, { recursive: true })
    await cache.set('b', 2)
    assert.equal(await cache.get('b'), 2, 'a cache directory removed alone is made again')
    fs.rmSync(project, { recursive: true })
    await cache.set('c', 3) // fail-open: a counted drop
    assert.equal(await cache.get('c'), undefined)
    assert.equal(fs.existsSync(project), false, 'the project stays deleted')
    assert.equal((await cache.stats()).dropped, 1)
  } finally {
    await cache.close()
  }
  assert.equal(fs.existsSync(project), false, 'close() writes nothing there either')
})

test('a second instance of the directory, opened after the project was deleted, makes no parents either: its writes are counted drops', async () => {
  const root = tempDir('larder-parents')
  const project = path.join(root, 'project')
  const dir = path.join(project, 'node_modules', '.cache', 'larder')
  const first = await Larder.open({ dir, maintenance: false })
  await first.set('a', 1)
  await first.close()
  const kept = await Larder.open({ dir, maintenance: false, namespace: 'kept' })
  try {
    fs.rmSync(project, { recursive: true })
    // A namespace opened now (as a server opens a team's on its first upload), and the same
    // one opened again (as a server reopens a team it closed to make room).
    for (const namespace of ['new', '']) {
      const later = await Larder.open({ dir, maintenance: false, namespace })
      try {
        const dropped = (await later.stats()).dropped // its open could not make its directory either
        await later.set('b', 2)
        assert.equal(await later.get('b'), undefined)
        assert.equal((await later.stats()).dropped, dropped + 1, `namespace '${namespace}': the write is a counted drop`)
      } finally {
        await later.close()
      }
      assert.equal(fs.existsSync(project), false, `namespace '${namespace}': the project stays deleted`)
    }
  } finally {
    await kept.close()
  }
  assert.equal(fs.existsSync(project), false, 'close() writes nothing there either')
})

test('a cache directory removed after its last write is not brought back by close() or by exit (neither its running totals nor its activity record)', async () => {
  const dir = path.join(tempDir('larder-parents'), 'cache')
  // Without maintenance close() writes the activity record; with it, the running totals too (a
  // burst: the changes after its first write wait for a flush, close's).
  for (const options of [{ maintenance: false }, {}]) {
    const cache = await Larder.open({ dir, ...options })
    for (let i = 0; i < 20; i++) await cache.set(`k${i}`, i)
    assert.equal(await cache.get('k1'), 1)
    fs.rmSync(dir, { recursive: true })
    await cache.close()
    assert.equal(fs.existsSync(dir), false, `close() made the cache directory again (${JSON.stringify(options)})`)
  }

  // The same at exit, in a process that never closes its cache.
  const script = `
    const { Larder } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)})
    const fs = await import('node:fs')
    const cache = await Larder.open({ dir: ${JSON.stringify(dir)} })
    for (let i = 0; i < 20; i++) await cache.set('k' + i, i)
    await cache.get('k1')
    fs.rmSync(${JSON.stringify(dir)}, { recursive: true })
  `
  execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'inherit' })
  assert.equal(fs.existsSync(dir), false, 'the exit hook made the cache directory again')
})
