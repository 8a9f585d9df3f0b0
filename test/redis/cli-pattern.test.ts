/**
 * `larder rm --pattern` and `larder prune --pattern` with `--redis URL` (or LARDER_REDIS_URL):
 * the matching keys go from the directory, from Redis, and (through the bus) from the local
 * copies of every instance sharing that Redis. Runs the built bin (dist/cli.js) against a real
 * redis-server; `npm test` builds first.
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { namesOnMasters, startCluster } from './cluster.ts'
import { eventually, freePort, redisAvailable, startRedis, type RedisServer } from './server.ts'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(root, 'dist', 'cli.js')
const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the bin; the environment has no LARDER_* but what `env` gives. */
function larder(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LARDER_')))
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

describe('the CLI removes matching keys from Redis too (--redis, LARDER_REDIS_URL)', { skip }, () => {
  let redis: Redis
  let run = 0
  const open: Larder[] = []
  before(() => {
    assert.ok(fs.existsSync(BIN), 'dist/cli.js is missing: npm test builds it first (npm run build)')
    redis = new Redis(server.url)
  })
  after(async () => {
    await Promise.all(open.map((c) => c.close()))
    redis?.disconnect()
  })

  /** An application instance (its own directory) and a second one sharing Redis, with
   *  user:1, user:2 and order:1 written through A and read on B (so B holds local copies). */
  async function setUp(): Promise<{ prefix: string; dirA: string; a: Larder; b: Larder }> {
    const prefix = `cli${process.pid}-${++run}:`
    const options = { memory: true, maintenance: false, redis: { url: server.url, prefix } } as const
    const dirA = tempDir('larder-cli-redis')
    const a = await Larder.open({ dir: dirA, ...options })
    const b = await Larder.open({ dir: tempDir('larder-cli-redis'), ...options })
    open.push(a, b)
    for (const key of ['user:1', 'user:2', 'order:1']) await a.set(key, `value of ${key}`)
    // One at a time: a promotion that finishes while another key is read stops that read's
    // promotion (KeyOrder's version is per instance, not per key).
    for (const [i, key] of ['user:1', 'user:2', 'order:1'].entries()) {
      assert.equal(await b.get(key), `value of ${key}`)
      assert.ok(await eventually(async () => (await b.stats()).tiers.file!.sets === i + 1), `B holds ${key} in its own directory`)
    }
    assert.deepEqual(await sharedKeys(prefix), ['order:1', 'user:1', 'user:2'])
    return { prefix, dirA, a, b }
  }

  /** The cache keys Redis holds under `prefix` (the default namespace), sorted. */
  async function sharedKeys(prefix: string): Promise<string[]> {
    const names = await redis.keys(`${prefix}*`)
    return names
      .map((n) => n.slice(prefix.length))
      .filter((k) => !k.includes('\0'))
      .map((k) => k.replace(/^[^:]*:/, ''))
      .sort()
  }

  test('rm --pattern --redis removes the keys from the directory, from Redis and from every instance', async () => {
    const { prefix, dirA, a, b } = await setUp()
    const result = await larder(['rm', '--dir', dirA, '--pattern', 'user:*', '--redis', server.url, '--redis-prefix', prefix, '--json'])
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual(JSON.parse(result.stdout), { removed: 2, sharedRemoved: 2 })
    assert.deepEqual(await sharedKeys(prefix), ['order:1'], 'only the matching keys left Redis')
    assert.ok(
      await eventually(async () => (await b.get('user:1')) === undefined && (await b.get('user:2')) === undefined),
      'B dropped its local copies',
    )
    assert.equal(await a.get('user:1'), undefined)
    assert.equal(await b.get('order:1'), 'value of order:1')
    assert.equal(await a.get('order:1'), 'value of order:1')
  })

  test('prune --pattern with LARDER_REDIS_URL does the same, and reports it', async () => {
    const { prefix, dirA, b } = await setUp()
    const result = await larder(['prune', '--dir', dirA, '--pattern', 'user:2', '--json'], {
      LARDER_REDIS_URL: server.url,
      LARDER_REDIS_PREFIX: prefix,
    })
    assert.equal(result.code, 0, result.stderr)
    const report = JSON.parse(result.stdout) as { matched: number; sharedRemoved: number }
    assert.equal(report.matched, 1)
    assert.equal(report.sharedRemoved, 1)
    assert.deepEqual(await sharedKeys(prefix), ['order:1', 'user:1'])
    assert.ok(await eventually(async () => (await b.get('user:2')) === undefined), 'B dropped its local copy')
    assert.equal(await b.get('user:1'), 'value of user:1')
  })

  test('the human output says how many keys left Redis', async () => {
    const { prefix, dirA } = await setUp()
    const result = await larder(['rm', '--dir', dirA, '--pattern', 'order:*', '--redis', server.url, '--redis-prefix', prefix])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /removed 1 entry; 1 key from Redis/)
  })

  test('without --redis, Redis is left alone; a dry run removes nothing from it', async () => {
    const { prefix, dirA, b } = await setUp()
    const local = await larder(['rm', '--dir', dirA, '--pattern', 'user:*', '--json'])
    assert.equal(local.code, 0, local.stderr)
    assert.deepEqual(JSON.parse(local.stdout), { removed: 2 })
    const dry = await larder([
      'prune',
      '--dir',
      dirA,
      '--pattern',
      'order:*',
      '--dry-run',
      '--redis',
      server.url,
      '--redis-prefix',
      prefix,
      '--json',
    ])
    assert.equal(dry.code, 0, dry.stderr)
    assert.deepEqual(await sharedKeys(prefix), ['order:1', 'user:1', 'user:2'])
    assert.equal(await b.get('user:1'), 'value of user:1')
  })

  test('a --redis that is not a redis:// URL is a usage error, and nothing is removed', async () => {
    const { prefix, dirA, a } = await setUp()
    const result = await larder(['rm', '--dir', dirA, '--pattern', 'user:*', '--redis', 'http://127.0.0.1:1', '--json'])
    assert.equal(result.code, 2)
    assert.equal((JSON.parse(result.stdout) as { error: { code: string } }).error.code, 'ERR_INVALID_OPTION')
    assert.deepEqual(await sharedKeys(prefix), ['order:1', 'user:1', 'user:2'])
    assert.equal((await a.entries()).length, 3)
  })

  test('a --redis that does not parse (a port past 65535, a port in words) is a usage error; no password is ever shown', async () => {
    const { prefix, dirA, a } = await setUp()
    for (const url of ['redis://127.0.0.1:99999', 'redis://127.0.0.1:port']) {
      const result = await larder(['rm', '--dir', dirA, 'user:1', '--redis', url, '--json'])
      assert.equal(result.code, 2, `${url}: ${result.stdout}`)
      const { error } = JSON.parse(result.stdout) as { error: { code: string; message: string } }
      assert.equal(error.code, 'ERR_INVALID_OPTION')
      assert.match(error.message, /redis\.url/)
    }
    for (const url of [
      'redis:/:s3cretpw@127.0.0.1:6379',
      'redis:s3cretpw@127.0.0.1',
      'http://:s3cr@tpw@127.0.0.1',
      ':s3cretpw@127.0.0.1',
      'redis://bob:s3cr etpw@[::1', // a space in the password, and a URL that does not parse
    ]) {
      for (const json of [true, false]) {
        const result = await larder(['rm', '--dir', dirA, 'user:1', '--redis', url, ...(json ? ['--json'] : [])])
        assert.equal(result.code, 2)
        assert.doesNotMatch(result.stdout + result.stderr, /s3cr|tpw/, `${url} shown: ${result.stdout}${result.stderr}`)
        assert.match(result.stdout + result.stderr, /credentials hidden|not a URL, not shown/)
      }
    }
    assert.deepEqual(await sharedKeys(prefix), ['order:1', 'user:1', 'user:2'])
    assert.equal((await a.entries()).length, 3, 'nothing removed')
  })

  test('--redis-cluster (LARDER_REDIS_CLUSTER): keys and a pattern spanning hash slots go from every master', async () => {
    const nodes = await startCluster()
    try {
      const seeds = nodes.map((node) => `127.0.0.1:${node.port}`)
      const prefix = `clu${process.pid}:`
      const options = { memory: true, maintenance: false, redis: { cluster: seeds, prefix } } as const
      const dirA = tempDir('larder-cli-cluster')
      const a = await Larder.open({ dir: dirA, ...options })
      const b = await Larder.open({ dir: tempDir('larder-cli-cluster'), ...options })
      open.push(a, b)
      const users = Array.from({ length: 20 }, (_, i) => `user:${i}`)
      for (const key of [...users, 'order:1', 'order:2']) await a.set(key, key)
      for (const key of users) assert.equal(await b.get(key), key)
      assert.equal(namesOnMasters(nodes, `${prefix}*user:*`), 20)

      const byPattern = await larder([
        'rm',
        '--dir',
        dirA,
        '--pattern',
        'user:*',
        '--redis-cluster',
        seeds.join(','),
        '--redis-prefix',
        prefix,
        '--json',
      ])
      assert.equal(byPattern.code, 0, byPattern.stdout + byPattern.stderr)
      assert.equal((JSON.parse(byPattern.stdout) as { sharedRemoved: number }).sharedRemoved, 20)
      assert.equal(namesOnMasters(nodes, `${prefix}*user:*`), 0, 'no user:* key left on any master')
      assert.ok(
        await eventually(async () => (await Promise.all(users.map((key) => b.get(key)))).every((v) => v === undefined)),
        'B serves none',
      )

      // Keys by name, in different slots, the cluster named by the environment.
      const byKeys = await larder(['rm', '--dir', dirA, 'order:1', 'order:2', '--redis-prefix', prefix, '--json'], {
        LARDER_REDIS_CLUSTER: seeds.join(','),
      })
      assert.equal(byKeys.code, 0, byKeys.stdout + byKeys.stderr)
      const fresh = await Larder.open({ dir: false, redis: { cluster: seeds, prefix } })
      open.push(fresh)
      assert.deepEqual([await fresh.get('order:1'), await fresh.get('order:2')], [undefined, undefined], 'Redis holds neither')
      assert.ok(await eventually(async () => (await b.get('order:1')) === undefined && (await b.get('order:2')) === undefined))

      const both = await larder(['rm', '--dir', dirA, 'x', '--redis', server.url, '--redis-cluster', seeds.join(','), '--json'])
      assert.equal(both.code, 2, 'a URL and a cluster at once: a usage error')
    } finally {
      await Promise.all(nodes.map((node) => node.stop()))
    }
  })

  test('a Redis that cannot be reached fails the command (exit 1, ERR_UNAVAILABLE) once the directory is done', async () => {
    const { dirA, a } = await setUp()
    const nobody = `redis://127.0.0.1:${await freePort()}`
    const result = await larder(['prune', '--dir', dirA, '--pattern', 'user:*', '--redis', nobody, '--json'])
    assert.equal(result.code, 1, result.stderr)
    assert.equal((JSON.parse(result.stdout) as { error: { code: string } }).error.code, 'ERR_UNAVAILABLE')
    assert.deepEqual(
      (await a.entries()).map((e) => e.key),
      ['order:1'],
    )
  })

  test('--redis on the command line wins over LARDER_REDIS_CLUSTER left set, and --redis-cluster over LARDER_REDIS_URL; both flags at once is a usage error naming them', async () => {
    const { prefix, dirA } = await setUp()
    const nobody = `127.0.0.1:${await freePort()}`
    const flagWins = await larder(['rm', '--dir', dirA, '--pattern', 'user:1', '--redis', server.url, '--redis-prefix', prefix, '--json'], {
      LARDER_REDIS_CLUSTER: nobody,
    })
    assert.equal(flagWins.code, 0, flagWins.stderr)
    assert.deepEqual(JSON.parse(flagWins.stdout), { removed: 1, sharedRemoved: 1 })
    assert.deepEqual(await sharedKeys(prefix), ['order:1', 'user:2'])
    // The cluster named on the command line is the one tried (nobody answers there), not refused
    // beside the URL the environment holds.
    const clusterWins = await larder(['rm', '--dir', dirA, '--pattern', 'user:2', '--redis-cluster', nobody, '--json'], {
      LARDER_REDIS_URL: server.url,
    })
    assert.equal(clusterWins.code, 1, clusterWins.stderr)
    assert.equal((JSON.parse(clusterWins.stdout) as { error: { code: string } }).error.code, 'ERR_UNAVAILABLE')
    const both = await larder(['rm', '--dir', dirA, '--pattern', 'order:*', '--redis', server.url, '--redis-cluster', nobody])
    assert.equal(both.code, 2)
    assert.match(both.stderr, /^larder: --redis and --redis-cluster: give one/)
    assert.deepEqual(await sharedKeys(prefix), ['order:1', 'user:2'], 'the usage error removed nothing from Redis')
  })
})
