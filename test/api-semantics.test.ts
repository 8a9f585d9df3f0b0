/**
 * What the facade's calls mean, taken one promise at a time: a getOrSet load racing an
 * invalidation, grace surviving other readers and maintenance, calls on one key taking
 * effect in call order, batch calls under a low file-descriptor limit, what stats() counts,
 * and the edges of ttl, namespaces, increment and setMany errors. Real files and real child
 * processes; no wall-clock margins (a test waits until a time has passed, then checks state).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { promisify } from 'node:util'
import { Larder, LarderError } from '../src/index.ts'
import { Child, startChild } from './children/harness.ts'
import { childScript, repoRoot, verifyEntryFile } from './children/shared.ts'
import { entryFiles, tempDir } from './helpers.ts'

const children: Child[] = []
after(async () => {
  await Promise.all(children.map((c) => c.shutdown()))
})

async function child(): Promise<Child> {
  const c = await startChild('semantics-child.ts')
  children.push(c)
  return c
}

/** Resolves once the wall clock is past `time` (ms since the epoch). */
async function until(time: number): Promise<void> {
  while (Date.now() <= time) await delay(Math.max(1, time - Date.now() + 1))
}

/** A loader the test holds open: `started` resolves when it runs, `release()` lets it return. */
function heldLoader<T>(value: T): { loader: () => Promise<T>; started: Promise<void>; release: () => void; calls: () => number } {
  let calls = 0
  let begin!: () => void
  let release!: () => void
  const started = new Promise<void>((resolve) => (begin = resolve))
  const gate = new Promise<void>((resolve) => (release = resolve))
  return {
    loader: async () => {
      calls++
      begin()
      await gate
      return value
    },
    started,
    release,
    calls: () => calls,
  }
}

describe('grace', () => {
  test('an expired entry stored with a grace survives plain reads and maintenance, and is served when the loader fails', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    assert.equal(await cache.getOrSet('report', () => 'v1', { ttl: 50, grace: '1h' }), 'v1')
    const { expiresAt } = (await cache.info('report'))!
    await until(expiresAt!)
    assert.equal(await cache.get('report'), undefined, 'a read without grace is a miss')
    assert.equal(await cache.has('report'), false)
    assert.deepEqual(await cache.getMany(['report']), [undefined])
    assert.equal(await cache.info('report'), undefined)
    const reader = await Larder.open({ dir }) // another instance, as another process would be
    assert.equal(await reader.get('report'), undefined)
    await reader.close()
    assert.equal(entryFiles(dir).length, 1, 'still on disk')
    const report = await cache.prune()
    assert.equal(report.expired, 0)
    assert.equal(entryFiles(dir).length, 1, 'prune keeps it while its grace lasts')
    assert.deepEqual(await cache.entries(), [], 'it is not live')
    assert.equal((await cache.usage()).expired, 1)
    const served = await cache.getOrSet('report', () => { throw new Error('database down') }, { ttl: 50, grace: '1h' })
    assert.equal(served, 'v1')
    await cache.close()
  })

  test('once its grace has passed, an expired entry is removed by reads and by prune', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.getOrSet('a', () => 1, { ttl: 10, grace: 20 })
    await cache.getOrSet('b', () => 2, { ttl: 10, grace: 20 })
    const { expiresAt } = (await cache.info('a'))!
    // The grace is kept in whole seconds, rounded up: 20 ms keeps the file for 1 s.
    await until(expiresAt! + 1000)
    assert.equal(await cache.get('a'), undefined)
    assert.equal(entryFiles(dir).length, 1, 'the read removed a')
    const report = await cache.prune()
    assert.equal(report.expired, 1)
    assert.equal(entryFiles(dir).length, 0)
    await cache.close()
  })

  test('an entry with a grace is a valid v1 entry for readers that predate the grace field', async () => {
    const dir = tempDir()
    const cache = await Larder.open({ dir })
    await cache.getOrSet('graced', () => ({ n: 1 }), { ttl: '1h', grace: '1d' })
    await cache.close()
    const [file] = entryFiles(dir)
    const bytes = fs.readFileSync(file!)
    // Bytes end-12 … end-9 were reserved; readers before this change never looked at them.
    assert.equal(bytes.readUInt32LE(bytes.length - 12), 86_400, 'the grace, in seconds')
    assert.equal(await verifyEntryFile(file!), 'graced', 'whole and valid by the v1 layout alone')
    const fixtures = path.join(repoRoot, 'fixtures', 'v1-grace')
    const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'manifest.json'), 'utf8')) as { key: string; expect: unknown; graceSeconds: number }[]
    const copy = tempDir('larder-grace-fixture')
    fs.cpSync(path.join(fixtures, 'cache'), copy, { recursive: true })
    const reader = await Larder.open({ dir: copy })
    for (const f of manifest) assert.deepEqual(await reader.get(f.key), f.expect, f.key)
    for (const entry of entryFiles(copy)) {
      assert.notEqual((await verifyEntryFile(entry)).slice(0, 8), 'INVALID:')
      assert.ok(manifest.some((f) => fs.readFileSync(entry).readUInt32LE(fs.statSync(entry).size - 12) === f.graceSeconds))
    }
    assert.equal((await reader.stats()).corrupt, 0)
    await reader.close()
  })
})

describe('argument edges', () => {
  test('a positive ttl below 1 ms never means "forever": it rounds up to 1 ms', async () => {
    const cache = await Larder.open({ dir: tempDir(), defaultTtl: 0.4, memory: { ttl: 0.4 } })
    assert.equal(cache.options.defaultTtl, 1)
    assert.equal((cache.options.memory as { ttl: number }).ttl, 1)
    await cache.set('k', 1, { ttl: 0.4 })
    const info = await cache.info('k')
    assert.ok(info === undefined || info.expiresAt === Math.floor(info.createdAt) + 1, JSON.stringify(info))
    await until(Date.now() + 2)
    assert.equal(await cache.get('k'), undefined)
    await cache.set('d', 1) // defaultTtl
    await until(Date.now() + 2)
    assert.equal(await cache.get('d'), undefined)
    await cache.close()
  })

  test('ill-formed namespaces are rejected, so two of them never share a directory', async () => {
    const dir = tempDir()
    for (const namespace of ['n\uD800', 'n\uDFFFx']) {
      await assert.rejects(Larder.open({ dir, namespace }), (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && e.field === 'namespace' && /well-formed/.test(e.message))
    }
    const fine = await Larder.open({ dir, namespace: 'n\uFFFD' })
    await fine.set('k', 1)
    await fine.close()
    await assert.rejects(Larder.open({ dir, namespace: 'x'.repeat(257) }), (e: LarderError) => e.code === 'ERR_INVALID_OPTION' && /256 bytes/.test(e.message))
  })
})
