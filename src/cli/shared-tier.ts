import { Option, type Command } from 'commander'
import type { LarderOptions } from '../options.js'
import { CliFailure, EXIT } from './context.js'

/** The flags of a command that can reach the shared tier, as commander parsed them. */
export interface SharedTierFlags {
  redis?: string
  redisCluster?: string
  redisPrefix?: string
}

/**
 * `--redis URL` (LARDER_REDIS_URL) or `--redis-cluster host:port,…` (LARDER_REDIS_CLUSTER), and
 * `--redis-prefix` (LARDER_REDIS_PREFIX), for the commands that change entries where the
 * applications share them: with them, `rm` and `prune` also remove what matches from the Redis
 * the applications share (and every instance listening on the bus drops its local copies), and
 * `rekey` also rewrites the values Redis holds. Without them, only the directory is touched,
 * whatever the applications use. A cluster must be named as one (a plain client's multi-key
 * commands span slots there). Both are checked by `Larder.open` (a bad one is
 * ERR_INVALID_OPTION, exit 2, before anything is changed).
 */
export function withSharedTierOptions(
  command: Command,
  what = 'also remove from this Redis (redis:// or rediss:// URL), and tell every instance on its bus',
): Command {
  return command
    .addOption(new Option('--redis <url>', what).env('LARDER_REDIS_URL'))
    .addOption(
      new Option(
        '--redis-cluster <nodes>',
        'the same for a Redis Cluster: its seed nodes, comma-separated host:port or redis[s]://[user:password@]host:port',
      ).env('LARDER_REDIS_CLUSTER'),
    )
    .addOption(new Option('--redis-prefix <prefix>', "the applications' redis.prefix").env('LARDER_REDIS_PREFIX').default('larder:'))
}

/** The `redis` option for Larder.open, or none without --redis. `command` tells where each
 *  flag came from: the command line wins over the environment, so a `LARDER_REDIS_URL` left set
 *  for the applications does not refuse `--redis-cluster` (nor `LARDER_REDIS_CLUSTER` a
 *  `--redis`); both from the same place is a usage error naming them. */
export function sharedTierOption(flags: SharedTierFlags, command: Command): Pick<LarderOptions, 'redis'> {
  const prefix = flags.redisPrefix ?? 'larder:'
  let { redis: url, redisCluster } = flags
  if (url !== undefined && redisCluster !== undefined) {
    const urlSource = command.getOptionValueSource('redis')
    const clusterSource = command.getOptionValueSource('redisCluster')
    if (urlSource === 'cli' && clusterSource === 'env') redisCluster = undefined
    else if (clusterSource === 'cli' && urlSource === 'env') url = undefined
    else {
      const names = urlSource === 'env' ? 'LARDER_REDIS_URL and LARDER_REDIS_CLUSTER' : '--redis and --redis-cluster'
      throw new CliFailure(`${names}: give one (a Redis Cluster by its seed nodes, any other Redis by its URL)`, EXIT.usage)
    }
  }
  if (redisCluster === undefined) return url === undefined ? {} : { redis: { url, prefix } }
  const cluster = redisCluster
    .split(',')
    .map((node) => node.trim())
    .filter((node) => node !== '')
  return { redis: { cluster, prefix } }
}
