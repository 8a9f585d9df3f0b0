/**
 * clear() on a Redis Cluster whose masters change under it (3 masters with a replica each,
 * started locally): a graceful failover, a master killed before its replica takes over, and a
 * slot resharded between two masters while the pass runs. Each left keys in Redis (and other
 * instances serving them) when the pass trusted ioredis's last view of the masters
 * (redis/sweep.ts).
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import calculateSlot from 'cluster-key-slot'
import { Cluster, type Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { isMaster, namesOnMasters, nodeId, startCluster } from './cluster.ts'
import { eventually, redisAvailable, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'

describe('a Redis Cluster whose masters change under a clear()', { skip }, () => {
  let nodes: RedisServer[] = []
  const opened: Larder[] = []
  before(async () => {
    // A failover 5 s after a master dies (cluster-node-timeout): the window in which the kill
    // test's clear() and prune() run before it, however loaded the machine.
    nodes = await startCluster({ replicas: 1, extra: ['--cluster-node-timeout', '5000'] })
  })
  after(async () => {
    await Promise.all(opened.map((cache) => cache.close()))
    await Promise.all(nodes.map((n) => n.stop()))
  })

  const alive = (): RedisServer[] => nodes.filter((n) => n.proc?.exitCode === null && n.proc.signalCode === null)
  const seeds = (): string[] => alive().map((n) => `127.0.0.1:${n.port}`)
  const open = async (redis: { prefix: string; client?: Cluster }): Promise<Larder> => {
    // Closed when its test ends, before its directory is removed: a test's own after hooks
    // (tempDir's removal among them) run in the order they were added, all before this
    // describe's. An instance still open then went on deleting the trash of a clear it heard
    // on the bus (the kill test's, retried once the replica took over) while the directory
    // was removed under it: ENOTEMPTY, seen in CI.
    const mine: Larder[] = []
    after(() => Promise.all(mine.map((cache) => cache.close())))
    const cache = await Larder.open({
      dir: tempDir(),
      memory: true,
      maintenance: false,
      redis: redis.client === undefined ? { cluster: seeds(), prefix: redis.prefix } : redis,
    })
    mine.push(cache)
    opened.push(cache)
    return cache
  }
  const keys = Array.from({ length: 60 }, (_, i) => `user:${i}`)
  const served = async (cache: Larder, names = keys): Promise<number> =>
    (await cache.getMany(names)).filter((value) => value !== undefined).length
  /** Two instances on one prefix: A wrote the 60 keys, B read them (and holds them locally). */
  const sharing = async (prefix: string): Promise<[Larder, Larder]> => {
    const a = await open({ prefix })
    const b = await open({ prefix })
    await a.setMany(keys.map((key, i) => ({ key, value: i })))
    assert.equal(await served(b), 60)
    return [a, b]
  }
  /** The node replicating `master`. */
  const replicaOf = (master: RedisServer): RedisServer => {
    const id = nodeId(master)
    return alive().find((n) =>
      n
        .cli('CLUSTER', 'NODES')
        .split('\n')
        .some((line) => line.includes('myself') && line.includes(` ${id} `)),
    )!
  }
  const count = (node: RedisServer, pattern: string): number =>
    Number(node.cli('EVAL', `return #redis.call('KEYS', ARGV[1])`, '0', pattern))

  test('after a failover (CLUSTER FAILOVER), clear() reaches the promoted master before it resolves, and nothing fails', async () => {
    const prefix = `g${process.pid}:`
    const [a, b] = await sharing(prefix)
    const master = alive().find(isMaster)!
    const replica = replicaOf(master)
    replica.cli('CLUSTER', 'FAILOVER')
    assert.ok(await eventually(() => isMaster(replica) && !isMaster(master), 10_000), 'the replica took over')
    const errors = (await a.stats()).tiers.redis!.errors
    await a.clear()
    assert.equal(namesOnMasters(nodes, `${prefix}*user:*`), 0, 'no key is left when clear() resolves')
    assert.equal((await a.stats()).tiers.redis!.errors, errors, 'no command failed')
    assert.ok(await eventually(async () => (await served(b)) === 0, 3_000), 'B serves none of them')
  })

  test('a master killed just before clear(): its keys go too once its replica takes over, B does not serve them, and prune({ pattern }) says it missed some', async () => {
    const prefix = `k${process.pid}:`
    const [a, b] = await sharing(prefix)
    const victim = alive()
      .filter(isMaster)
      .sort((x, y) => count(y, `${prefix}*`) - count(x, `${prefix}*`))[0]!
    const held = count(victim, `${prefix}*`)
    const replica = replicaOf(victim)
    assert.ok(await eventually(() => count(replica, `${prefix}*`) === held, 5_000), 'the replica has every key of its master')
    await victim.kill()
    await a.clear()
    await assert.rejects(a.prune({ pattern: 'user:*' }), { code: 'ERR_UNAVAILABLE' }, 'prune({ pattern }) cannot vouch for the dead shard')
    assert.ok(!isMaster(replica), 'clear() and prune() ran before the failover')
    assert.ok(await eventually(() => isMaster(replica), 20_000), 'the replica took over')
    assert.ok(
      // The missed clear is retried every 200 ms once the breaker lets a command through (its
      // half-open trial after the failures the dead master caused): 30 s for a loaded machine.
      await eventually(() => namesOnMasters(nodes, `${prefix}*user:*`) === 0, 30_000),
      `the promoted replica's ${held} keys go too (${namesOnMasters(nodes, `${prefix}*user:*`)} left)`,
    )
    assert.ok(await eventually(async () => (await served(b)) === 0, 5_000), 'B serves none of them')
  })

  test('a slot resharded from a master not yet scanned to one already scanned: its keys go too', async () => {
    const prefix = `r${process.pid}:`
    const client = new Cluster(seeds().map((seed) => ({ host: '127.0.0.1', port: Number(seed.split(':')[1]) })))
    await new Promise((resolve) => client.once('ready', resolve))
    try {
      const a = await open({ prefix, client })
      const b = await open({ prefix })
      await new Promise<void>((resolve, reject) => client.refreshSlotsCache((error) => (error ? reject(error) : resolve())))
      const poolNode = (name: string): Redis => client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === name)!
      const server = (node: Redis): RedisServer => nodes.find((n) => n.port === node.options.port)!
      // The pass scans the masters in slot order: the first holds slot 0, the last slot 16383.
      const first = poolNode(client.slots[0]![0]!)
      const last = poolNode(client.slots[16_383]![0]!)
      let tag = 0
      while (client.slots[calculateSlot(`t${tag}`)]![0] !== `${last.options.host}:${last.options.port}`) tag++
      const slot = calculateSlot(`t${tag}`)
      const moved = Array.from({ length: 30 }, (_, i) => `{t${tag}}:${i}`)
      await a.setMany(moved.map((key, i) => ({ key, value: i })))
      assert.equal(await served(b, moved), 30)
      // The reshard (as redis-cli --cluster reshard does it) runs right after the first
      // master's last SCAN page: only its moment is pinned.
      const [source, target] = [server(last), server(first)]
      const scan = first.scan.bind(first) as (...args: unknown[]) => Promise<[string, string[]]>
      let resharded = false
      ;(first as unknown as { scan: typeof scan }).scan = async (...args) => {
        const reply = await scan(...args)
        if (reply[0] === '0' && !resharded) {
          resharded = true
          target.cli('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', nodeId(source))
          source.cli('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', nodeId(target))
          const names = source.cli('CLUSTER', 'GETKEYSINSLOT', String(slot), '1000').split('\n').filter(Boolean)
          source.cli('MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...names)
          for (const n of [target, source, ...alive().filter((n) => isMaster(n) && n !== target && n !== source)])
            n.cli('CLUSTER', 'SETSLOT', String(slot), 'NODE', nodeId(target))
        }
        return reply
      }
      await a.clear()
      assert.ok(resharded, 'the slot moved during the pass')
      assert.ok(
        await eventually(() => count(target, `${prefix}*`) === 0, 3_000),
        `the moved keys go from their new master (${count(target, `${prefix}*`)} left)`,
      )
      assert.ok(await eventually(async () => (await served(b, moved)) === 0, 3_000), 'B serves none of them')
    } finally {
      client.disconnect()
    }
  })
})
