/**
 * `larder serve --redis`: replicas (each its own directory) sharing one real redis-server on a
 * free loopback port. The cache API's values and invalidations are shared; artifacts stay on
 * each replica's disk; the seed's l2 routes answer from the Redis tier; /readyz checks Redis
 * (every master of a Redis Cluster).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { tempDir } from '../helpers.ts'
import { redisAvailable, startRedis } from '../redis/server.ts'
import { startCluster } from '../redis/cluster.ts'
import {
  bearer,
  type CacheAnswer,
  call,
  type ErrorAnswer,
  eventually,
  type MetricsAnswer,
  type ReadyAnswer,
  startCli,
  startServer,
  type StatsAnswer,
} from './helpers.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const json = (method: string, body?: unknown): RequestInit => ({
  method,
  ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
})

test('replicas share cache API values through Redis: a value PUT on one is a redis hit on the other, then local', { skip }, async () => {
  const redis = await startRedis()
  const a = await startServer({ redis: redis.url })
  const b = await startServer({ redis: redis.url })
  assert.equal((await call(`${a.url}/api/cache/user:1`, json('PUT', { value: { name: 'Ada' }, ttl: 60 }))).status, 200)
  const first = (await call(`${b.url}/api/cache/user:1`)).json<CacheAnswer>()
  assert.deepEqual([first.hit, first.source, first.value], [true, 'redis', { name: 'Ada' }])
  const second = (await call(`${b.url}/api/cache/user:1`)).json<CacheAnswer>()
  assert.equal(second.source, 'memory', 'promoted on the first read')
  const metrics = (await call(`${b.url}/api/cache/metrics`)).json<MetricsAnswer>()
  assert.equal(metrics.l2_hits, 1)
  assert.equal(metrics.l2.enabled, true)
  const stats = (await call(`${b.url}/cache/stats`)).json<StatsAnswer>()
  assert.deepEqual([stats.l2.enabled, stats.l2.hits], [true, 1])
  // Artifacts are not shared: they stay on the replica's disk.
  assert.equal(
    (
      await call(`${a.url}/v8/artifacts/abcdef0123456789?slug=t`, {
        method: 'PUT',
        body: 'bytes',
        headers: { 'content-type': 'application/octet-stream' },
      })
    ).status,
    202,
  )
  assert.equal((await call(`${b.url}/v8/artifacts/abcdef0123456789?slug=t`)).status, 404)
})

test('an invalidation on one replica reaches the others (the bus): keys, tags, and DELETE', { skip }, async () => {
  const redis = await startRedis()
  const a = await startServer({ redis: redis.url })
  const b = await startServer({ redis: redis.url })
  for (const [key, tags] of [
    ['k1', undefined],
    ['k2', ['team:1']],
    ['k3', undefined],
  ] as const) {
    await call(`${a.url}/api/cache/${key}`, json('PUT', { value: key, ...(tags === undefined ? {} : { tags }) }))
    assert.equal((await call(`${b.url}/api/cache/${key}`)).json<CacheAnswer>().hit, true, `${key} read on b`)
  }
  assert.equal((await call(`${a.url}/api/cache/k1`, json('DELETE'))).json<CacheAnswer>().deleted, true)
  await call(`${a.url}/api/cache/invalidate`, json('POST', { tags: ['team:1'] }))
  await call(`${a.url}/api/cache/invalidate`, json('POST', { keys: ['k3'] }))
  for (const key of ['k1', 'k2', 'k3']) {
    await eventually(async () => (await call(`${b.url}/api/cache/${key}`)).status === 404, `${key} gone on b`)
  }
})

test(
  'DELETE /cache/l2 empties the Redis tier only: a new replica misses, the writer keeps its local copy; DELETE /cache/l1 the memory tier',
  { skip },
  async () => {
    const redis = await startRedis()
    const a = await startServer({ redis: redis.url })
    await call(`${a.url}/api/cache/k`, json('PUT', { value: 1 }))
    assert.notEqual(redis.cli('DBSIZE'), '0')
    const cleared = await call(`${a.url}/cache/l2`, json('DELETE'))
    assert.deepEqual(cleared.json(), { success: true, cleared: 'l2' })
    assert.equal(
      redis
        .cli('KEYS', '*k*')
        .split('\n')
        .filter((k) => k.endsWith(':k')).length,
      0,
      'no entry left in Redis',
    )
    const c = await startServer({ redis: redis.url })
    assert.equal((await call(`${c.url}/api/cache/k`)).status, 404)
    assert.equal((await call(`${a.url}/api/cache/k`)).json<CacheAnswer>().source, 'memory')
    assert.equal((await call(`${a.url}/cache/l1`, json('DELETE'))).status, 200)
    assert.equal((await call(`${a.url}/api/cache/k`)).json<CacheAnswer>().source, 'file')
  },
)

test(
  '/readyz with --redis: 200 with Redis reachable; 503 naming Redis once it is gone, the disk still writable; the replica serves what it holds, writes are 503s',
  { skip },
  async () => {
    const redis = await startRedis()
    const a = await startServer({ redis: redis.url })
    await call(`${a.url}/api/cache/kept`, json('PUT', { value: 'local too' }))
    const ready = await call(`${a.url}/readyz`)
    assert.equal(ready.status, 200)
    assert.deepEqual(ready.json(), { status: 'ready', disk: 'writable', redis: 'reachable' })
    // Probes at once never read each other's entry (each has its own key, not the pid's).
    const many = await Promise.all(Array.from({ length: 20 }, () => call(`${a.url}/readyz`)))
    assert.deepEqual(
      many.map((answer) => answer.status),
      many.map(() => 200),
    )
    await redis.kill()
    const down = await call(`${a.url}/readyz`)
    assert.equal(down.status, 503)
    assert.equal(down.json<ReadyAnswer>().disk, 'writable')
    assert.match(down.json<ReadyAnswer>().redis ?? '', /^not reachable/)
    // The replica still answers what it holds; a read that needs Redis is a miss; a write
    // cannot reach every tier, so it is not reported stored.
    assert.equal((await call(`${a.url}/healthz`)).status, 200)
    assert.equal((await call(`${a.url}/api/cache/kept`)).json<CacheAnswer>().value, 'local too')
    assert.equal((await call(`${a.url}/api/cache/never`)).status, 404)
    const put = await call(`${a.url}/api/cache/new`, json('PUT', { value: 1 }))
    assert.equal(put.status, 503)
    assert.equal(put.json<ErrorAnswer>().error.code, 'ERR_UNAVAILABLE')
  },
)

test(
  '/readyz with --redis asked by many at once: they share the probes being judged (anyone may ask, no rate limit), each answer whole',
  { skip },
  async () => {
    const redis = await startRedis()
    try {
      const a = await startServer({ redis: redis.url })
      assert.equal((await call(`${a.url}/readyz`)).status, 200) // the probes' namespaces opened
      const shared = async (): Promise<number> =>
        (await (await a.server.context.namespaces.all()).find((n) => n.name === 'larder:health:shared')!.cache.stats()).sets
      const before = await shared()
      const answers = await Promise.all(Array.from({ length: 40 }, () => call(`${a.url}/readyz`)))
      assert.deepEqual(
        answers.map((answer) => answer.json()),
        answers.map(() => ({ status: 'ready', disk: 'writable', redis: 'reachable' })),
      )
      // A probe a request made 40 (each a write, a read and a delete in Redis); shared, those
      // that came while one was judged took its answer.
      const probes = (await shared()) - before
      assert.ok(probes >= 1 && probes < 40, `${probes} probes for 40 requests at once`)
    } finally {
      await redis.stop()
    }
  },
)

test(
  '/readyz with a Redis Cluster: every master is probed, so one master down answers 503 every time, not when a probe lands on it',
  { skip },
  async () => {
    // No replicas, full coverage not required: the other masters go on serving their slots.
    const nodes = await startCluster({ extra: ['--cluster-require-full-coverage', 'no'] })
    try {
      // A breaker that never opens here: each /readyz is judged by its own probes, not by an
      // open breaker failing every command after the first few failures.
      const redis = { cluster: nodes.map((n) => `127.0.0.1:${n.port}`), commandTimeout: '300ms', breaker: { volumeThreshold: 1_000_000 } }
      const a = await startServer({ cacheOptions: { redis } })
      const sets = (): number[] => nodes.map((n) => Number(n.cli('INFO', 'commandstats').match(/cmdstat_set:calls=(\d+)/)?.[1] ?? 0))
      await call(`${a.url}/readyz`) // the namespace opened
      const before = sets()
      for (let i = 0; i < 3; i++)
        assert.deepEqual((await call(`${a.url}/readyz`)).json(), { status: 'ready', disk: 'writable', redis: 'reachable' })
      const probed = sets().map((calls, i) => calls - before[i]!)
      assert.ok(
        probed.every((calls) => calls >= 3),
        `every master took a probe write at each /readyz: ${probed.join(', ')}`,
      )
      await nodes[1]!.kill()
      const answers = []
      for (let i = 0; i < 6; i++) answers.push(await call(`${a.url}/readyz`))
      assert.deepEqual(
        answers.map((answer) => answer.status),
        answers.map(() => 503),
      )
      assert.match(answers[0]!.json<ReadyAnswer>().redis ?? '', /^not reachable/)
      assert.equal(answers[0]!.json<ReadyAnswer>().disk, 'writable')
    } finally {
      await Promise.all(nodes.map((n) => n.stop()))
    }
  },
)

test(
  "larder serve: REDIS_URL, REDIS_PASSWORD and REDIS_DB (the seed's names) reach Redis (a password with `%`, `@` and a space too); the password is never printed",
  { skip },
  async () => {
    const redis = await startRedis()
    const password = 'redis-secret %41pw@%' // `%41` must stay three characters, and a lone `%` be one
    redis.cli('CONFIG', 'SET', 'requirepass', password) // after start: its readiness check pings without one
    const dir = path.join(tempDir('larder-serve-redis'), 'cache')
    const server = await startCli(['--dir', dir, 'serve', '--port', '0', '--token', 't', '--log-requests'], {
      REDIS_URL: redis.url,
      REDIS_PASSWORD: password,
      REDIS_DB: '3',
    })
    assert.match(server.stdout[0]!, /^larder listening on http:\/\/127\.0\.0\.1:\d+$/)
    assert.ok(
      server.stdout.some((l) => l.includes(`shared tier redis://127.0.0.1:${redis.port}/3`)),
      server.stdout.join('\n'),
    )
    const put = await call(`${server.url}/api/cache/k`, {
      ...json('PUT', { value: 'v' }),
      headers: { 'content-type': 'application/json', ...bearer('t') },
    })
    assert.equal(put.status, 200)
    assert.notEqual(redis.cli('-a', password, '--no-auth-warning', '-n', '3', 'DBSIZE'), '0', 'the value is in database 3')
    assert.equal((await call(`${server.url}/readyz`)).json<ReadyAnswer>().redis, 'reachable')
    assert.equal(await server.stop(), 0)
    assert.ok(!(server.stdout.join('\n') + server.stderr()).includes('redis-secret'))
  },
)

test('larder serve: --redis that is not a redis:// URL is a usage error (exit 2)', async () => {
  const dir = path.join(tempDir('larder-serve-redis'), 'cache')
  const server = await startCli(['--dir', dir, 'serve', '--port', '0', '--redis', 'http://127.0.0.1:6379'])
  assert.equal(await server.exited, 2)
  assert.match(server.stderr(), /--redis.*redis:\/\/ or rediss:\/\//)
})

test(
  "larder serve: a shared tier named by the config file is the cache API's: the startup line names it, DELETE /cache/l2 empties it, /readyz probes it",
  { skip },
  async () => {
    const redis = await startRedis()
    const root = tempDir('larder-serve-file-redis')
    fs.writeFileSync(path.join(root, 'larder.config.json'), JSON.stringify({ redis: { url: redis.url, prefix: 'filed:' } }))
    const server = await startCli(['--dir', path.join(root, 'cache'), 'serve', '--port', '0'], {}, root)
    assert.ok(
      server.stdout.some((l) => l.includes(`shared tier redis://127.0.0.1:${redis.port}`)),
      server.stdout.join('\n'),
    )
    assert.equal((await call(`${server.url}/api/cache/k`, json('PUT', { value: 'v' }))).status, 200)
    const keys = (): string => redis.cli('--scan', '--pattern', 'filed:*')
    assert.notEqual(keys(), '', 'the value is in Redis')
    assert.deepEqual((await call(`${server.url}/cache/l2`, { method: 'DELETE' })).json(), { success: true, cleared: 'l2' })
    assert.equal(keys(), '', 'and gone from it')
    assert.equal((await call(`${server.url}/readyz`)).json<ReadyAnswer>().redis, 'reachable')
    await redis.kill()
    assert.equal((await call(`${server.url}/readyz`)).status, 503)
    assert.equal(await server.stop(), 0)
  },
)
