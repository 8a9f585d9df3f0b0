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
