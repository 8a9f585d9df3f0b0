/**
 * larder/keyv with the real Keyv 5, cache-manager 7 and cacheable 2: Keyv's own conformance
 * suite, values shared by processes and kept across restarts, namespaces, native expiry, and
 * what a failing disk or a value larder cannot store does to the host library (nothing thrown;
 * Keyv's `error` event hears of it).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { describe, test } from 'node:test'
import Keyv from 'keyv'
import { createCache } from 'cache-manager'
import { Cacheable } from 'cacheable'
import { Larder, LarderError, isLarderError } from 'larder'
import { KeyvLarder } from 'larder/keyv'
import { tempDir } from '../helpers.ts'
import { repoRoot } from '../children/shared.ts'
import { runChild, runChildWith } from './processes.ts'
import { clearCase, failingDiskCase } from './keyv-fixtures.ts'

const run = promisify(execFile)

/** Collects what a Keyv (or the adapter) emits as 'error'. */
function errorsOf(emitter: { on(event: 'error', listener: (error: unknown) => void): unknown }): unknown[] {
  const seen: unknown[] = []
  emitter.on('error', (error) => seen.push(error))
  return seen
}

describe('larder/keyv', () => {
  test(
    '@keyv/test-suite passes against the built adapter: 42 of 42 per wiring (a cache passed in, options), iterator tests included',
    { timeout: 180_000 },
    async () => {
      if (!fs.existsSync(path.join(repoRoot, 'dist', 'adapters', 'keyv.js'))) {
        await run('npm', ['run', 'build', '--silent'], { cwd: repoRoot, timeout: 120_000 })
      }
      const dir = tempDir('larder-keyv-suite')
      const reportFile = path.join(dir, 'report.json')
      const vitest = path.join(repoRoot, 'node_modules', 'vitest', 'vitest.mjs')
      await run(process.execPath, [vitest, 'run', 'test/adapters/keyv-suite.spec.ts', '--reporter=json', `--outputFile=${reportFile}`], {
        cwd: repoRoot,
        timeout: 170_000,
        env: { ...process.env, LARDER_KEYV_SUITE_DIR: dir },
      }).catch((error: Error & { stdout?: string; stderr?: string }) => {
        if (!fs.existsSync(reportFile))
          throw new Error(`vitest failed without a report: ${error.message}\n${error.stdout}\n${error.stderr}`)
      })
      const result = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as {
        numTotalTests: number
        numPassedTests: number
        numFailedTests: number
        testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[]
      }
      const tests = result.testResults.flatMap((file) => file.assertionResults)
      const failed = tests.filter((t) => t.status !== 'passed').map((t) => `${t.fullName}: ${t.status} ${t.failureMessages.join('\n')}`)
      assert.deepEqual(failed, [])
      assert.equal(result.numTotalTests, 84)
      assert.equal(result.numPassedTests, 84)
      assert.equal(tests.filter((t) => /iterator/i.test(t.fullName)).length >= 8, true, 'the iterator tests ran in both wirings')
    },
  )

  test('values survive a restart and are shared by two processes (Keyv and cache-manager wrap)', { timeout: 60_000 }, async () => {
    const dir = tempDir('larder-keyv-procs')
    assert.deepEqual(await runChild('keyv-child.ts', 'write', dir), { computed: 1 })

    // This process, after the writer exited: a restart as far as the values are concerned.
    const keyv = new Keyv({ store: new KeyvLarder({ dir }), namespace: 'app' })
    const manager = createCache({ stores: [new Keyv({ store: new KeyvLarder({ dir }), namespace: 'manager' })] })
    assert.deepEqual(await keyv.get('user:1'), { name: 'Ada', at: 'child' })
    assert.deepEqual(await keyv.get('forever'), [1, 2, 3])
    let computed = 0
    const wrapped = await manager.wrap('report', () => Promise.resolve({ report: `computed by ${++computed}` }), 60_000)
    assert.equal(computed, 0, 'wrap found the value the other process computed')
    assert.match(wrapped.report, /^computed by \d+$/)
    await keyv.set('from-parent', 'hello')
    await keyv.disconnect()
    await manager.disconnect()

    const seen = await runChild('keyv-child.ts', 'read', dir)
    assert.deepEqual(seen, { user: { name: 'Ada', at: 'child' }, forever: [1, 2, 3], parent: 'hello', wrapped, computed: 0 })
  })

  test('cacheable 2 with larder as its secondary store: a fresh Cacheable (a restart) gets a hit from larder', async () => {
    const dir = tempDir('larder-keyv-cacheable')
    const first = new Cacheable({ secondary: new Keyv({ store: new KeyvLarder({ dir }) }), ttl: '1h' })
    await first.set('profile:7', { plan: 'pro' })
    await first.disconnect()

    const cache = await Larder.open({ dir })
    const store = new KeyvLarder(cache)
    const fresh = new Cacheable({ secondary: new Keyv({ store }), ttl: '1h' })
    const hits: string[] = []
    cache.on('hit', (key) => hits.push(key))
    assert.deepEqual(await fresh.get('profile:7'), { plan: 'pro' })
    assert.deepEqual(hits, ['keyv:profile:7'], "the value came from larder, under Keyv's prefixed key")
    assert.deepEqual(await fresh.get('profile:7'), { plan: 'pro' })
    assert.deepEqual(hits, ['keyv:profile:7'], "then from cacheable's memory primary")
    await cache.close()
  })

  test('clear() empties its namespace in every instance sharing the directory, and nothing else', () =>
    clearCase((store, namespace) => new Keyv({ store, namespace })))

  test('the batch methods: setMany answers a boolean per entry (false when refused) and keeps each ttl and the namespace; getMany, hasMany, deleteMany', async () => {
    const dir = tempDir('larder-keyv-batch')
    const cache = await Larder.open({ dir })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'b' })
    assert.deepEqual(
      await keyv.setMany([
        { key: 'x', value: 1 },
        { key: 'y', value: 2, ttl: 60_000 },
      ]),
      [true, true],
    )
    assert.deepEqual(await keyv.get(['x', 'y', 'z']), [1, 2, undefined])
    assert.deepEqual(await keyv.hasMany(['x', 'z']), [true, false])
    const [x, y] = [await cache.info('b:x'), await cache.info('b:y')]
    assert.deepEqual([x?.tags, x?.expiresAt, y?.tags], [['keyv:b'], null, ['keyv:b']])
    assert.ok(Math.abs(y!.expiresAt! - y!.createdAt - 60_000) < 1, JSON.stringify(y))
    assert.equal(await keyv.delete(['x', 'y']), true)
    assert.deepEqual(await keyv.get(['x', 'y']), [undefined, undefined])

    const small = new Keyv({ store: new KeyvLarder({ dir, maxValueSize: '1KiB' }), namespace: 'b' })
    const errors = errorsOf(small)
    assert.deepEqual(
      await small.setMany([
        { key: 'fits', value: 1 },
        { key: 'big', value: 'x'.repeat(4096) },
      ]),
      [false, false],
      'larder stores a batch whole or not at all',
    )
    assert.ok(errors.length === 1 && isLarderError(errors[0], 'ERR_TOO_LARGE'), errors.map(String).join('; '))
    assert.deepEqual(await keyv.get(['fits', 'big']), [undefined, undefined])
    await small.disconnect()
    await cache.close()
  })

  test('a key larder would refuse (over 8 KiB, a NUL, a lone surrogate, empty) is stored under its SHA-256: read, batched, deleted, listed and wrapped as Keyv knows it', async () => {
    const dir = tempDir('larder-keyv-keys')
    const cache = await Larder.open({ dir })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'ns' })
    const errors = errorsOf(keyv)
    const odd = ['q'.repeat(9000), 'a\0b', 'lone \ud800', '€'.repeat(3000)]
    for (const [i, key] of odd.entries()) assert.equal(await keyv.set(key, { i }), true, `set of odd key ${i}`)
    for (const [i, key] of odd.entries()) assert.deepEqual(await keyv.get(key), { i }, `get of odd key ${i}`)
    await keyv.set('a', 1)
    await keyv.set('b', 2)
    // One odd key in a batch used to make every key of it miss, and a deleteMany leave the rest.
    assert.deepEqual(await keyv.getMany(['a', 'b', odd[0]!, 'a\0c']), [1, 2, { i: 0 }, undefined])
    assert.deepEqual(await keyv.hasMany(['a', odd[1]!, 'a\0c']), [true, true, false])
    const listed = new Map<string, unknown>()
    for await (const [key, value] of keyv.iterator!('ns')) listed.set(key as string, value)
    assert.deepEqual(new Set(listed.keys()), new Set(['a', 'b', ...odd]), 'the iterator gives the keys as Keyv knows them')
    assert.equal(await keyv.deleteMany(['a', odd[0]!]), true)
    assert.deepEqual(await keyv.getMany(['a', odd[0]!, 'b']), [undefined, undefined, 2], 'both are gone, b stays')
    // A key stored under another's hash would need a SHA-256 collision: a key that is not the
    // one kept beside the value reads as a miss (here, written by hand under the hash).
    const stored = (await cache.entries({ prefix: 'sha256:' })).map((e) => e.key)
    assert.equal(stored.length, 3, 'the three odd keys left are stored hashed')
    await cache.set(stored[0]!, { 'larder:keyv-key': 'another key', value: 'x' })
    assert.equal((await Promise.all(odd.slice(1).map((key) => keyv.get(key)))).filter((v) => v === undefined).length, 1)

    let computed = 0
    const manager = createCache({ stores: [new Keyv({ store: new KeyvLarder(cache), namespace: 'cm' })] })
    for (let i = 0; i < 3; i++) await manager.wrap(odd[0]!, () => Promise.resolve(++computed))
    assert.equal(computed, 1, 'cache-manager wrap of a long key computes once')
    assert.deepEqual(errors, [])
    await cache.close()
  })

  test("a key that looks like a hashed key (sha256:<the hash of a long key>) is not that long key's entry: neither read nor overwritten by it", async () => {
    for (const memory of [false, true]) {
      const cache = await Larder.open({ dir: tempDir('larder-keyv-looks-hashed'), memory })
      // Without the prefix (or in Keyv 6 without a namespace) a Keyv key is the stored key as it is.
      const keyv = new Keyv({ store: new KeyvLarder(cache), useKeyPrefix: false })
      const errors = errorsOf(keyv)
      const long = 'k'.repeat(9000)
      const lookalike = `sha256:${createHash('sha256').update(long).digest('hex')}`
      await keyv.set(long, 'the long key')
      assert.equal(await keyv.get(lookalike), undefined, `memory ${memory}: another key's value was served`)
      assert.equal(await keyv.has(lookalike), false)
      await keyv.set(lookalike, 'the lookalike')
      assert.deepEqual(await keyv.getMany([long, lookalike]), ['the long key', 'the lookalike'])
      const listed = new Map<string, unknown>()
      for await (const [key, value] of keyv.iterator!(undefined)) listed.set(key as string, value)
      assert.deepEqual(
        listed,
        new Map([
          [long, 'the long key'],
          [lookalike, 'the lookalike'],
        ]),
      )
      assert.deepEqual(errors, [])
      await cache.close()
    }
  })

  test('a namespace larder would refuse as a tag (over 1 KiB, a NUL, a lone surrogate) is kept all the same: set, read, listed, and cleared alone', async () => {
    const cache = await Larder.open({ dir: tempDir('larder-keyv-odd-namespaces') })
    const other = new Keyv({ store: new KeyvLarder(cache), namespace: 'other' })
    await other.set('k', 'stays')
    for (const namespace of ['n'.repeat(1100), 'é'.repeat(600), 'a\0b', 'lone \ud800']) {
      const keyv = new Keyv({ store: new KeyvLarder(cache), namespace })
      const errors = errorsOf(keyv)
      assert.equal(await keyv.set('k', 1), true, `set in a namespace of ${namespace.length} characters`)
      assert.equal(await keyv.get('k'), 1)
      const listed: unknown[] = []
      for await (const entry of keyv.iterator!(namespace)) listed.push(entry)
      assert.deepEqual(listed, [['k', 1]])
      await keyv.clear()
      assert.equal(await keyv.get('k'), undefined, 'cleared')
      assert.deepEqual(errors, [])
    }
    assert.equal(await other.get('k'), 'stays', 'another namespace is left alone')
    await cache.close()
  })

  test('a ttl Keyv passes on as it came: Infinity and NaN never expire (as in Keyv), a negative one deletes the key (as under Keyv 6); nothing is refused', async () => {
    const dir = tempDir('larder-keyv-odd-ttl')
    const cache = await Larder.open({ dir })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'ns' })
    const errors = errorsOf(keyv)
    assert.equal(await keyv.set('forever', 'v', Infinity), true)
    assert.equal(await keyv.set('nan', 'v', Number.NaN), true)
    assert.equal(await keyv.set('past', 'before'), true)
    assert.equal(await keyv.set('past', 'v', -1000), true)
    assert.equal(await keyv.get('forever'), 'v')
    assert.equal(await keyv.get('nan'), 'v')
    assert.equal((await cache.info('ns:forever'))?.expiresAt, null)
    // The past one kept no file (not even a dead one until a prune or a get), nor the value it replaced.
    const usage = await cache.usage()
    assert.deepEqual({ entries: usage.entries, expired: usage.expired }, { entries: 2, expired: 0 })
    assert.equal(await keyv.get('past'), undefined)
    assert.deepEqual(errors, [])
    await cache.close()
  })

  test("Keyv's ttl becomes the entry's own expiry, so maintenance reclaims it", async () => {
    const dir = tempDir('larder-keyv-ttl')
    const cache = await Larder.open({ dir })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'ns' })
    const before = Date.now()
    await keyv.set('long', 'v', 3_600_000)
    await keyv.set('short', 'v', 20)
    await keyv.set('never', 'v')
    const long = await cache.info('ns:long')
    const expiresAt = long?.expiresAt ?? 0
    assert.ok(expiresAt >= before + 3_600_000 && expiresAt <= Date.now() + 3_600_000, `expiresAt ${expiresAt}`)
    assert.equal((await cache.info('ns:never'))?.expiresAt, null)
    await sleep(50)
    const report = await cache.prune()
    assert.equal(report.expired, 1, 'the expired entry was removed by a prune, without any read')
    assert.deepEqual((await cache.entries()).map((e) => e.key).sort(), ['ns:long', 'ns:never'])
    await cache.close()
  })

  test("a failing disk: reads miss, writes are dropped, nothing throws into Keyv, and Keyv's error event hears of it", () =>
    failingDiskCase((store, namespace) => new Keyv({ store, namespace })))

  test('with failOpen: false the store rejects with ERR_UNAVAILABLE, as its user asked', async () => {
    const dir = path.join(tempDir('larder-keyv-failopen'), 'cache')
    const store = new KeyvLarder({ dir, failOpen: false })
    await store.set('k', 'v')
    fs.renameSync(dir, `${dir}.away`)
    fs.writeFileSync(dir, 'not a directory')
    await assert.rejects(store.get('k'), (e: unknown) => isLarderError(e, 'ERR_UNAVAILABLE'))
    await assert.rejects(store.set('k', 'v'), (e: unknown) => isLarderError(e, 'ERR_UNAVAILABLE'))
    await store.disconnect()
  })

  test('a value larder cannot store is a Keyv error event and set() → false; one too large to read is a miss and an error event, never a throw', async () => {
    const dir = tempDir('larder-keyv-bad-values')
    const small = new Keyv({ store: new KeyvLarder({ dir, maxValueSize: '1KiB' }), namespace: 'ns' })
    const errors = errorsOf(small)
    assert.equal(await small.set('big', 'x'.repeat(4096)), false)
    assert.equal(errors.length, 1)
    assert.ok(isLarderError(errors[0], 'ERR_TOO_LARGE'), String(errors[0]))

    // Another process stored it with a larger bound; this one reads it as a miss.
    const roomy = new Keyv({ store: new KeyvLarder({ dir }), namespace: 'ns' })
    assert.equal(await roomy.set('big', 'x'.repeat(4096)), true)
    assert.equal(await small.get('big'), undefined)
    assert.deepEqual(await small.get(['big']), [undefined]) // Keyv does not catch a store's getMany
    for await (const entry of small.iterator!(undefined)) assert.fail(`iterated ${String(entry)}`)
    assert.ok(
      errors.length >= 3 && errors.slice(1).every((e) => isLarderError(e, 'ERR_TOO_LARGE')),
      `errors: ${errors.map(String).join('; ')}`,
    )

    // A value Keyv hands over unserialized (serialize: undefined) that larder's json refuses.
    const unserialized = new Keyv({ store: new KeyvLarder({ dir }), namespace: 'raw', serialize: undefined, deserialize: undefined })
    const refused = errorsOf(unserialized)
    assert.equal(await unserialized.set('n', 10n), false)
    assert.ok(refused[0] instanceof LarderError && refused[0].code === 'ERR_SERIALIZE', String(refused[0]))
    await Promise.all([small.disconnect(), roomy.disconnect(), unserialized.disconnect()])
  })
  test('iterator() lists a namespace a partition at a time: its first item comes once a fraction of the directory is listed, and stopping there lists no more', async () => {
    const dir = tempDir('larder-keyv-bounded')
    const cache = await Larder.open({ dir })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'big' })
    const count = 1500 // spread over nearly all of the 256 partitions
    for (let i = 0; i < count; i += 100)
      await keyv.setMany(Array.from({ length: Math.min(100, count - i) }, (_, j) => ({ key: `k${i + j}`, value: i + j })))
    const listed: { done: number; total: number }[] = []
    cache.on('progress', (p) => {
      if (p.operation === 'list') listed.push({ done: p.done, total: p.total })
    })

    let atFirst: { done: number; total: number } | undefined
    for await (const entry of keyv.iterator!('big')) {
      assert.ok(Array.isArray(entry))
      atFirst = listed.at(-1)
      break
    }
    assert.ok(atFirst !== undefined && atFirst.total > 200, `the entries span ${atFirst?.total} partitions`)
    assert.ok(atFirst.done <= 4, `${atFirst.done} of ${atFirst.total} partitions listed when the first item came`)
    await sleep(50)
    assert.equal(listed.at(-1)!.done, atFirst.done, 'the listing stopped with the iterator')

    listed.length = 0
    const keys = new Map<string, unknown>()
    for await (const [key, value] of keyv.iterator!('big') as AsyncIterable<[string, unknown]>) {
      assert.equal(keys.has(key), false, `${key} listed once`)
      keys.set(key, value)
    }
    assert.equal(keys.size, count)
    assert.equal(keys.get('k1234'), 1234)
    assert.deepEqual(listed.at(-1), { done: atFirst.total, total: atFirst.total })
    await cache.close()
  })
  test('iterator() keeps no key it listed from the directory: 5,000 keys of 7,000 characters (35 MB) iterate in a 32 MB heap (what the child holds besides: ~14 MB), and a key the memory tier holds too comes once', async () => {
    const dir = tempDir('larder-keyv-long-keys')
    const cache = await Larder.open({ dir, memory: true })
    const keyv = new Keyv({ store: new KeyvLarder(cache), namespace: 'long' })
    const key = (i: number): string => `${i}:`.padEnd(7000, 'k')
    const n = 5000
    for (let i = 0; i < n; i += 100) await keyv.setMany(Array.from({ length: 100 }, (_, j) => ({ key: key(i + j), value: i + j })))
    for (let i = 0; i < 50; i++) assert.equal(await keyv.get(key(i)), i) // held by the memory tier too

    const seen = new Set<string>()
    for await (const [listed] of keyv.iterator!('long') as AsyncIterable<[string, unknown]>) {
      assert.equal(seen.has(listed), false, `${listed.slice(0, 8)}… came twice`)
      seen.add(listed)
    }
    assert.equal(seen.size, n)
    await cache.close()

    const child = await runChildWith<{ items: number }>(['--max-old-space-size=32'], 'keyv-iterate-child.ts', dir, 'long')
    assert.equal(child.items, n)
  })
})
