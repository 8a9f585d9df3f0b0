import { Option, type Command } from 'commander'
import type { LarderOptions } from '../options.js'

/** The flags of a command that can reach the shared tier, as commander parsed them. */
export interface SharedTierFlags {
  redis?: string
  redisPrefix?: string
}

/**
 * `--redis URL` (LARDER_REDIS_URL) and `--redis-prefix` (LARDER_REDIS_PREFIX) for the commands
 * that change entries where the applications share them: with them, `rm` and `prune` also
 * remove what matches from the Redis the applications share (and every instance listening on
 * the bus drops its local copies), and `rekey` also rewrites the values Redis holds. Without
 * them, only the directory is touched, whatever the applications use. The URL is checked by
 * `Larder.open` (a bad one is ERR_INVALID_OPTION, exit 2, before anything is changed).
 */
export function withSharedTierOptions(
  command: Command,
  what = 'also remove from this Redis (redis:// or rediss:// URL), and tell every instance on its bus',
): Command {
  return command
    .addOption(new Option('--redis <url>', what).env('LARDER_REDIS_URL'))
    .addOption(new Option('--redis-prefix <prefix>', "the applications' redis.prefix").env('LARDER_REDIS_PREFIX').default('larder:'))
}

/** The `redis` option for Larder.open, or none without --redis. */
export function sharedTierOption(flags: SharedTierFlags): Pick<LarderOptions, 'redis'> {
  if (flags.redis === undefined) return {}
  return { redis: { url: flags.redis, prefix: flags.redisPrefix ?? 'larder:' } }
}
