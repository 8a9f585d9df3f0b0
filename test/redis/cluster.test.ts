/**
 * A 3-master Redis Cluster started locally (redis-server --cluster-enabled yes ×3 on free
 * loopback ports, joined by redis-cli --cluster create, no replicas), torn down after: the
 * multi-key operations split by slot (getMany, setMany, deleteMany, prune's pattern on every
 * master), and the bus between two instances.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'
import { ONLY_A } from '../encryption-helpers.ts'
import { tempDir } from '../helpers.ts'
import { startCluster } from './cluster.ts'
import { eventually, redisAvailable, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'

describe('a 3-master Redis Cluster', { skip }, () => {
  const nodes: RedisServer[] = []
  const prefix = `c${process.pid}:`
  let a: Larder
  let b: Larder
  before(async () => {
    // The last test kills a master (no replicas): the others go on serving their slots.
    nodes.push(...(await startCluster({ extra: ['--cluster-require-full-coverage', 'no'] })))
    const cluster = nodes.map((n) => `127.0.0.1:${n.port}`)
    a = await Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { cluster, prefix } })
    b = await Larder.open({ dir: tempDir(), memory: true, maintenance: false, redis: { cluster: [cluster[1]!], prefix } })
  })
  after(async () => {
    await a?.close()
    await b?.close()
    await Promise.all(nodes.map((n) => n.stop()))
  })

  const keys = Array.from({ length: 60 }, (_, i) => `user:${i}`)
  /** How many of our keys each master holds. */
  const perMaster = (): number[] => nodes.map((n) => Number(n.cli('EVAL', `return #redis.call('KEYS', ARGV[1])`, '0', `${prefix}*user:*`)))

  test('setMany and getMany are split by slot: the keys land on every master, and another instance reads them all', async () => {
    await a.setMany(keys.map((key, i) => ({ key, value: i })))
    const spread = perMaster()
    assert.equal(
      spread.reduce((x, y) => x + y, 0),
      keys.length,
    )
    assert.ok(
      spread.every((count) => count > 0),
      `every master holds some (${spread.join(', ')})`,
    )
    assert.deepEqual(
      await b.getMany(keys),
      keys.map((_, i) => i),
    )
    assert.equal((await b.stats()).tiers.redis!.errors, 0)
  })

  test('deleteMany is split by slot, and the bus tells the other instance', async () => {
    const gone = keys.slice(0, 20)
    assert.deepEqual(
      await b.getMany(gone),
      gone.map((_, i) => i),
    ) // B holds them locally now
    assert.equal(await a.deleteMany(gone), 20)
    assert.ok(await eventually(async () => (await b.getMany(gone)).every((v) => v === undefined)), 'B drops its copies')
    assert.equal(
      perMaster().reduce((x, y) => x + y, 0),
      keys.length,
      'tombstones hold the deleted keys for a while',
    )
  })

  test('an overwrite on A is seen by B over the bus', async () => {
    assert.equal(await b.get('user:30'), 30)
    await a.set('user:30', 'new')
    assert.ok(await eventually(async () => (await b.get('user:30')) === 'new'))
  })

  test('prune({ pattern }) removes the matching keys from every master', async () => {
    const before = perMaster()
    assert.ok(before.every((count) => count > 0))
    const report = await a.prune({ pattern: 'user:*' })
    assert.equal(
      report.sharedRemoved,
      before.reduce((x, y) => x + y, 0),
    )
    assert.deepEqual(perMaster(), [0, 0, 0])
  })

  test('rekey rewrites the values every master holds under the active key', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `sealed:${i}`)
    await a.setMany(keys.map((key, i) => ({ key, value: { i } }))) // not encrypted: a has no keys
    const held = nodes.map((n) => Number(n.cli('EVAL', `return #redis.call('KEYS', ARGV[1])`, '0', `${prefix}*sealed:*`)))
    assert.ok(
      held.every((count) => count > 0),
      `every master holds some (${held.join(', ')})`,
    )
    const cluster = nodes.map((n) => `127.0.0.1:${n.port}`)
    const sealing = await Larder.open({ dir: false, memory: false, maintenance: false, redis: { cluster, prefix }, encryption: ONLY_A })
    const report = await sealing.rekey({ sealPlain: true })
    assert.deepEqual(report.redis, { scanned: 40, rekeyed: 40, current: 0, missingKey: 0, unsealed: 0, corrupt: 0, changed: 0 })
    assert.deepEqual(
      await sealing.getMany(keys),
      keys.map((_, i) => ({ i })),
    )
    await sealing.close()
    assert.deepEqual(await b.getMany(keys.slice(0, 3)), [undefined, undefined, undefined], 'sealed now: an instance without the key misses')
  })

  // Last: it kills a master.
  test('the node the bus listens on dies: the subscription moves to another node, and the outage rule runs there (no copy changed meanwhile is served)', async () => {
    const seeds = nodes.map((n) => `127.0.0.1:${n.port}`)
    const subscribers = (): string[][] =>
      nodes.map((n) => {
        try {
          return n
            .cli('CLIENT', 'LIST')
            .split('\n')
            .filter((line) => / sub=1 /.test(line))
            .map((line) => line.split(' ')[0]!)
        } catch {
          return []
        }
      })
    const before = subscribers()
    const c = await Larder.open({
      dir: tempDir(),
      memory: true,
      maintenance: false,
      redis: { cluster: seeds, prefix, commandTimeout: '300ms' },
    })
    let listening = -1
    assert.ok(
      await eventually(() => {
        const now = subscribers()
        listening = now.findIndex((ids, i) => ids.some((id) => !before[i]!.includes(id)))
        return listening >= 0
      }),
      "C's bus subscribed",
    )
    const x = nodes[listening]!
    // Keys held by the other masters (they stay up).
    await a.setMany(Array.from({ length: 30 }, (_, i) => ({ key: `moved:${i}`, value: 'v1' })))
    const elsewhere = Array.from({ length: 30 }, (_, i) => `moved:${i}`).filter((key) => x.cli('EXISTS', `${prefix}default:${key}`) !== '1') // elsewhere: MOVED
    assert.ok(elsewhere.length > 0)
    assert.deepEqual(
      await c.getMany(elsewhere),
      elsewhere.map(() => 'v1'),
      'C holds them',
    )
    process.kill(x.proc!.pid!, 'SIGSTOP') // C hears nothing from here on
    await a.setMany(elsewhere.map((key) => ({ key, value: 'v2' })))
    await delay(200)
    await x.kill()
    assert.ok(
      await eventually(async () => (await c.getMany(elsewhere)).every((value) => value === 'v2'), 10_000),
      `C serves what A wrote while its bus was down: ${JSON.stringify(await c.getMany(elsewhere))}`,
    )
    await a.set(elsewhere[0]!, 'v3')
    assert.ok(await eventually(async () => (await c.get(elsewhere[0]!)) === 'v3'), 'and hears messages again')
    await c.close()
  })
})

describe('a Redis Cluster whose slots are down', { skip }, () => {
  test("the breaker's half-open trial is a read routed to a master: it fails while the cluster is down (a PING to a live node did not)", async () => {
    const nodes = await startCluster() // full coverage required: one master gone, every slot refuses
    const states: string[] = []
    const cache = await Larder.open({
      dir: tempDir(),
      memory: true,
      maintenance: false,
      redis: {
        cluster: nodes.map((n) => `127.0.0.1:${n.port}`),
        prefix: `d${process.pid}:`,
        commandTimeout: '200ms',
        breaker: { resetTimeout: '300ms', volumeThreshold: 2 },
      },
    })
    try {
      cache.on('breaker', (state: string, tier: string) => tier === 'redis' && states.push(state))
      await nodes[0]!.kill()
      assert.ok(await eventually(() => nodes[1]!.cli('CLUSTER', 'INFO').includes('cluster_state:fail'), 10_000), 'the cluster is down')
      for (let i = 0; i < 20 && !states.includes('open'); i++) await cache.get(`k${i}`)
      assert.ok(states.includes('open'), states.join(', '))
      states.length = 0
      await delay(1_500) // no call of the cache's own: only its trials, every 300 ms
      assert.ok(states.filter((s) => s === 'halfOpen').length >= 2, `trials were made: ${states.join(', ')}`)
      assert.ok(!states.includes('closed'), `no trial closed the breaker while the cluster was down: ${states.join(', ')}`)
    } finally {
      await cache.close()
      await Promise.all(nodes.map((n) => n.stop()))
    }
  })
})
