/**
 * The shared tier over TLS (`rediss://`): a real redis-server with a TLS port (the fixture's
 * certificate, fixtures/tls/), reached by larder in child processes that trust it through
 * NODE_EXTRA_CA_CERTS (read by Node at start only). Commands and the bus (its own connection,
 * a duplicate of the command one) both go over TLS; a server whose certificate is not trusted
 * is an unreachable Redis: misses and counted errors, nothing thrown into the application.
 * And a 3-master Redis Cluster with `tls-cluster yes` and a password, reached from `rediss://`
 * seeds whose TLS and password must reach every node, not the seed alone.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'
import { freePort, RedisServer, redisAvailable, startOnFreePorts, startRedis } from './server.ts'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const fixture = (name: string): string => path.join(root, 'fixtures', 'tls', name)
const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'

let server: RedisServer | undefined
let tlsPort = 0
if (skip === false) {
  tlsPort = await freePort()
  server = await startRedis([
    '--tls-port',
    String(tlsPort),
    '--tls-cert-file',
    fixture('cert-a.pem'),
    '--tls-key-file',
    fixture('key-a.pem'),
    '--tls-auth-clients',
    'no',
  ])
}
after(() => server?.kill())

/** Runs `body` (module code with `Larder` and `url` in scope) in a child process; its last
 *  stdout line, parsed. */
function inChild(body: string, env: Record<string, string> = {}, seeds: string[] = []): Record<string, unknown> {
  const script = `
    import { Larder } from ${JSON.stringify(path.join(root, 'src', 'index.ts'))}
    const url = 'rediss://127.0.0.1:${tlsPort}'
    const seeds = ${JSON.stringify(seeds)}
    ${body}
  `
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  })
  assert.equal(run.status, 0, run.stderr)
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>
}

describe('the shared tier over TLS (rediss://)', { skip }, () => {
  test('commands and the bus go over TLS to a server whose certificate is trusted', () => {
    const seen = inChild(
      `
      const open = () => Larder.open({ dir: false, memory: true, redis: { url, prefix: 'tls:' } })
      const a = await open()
      const b = await open()
      await a.set('k', 'first')
      const read = await b.get('k')
      await a.set('k', 'second')
      // B holds 'first' in its memory tier: only the bus's message can make it read again.
      let after
      for (let i = 0; i < 200 && after !== 'second'; i++) {
        after = await b.get('k')
        await new Promise((r) => setTimeout(r, 10))
      }
      const stats = await b.stats()
      console.log(JSON.stringify({ read, after, errors: stats.tiers.redis.errors }))
      await a.close()
      await b.close()
    `,
      { NODE_EXTRA_CA_CERTS: fixture('cert-a.pem') },
    )
    assert.deepEqual(seen, { read: 'first', after: 'second', errors: 0 })
    assert.equal(server!.cli('EXISTS', 'tls:default:k').trim(), '1', 'the value is in that Redis')
  })

  test('a certificate the process does not trust is an unreachable Redis: misses, counted errors, nothing thrown', () => {
    const seen = inChild(`
      const cache = await Larder.open({ dir: false, memory: false, bus: false, redis: { url, prefix: 'tls:', commandTimeout: '200ms' } })
      await cache.set('untrusted', 'v')
      const value = await cache.get('k')
      const stats = await cache.stats()
      console.log(JSON.stringify({ value: value ?? null, dropped: stats.tiers.redis.dropped + stats.tiers.redis.errors > 0 }))
      await cache.close()
    `)
    assert.deepEqual(seen, { value: null, dropped: true })
    assert.equal(server!.cli('EXISTS', 'tls:default:untrusted').trim(), '0', 'nothing was written past the refused handshake')
  })
})

describe('a Redis Cluster over TLS, with a password (rediss:// seeds)', { skip }, () => {
  const password = 'cluster-secret'
  const nodes: Array<{ server: RedisServer; tlsPort: number }> = []
  before(async () => {
    // Each node takes two ports freePort() found free (and the bus port above its own): any may
    // be taken before redis-server binds it, and then others are tried (startOnFreePorts).
    for (let i = 0; i < 3; i++) {
      let tls = 0
      const server = await startOnFreePorts(async () => {
        tls = await freePort()
        return new RedisServer(await freePort(), [
          '--tls-port',
          String(tls),
          '--tls-cert-file',
          fixture('cert-a.pem'),
          '--tls-key-file',
          fixture('key-a.pem'),
          '--tls-ca-cert-file',
          fixture('cert-a.pem'),
          '--tls-auth-clients',
          'no',
          '--tls-cluster',
          'yes',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--requirepass',
          password,
          '--masterauth',
          password,
        ])
      })
      nodes.push({ server, tlsPort: tls })
    }
    // Joined over TLS: the nodes then announce their TLS ports to TLS clients.
    execFileSync(
      'redis-cli',
      [
        '--tls',
        '--cacert',
        fixture('cert-a.pem'),
        '-a',
        password,
        '--no-auth-warning',
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.tlsPort}`),
        '--cluster-yes',
      ],
      { stdio: 'ignore' },
    )
    for (let i = 0; i < 400 && !nodes.every((n) => n.server.cli('CLUSTER', 'INFO').includes('cluster_state:ok')); i++) await delay(25)
  })
  after(async () => {
    for (const { server } of nodes) await server.stop()
  })

  test("keys on every master and the bus reach the cluster over TLS, with the seed's password used on every node", () => {
    const seen = inChild(
      `
      const open = () => Larder.open({ dir: false, memory: true, maintenance: false, redis: { cluster: seeds, prefix: 'tc:' } })
      const a = await open()
      const b = await open()
      for (let i = 0; i < 60; i++) await a.set('k' + i, i)
      let read = 0
      for (let i = 0; i < 60; i++) if ((await b.get('k' + i)) === i) read++
      await a.set('k1', 'second')
      let after
      for (let i = 0; i < 200 && after !== 'second'; i++) {
        after = await b.get('k1')
        await new Promise((r) => setTimeout(r, 10))
      }
      const errors = (await a.stats()).tiers.redis.errors + (await b.stats()).tiers.redis.errors
      console.log(JSON.stringify({ read, after, errors }))
      await a.close()
      await b.close()
    `,
      { NODE_EXTRA_CA_CERTS: fixture('cert-a.pem') },
      [`rediss://:${password}@127.0.0.1:${nodes[0]!.tlsPort}`],
    )
    assert.deepEqual(seen, { read: 60, after: 'second', errors: 0 })
    const held = nodes.map((n) => Number(n.server.cli('EVAL', "return #redis.call('KEYS', ARGV[1])", '0', 'tc:*')))
    assert.equal(
      held.reduce((sum, n) => sum + n, 0),
      60,
    )
    assert.ok(
      held.every((n) => n > 0),
      `every master holds some keys: ${held.join(', ')}`,
    )
  })

  test('seeds that disagree on TLS or credentials are refused, naming the seed and never its password', async () => {
    const port = nodes[0]!.tlsPort
    for (const cluster of [
      [`rediss://:${password}@127.0.0.1:${port}`, `redis://:${password}@127.0.0.1:${port}`],
      [`rediss://:${password}@127.0.0.1:${port}`, `rediss://:other@127.0.0.1:${port}`],
      [`rediss://:${password}@127.0.0.1:${port}`, `127.0.0.1:${port}`],
      [`rediss://:${password}@127.0.0.1:${port}/2`],
    ]) {
      const refused = await Larder.open({ dir: false, redis: { cluster } }).then(
        () => undefined,
        (error: unknown) => error as { code: string; message: string },
      )
      assert.equal(refused?.code, 'ERR_INVALID_OPTION', cluster.join(' '))
      assert.match(refused.message, /redis\.cluster/)
      assert.doesNotMatch(refused.message, new RegExp(`${password}|other`))
    }
  })
})
