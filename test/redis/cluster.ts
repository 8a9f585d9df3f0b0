/** A Redis Cluster started locally for a test file: redis-server --cluster-enabled yes on free
 *  loopback ports, joined by redis-cli --cluster create. */
import { execFileSync } from 'node:child_process'
import { setTimeout as delay } from 'node:timers/promises'
import { freePort, RedisServer, startOnFreePorts } from './server.ts'

/** `masters` masters (and `replicas` replicas of each), cluster-node-timeout 2 s, `extra`
 *  flags; resolves once every node says the cluster is ok and every replica is in sync. */
export async function startCluster({ masters = 3, replicas = 0, extra = [] as string[] } = {}): Promise<RedisServer[]> {
  const nodes: RedisServer[] = []
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const node = await startOnFreePorts(
      async () =>
        new RedisServer(await freePort(), [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
          ...extra,
        ]),
    )
    nodes.push(node)
  }
  execFileSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
    { stdio: 'ignore' },
  )
  for (let i = 0; i < 400 && !nodes.every((n) => n.cli('CLUSTER', 'INFO').includes('cluster_state:ok')); i++) await delay(25)
  const synced = (n: RedisServer): boolean => {
    const info = n.cli('INFO', 'replication')
    return info.includes('role:master') || info.includes('master_link_status:up')
  }
  for (let i = 0; i < 400 && !nodes.every(synced); i++) await delay(25)
  return nodes
}

/** Whether `node` is a live master now. */
export function isMaster(node: RedisServer): boolean {
  try {
    return node.cli('ROLE').split('\n')[0] === 'master'
  } catch {
    return false
  }
}

/** The node id of `node`. */
export function nodeId(node: RedisServer): string {
  return node.cli('CLUSTER', 'MYID')
}

/** How many names matching `pattern` the live masters of `nodes` hold. */
export function namesOnMasters(nodes: readonly RedisServer[], pattern: string): number {
  return nodes.filter(isMaster).reduce((sum, n) => sum + Number(n.cli('EVAL', `return #redis.call('KEYS', ARGV[1])`, '0', pattern)), 0)
}
