import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Larder } from '../src/index.ts'
import { BIN, bearer, call, eventually, startCli } from './server/helpers.ts'
import { tempDir } from './helpers.ts'

const TOKEN = 'tok-config-reload-4f1c'

function put(value: unknown): RequestInit {
  return { method: 'PUT', body: JSON.stringify({ value }), headers: { 'content-type': 'application/json', ...bearer(TOKEN) } }
}

function writeConfig(root: string, options: object): void {
  // Written aside and renamed, as editors do: the watcher sees the directory change.
  const file = path.join(root, 'larder.config.json')
  fs.writeFileSync(`${file}.new`, JSON.stringify(options))
  fs.renameSync(`${file}.new`, file)
}

describe('larder serve: config reload', () => {
  test('a changed config file is applied to the open namespaces, one line per change; what cannot change live is refused and the server keeps running', async () => {
    const root = tempDir('larder-serve-config')
    writeConfig(root, { defaultTtl: '1h' })
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--token', TOKEN], {}, root)
    assert.ok(cli.url !== '', cli.stderr())
    assert.ok(cli.stdout.includes(`config ${path.join(root, 'larder.config.json')}`), cli.stdout.join('\n'))
    assert.equal((await call(`${cli.url}/api/cache/k`, put(1))).status, 200) // opens the api namespace

    writeConfig(root, { defaultTtl: '2h', maxSize: '1GB' })
    await eventually(
      () => cli.stdout.includes('config api: maxSize unset → 1000000000'),
      `the change is reported:\n${cli.stdout.join('\n')}`,
    )
    assert.ok(cli.stdout.includes('config api: defaultTtl 3600000 → 7200000'), cli.stdout.join('\n'))

    writeConfig(root, { defaultTtl: '2h', maxSize: '1GB', serializer: 'v8' })
    await eventually(
      () => cli.stdout.some((line) => line.startsWith('config api: serializer cannot change while the server runs')),
      `the refusal is reported:\n${cli.stdout.join('\n')}`,
    )
    writeConfig(root, { maxSize: 'lots' })
    await eventually(
      () => cli.stdout.some((line) => /^config not reloaded \(file changed\): .*larder\.config\.json: maxSize: .*not a size/.test(line)),
      `the bad value is reported:\n${cli.stdout.join('\n')}`,
    )
    const got = await call(`${cli.url}/api/cache/k`, { headers: bearer(TOKEN) })
    assert.equal(got.status, 200, 'still serving')
    assert.ok(!cli.stdout.join('\n').includes(TOKEN), 'no token on stdout')
    assert.equal(await cli.stop(), 0)
  })

  test('SIGHUP reloads the config file (with --no-watch-config, only SIGHUP does)', async () => {
    const root = tempDir('larder-serve-config')
    writeConfig(root, { compression: 'gzip' })
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache'), '--no-watch-config'], {}, root)
    assert.ok(cli.url !== '', cli.stderr())
    assert.equal((await call(`${cli.url}/api/cache/k`, { ...put(1), headers: { 'content-type': 'application/json' } })).status, 200)
    writeConfig(root, { compression: 'brotli', breaker: { errorThresholdPercentage: 80 } })
    cli.child.kill('SIGHUP')
    await eventually(() => cli.stdout.includes('config api: compression "gzip" → "brotli"'), `reloaded:\n${cli.stdout.join('\n')}`)
    assert.ok(cli.stdout.includes('config api: breaker.errorThresholdPercentage 50 → 80'), cli.stdout.join('\n'))
    assert.ok(cli.stdout.some((line) => line.startsWith('config reloaded (SIGHUP)')))
    assert.ok(!cli.stdout.some((line) => line.includes('(file changed)')), 'the watcher is off')
    assert.equal(await cli.stop(), 0)
  })
})

describe('larder serve: options from the file and environment, per namespace (a review of replicas)', () => {
  const upload = (body: Buffer): RequestInit => ({ method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } })
  const HASH = 'a1b2c3d4e5f60718'

  test("LARDER_REDIS_URL is the cache API's shared tier only: artifacts stay on the disk, and work with no Redis there", async () => {
    const root = tempDir('larder-serve-env-redis')
    // A Redis that is not there (a port nothing listens on): before, every artifact namespace
    // had it too (with failOpen false), and uploads failed.
    const cli = await startCli(
      ['serve', '--port', '0', '--dir', path.join(root, 'cache')],
      { LARDER_REDIS_URL: 'redis://127.0.0.1:9' },
      root,
    )
    assert.ok(cli.url !== '', cli.stderr())
    assert.equal((await call(`${cli.url}/v8/artifacts/${HASH}?slug=team`, upload(Buffer.alloc(2000, 'a')))).status, 202)
    const got = await call(`${cli.url}/v8/artifacts/${HASH}?slug=team`)
    assert.equal(got.status, 200)
    assert.equal(got.text.length, 2000)
    assert.equal(
      (
        await call(`${cli.url}/api/cache/k`, {
          method: 'PUT',
          body: JSON.stringify({ value: 1 }),
          headers: { 'content-type': 'application/json' },
        })
      ).status,
      503,
      'the API does use it',
    )
    assert.equal(await cli.stop(), 0)
  })

  test('a compression level in the config file does not stop artifact namespaces (stored as they come); a reload to one applies', async () => {
    const root = tempDir('larder-serve-level')
    writeConfig(root, { compression: 'brotli', compressionLevel: 9 })
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache')], {}, root)
    assert.ok(cli.url !== '', cli.stderr())
    assert.equal(
      (await call(`${cli.url}/v8/artifacts/${HASH}?slug=team`, upload(Buffer.alloc(100, 'b')))).status,
      202,
      'before: 400 ERR_INVALID_OPTION',
    )
    assert.equal((await call(`${cli.url}/readyz`)).status, 200)
    writeConfig(root, { compression: 'gzip', compressionLevel: 4, maxSize: '1GB' })
    await eventually(() => cli.stdout.includes('config turbo:team: maxSize unset → 1000000000'), `applied:\n${cli.stdout.join('\n')}`)
    assert.ok(!cli.stdout.some((line) => line.includes('not applied')), cli.stdout.join('\n'))
    assert.equal(await cli.stop(), 0)
  })

  test("a reload that turns the API's memory tier off is refused whole: its bounds stay, and DELETE /cache/l1 still clears it", async () => {
    const root = tempDir('larder-serve-memory')
    writeConfig(root, { defaultTtl: '1h' })
    const cli = await startCli(['serve', '--port', '0', '--dir', path.join(root, 'cache')], {}, root)
    assert.ok(cli.url !== '', cli.stderr())
    const json = { 'content-type': 'application/json' }
    assert.equal((await call(`${cli.url}/api/cache/k`, { method: 'PUT', body: JSON.stringify({ value: 1 }), headers: json })).status, 200)
    writeConfig(root, { defaultTtl: '1h', memory: false })
    await eventually(() => cli.stdout.some((line) => line.startsWith('config reloaded')), `reloaded:\n${cli.stdout.join('\n')}`)
    await eventually(
      () => cli.stdout.some((line) => line.startsWith('config api: memory cannot change')),
      `refused:\n${cli.stdout.join('\n')}`,
    )
    // Before: "memory.maxSize 268435456 → unset" (the tier unbounded in bytes), and the API
    // took its memory tier for off.
    assert.ok(!cli.stdout.some((line) => line.includes('memory.maxSize')), cli.stdout.join('\n'))
    assert.deepEqual((await call(`${cli.url}/cache/l1`, { method: 'DELETE' })).json(), { success: true, cleared: 'l1' })
    const stats = (await call(`${cli.url}/cache/stats`)).json<{ l1: { enabled: boolean; entries: number } }>()
    assert.equal(stats.l1.enabled, true)
    assert.equal(stats.l1.entries, 0, 'the clear reached the memory tier')
    assert.equal(await cli.stop(), 0)
  })
})

describe('larder CLI: defaults from the config file', () => {
  test('--dir and --namespace default to the config file’s; a flag overrides them', async () => {
    const root = tempDir('larder-cli-config')
    const cache = await Larder.open({ dir: path.join(root, 'from-file'), namespace: 'app' })
    await cache.set('k', 'v')
    await cache.close()
    writeConfig(root, { dir: 'from-file', namespace: 'app' })
    const run = (...args: string[]): { status: number | null; stdout: string } => {
      const result = spawnSync(process.execPath, [BIN, ...args], {
        cwd: root,
        encoding: 'utf8',
        env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LARDER_'))),
      })
      return { status: result.status, stdout: result.stdout + result.stderr }
    }
    const fromFile = run('get', 'k')
    assert.equal(fromFile.status, 0, fromFile.stdout)
    assert.match(fromFile.stdout, /^"?v"?\n?$/)
    const other = path.join(root, 'other')
    fs.mkdirSync(other)
    const flagged = run('get', 'k', '--dir', other)
    assert.notEqual(flagged.status, 0, 'the flag wins: that directory holds no cache')
  })
})
