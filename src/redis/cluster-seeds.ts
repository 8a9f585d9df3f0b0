/**
 * A Redis Cluster's seed nodes as larder takes them: `'host:port'`, `{ host, port }`, or a URL
 * `redis[s]://[user:password@]host:port`.
 *
 * Why the URL's parts are lifted out: ioredis applies a seed URL's scheme and credentials to
 * that seed's connection alone, while the nodes it learns of from the cluster (every node but
 * the seeds, and the seeds again after a slots refresh) are opened with the cluster's
 * `redisOptions`. A `rediss://` seed left to ioredis reached nothing (no TLS on the seed
 * either); a password reached the seed only, and the other masters answered NOAUTH. So the
 * scheme (TLS) and the credentials become options of every node, and seeds that disagree on
 * them are refused: one cluster has one TLS setting and one password (Redis's own
 * `tls-cluster` and `masterauth` say the same of its nodes).
 *
 * Messages name a seed by its index, never by its text: a URL carries a password.
 */

/** The options every node of the cluster is opened with, from the seeds. */
export interface EveryNode {
  tls?: Record<string, never>
  username?: string
  password?: string
}

export interface ClusterSeeds {
  /** The seeds for ioredis: `'host:port'` strings as given, URLs as `{ host, port }`. */
  nodes: Array<string | { host: string; port: number }>
  every: EveryNode
}

const URL_SEED = /^rediss?:\/\//i

/** The seeds and their shared node options, or why they cannot be used (naming `field`). */
export function clusterSeeds(seeds: ReadonlyArray<string | { host: string; port: number }>, field: string): ClusterSeeds | string {
  const nodes: ClusterSeeds['nodes'] = []
  let every: EveryNode | undefined
  for (const [i, seed] of seeds.entries()) {
    let node: EveryNode = {}
    if (typeof seed === 'string' && URL_SEED.test(seed)) {
      let url: URL
      try {
        url = new URL(seed)
      } catch {
        return `${field}[${i}] is not a URL (expected redis[s]://[user:password@]host:port)`
      }
      const port = url.port === '' ? 6379 : Number(url.port)
      if (url.hostname === '' || !(port >= 1 && port <= 65535)) return `${field}[${i}]: expected redis[s]://[user:password@]host:port`
      if (url.pathname !== '' && url.pathname !== '/' && url.pathname !== '/0')
        return `${field}[${i}] names a database: a Redis Cluster has database 0 only`
      nodes.push({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port })
      node = {
        ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
        ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
        ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
      }
    } else {
      nodes.push(seed)
    }
    if (every === undefined) every = node
    else if (!sameNodeOptions(every, node))
      return `${field}[${i}]: its scheme, user or password differs from ${field}[0]'s (they apply to every node of the cluster)`
  }
  return { nodes, every: every ?? {} }
}

function sameNodeOptions(a: EveryNode, b: EveryNode): boolean {
  return (a.tls === undefined) === (b.tls === undefined) && a.username === b.username && a.password === b.password
}
