/**
 * The shared tier over TLS (`rediss://`): a real redis-server with a TLS port (the fixture's
 * certificate, fixtures/tls/), reached by larder in child processes that trust it through
 * NODE_EXTRA_CA_CERTS (read by Node at start only). Commands and the bus (its own connection,
 * a duplicate of the command one) both go over TLS; a server whose certificate is not trusted
 * is an unreachable Redis: misses and counted errors, nothing thrown into the application.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, redisAvailable, startRedis, type RedisServer } from './server.ts'

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
function inChild(body: string, env: Record<string, string> = {}): Record<string, unknown> {
  const script = `
    import { Larder } from ${JSON.stringify(path.join(root, 'src', 'index.ts'))}
    const url = 'rediss://127.0.0.1:${tlsPort}'
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
