import { Command } from 'commander'
import { keysFromEnv } from '../../crypto/keys.js'
import type { RekeyReport } from '../../maintenance/maintainer.js'
import { CliContext, CliFailure, EXIT } from '../context.js'
import { count, duration, entries } from '../format.js'
import { interruptibleWork } from '../progress.js'
import { sharedTierOption, withSharedTierOptions, type SharedTierFlags } from '../shared-tier.js'

/**
 * `larder rekey`: every entry rewritten under the active key in worker threads (Larder.rekey).
 * The keys come from the environment only, never from the command line (where `ps` and shell
 * history would show them): `LARDER_ENCRYPTION_KEYS` (`id:key,id:key`), or the variable
 * `--keys-env` names; the active key is `--active-key`, `LARDER_ENCRYPTION_ACTIVE_KEY`, or the
 * first listed. Nothing of a key is ever printed: errors name the variable and the key id.
 */
export function rekeyCommand(): Command {
  return withSharedTierOptions(
    new Command('rekey')
      .description(
        'rewrite every entry under the active encryption key, in worker threads (keys from LARDER_ENCRYPTION_KEYS, never the command line); entries under keys not listed are left and counted',
      )
      .option('--keys-env <name>', 'the environment variable holding the keys as id:key,id:key (hex or base64)', 'LARDER_ENCRYPTION_KEYS')
      .option('--active-key <id>', 'the key id to rewrite under (default: LARDER_ENCRYPTION_ACTIVE_KEY, else the first listed)')
      .option(
        '--seal-plain',
        'also seal the entries not sealed at all (written before encryption was turned on), trusting them: only if nobody else could write the cache since',
      ),
    "also rewrite the values this Redis holds for the namespace (redis:// or rediss:// URL; the applications' redis option)",
  ).action(async (flags: { keysEnv: string; activeKey?: string; sealPlain?: boolean } & SharedTierFlags, command: Command) => {
    const ctx = new CliContext(command)
    let encryption: ReturnType<typeof keysFromEnv>
    try {
      encryption = keysFromEnv({
        LARDER_ENCRYPTION_KEYS: process.env[flags.keysEnv],
        LARDER_ENCRYPTION_ACTIVE_KEY: flags.activeKey ?? process.env.LARDER_ENCRYPTION_ACTIVE_KEY,
      })
    } catch (error) {
      // Named as the caller gave them: the variable --keys-env names, and --active-key if given.
      let message = (error instanceof Error ? error.message : String(error)).replaceAll('LARDER_ENCRYPTION_KEYS', flags.keysEnv)
      if (flags.activeKey !== undefined) message = message.replaceAll('LARDER_ENCRYPTION_ACTIVE_KEY', '--active-key')
      throw new CliFailure(message, EXIT.usage, 'ERR_INVALID_OPTION')
    }
    if (encryption === undefined) throw new CliFailure(`no keys: ${flags.keysEnv} is not set`, EXIT.usage, 'ERR_INVALID_OPTION')
    const report: RekeyReport = await interruptibleWork('rekey', ctx.interactive, (control) =>
      ctx.withCache('maintain', (cache) => cache.rekey({ ...control, sealPlain: flags.sealPlain === true }), {
        encryption,
        ...sharedTierOption(flags, command),
      }),
    )
    ctx.print(
      () => human(report, encryption.activeKey),
      () => ({ ...report, activeKey: encryption.activeKey }),
    )
  })
}

function human(r: RekeyReport, active: string): string {
  const lines = [
    `checked ${entries(r.scanned)} in ${duration(r.durationMs)}: ${count(r.rekeyed)} rewritten under key ${active}, ${count(r.current)} already under it`,
  ]
  if (r.missingKey > 0) lines.push(`${entries(r.missingKey)} under keys not listed: left as they are`)
  if (r.unsealed > 0)
    lines.push(
      `${entries(r.unsealed)} not sealed at all: left for readers to remove (--seal-plain seals them, if nobody else could write the cache)`,
    )
  if (r.changed > 0) lines.push(`${entries(r.changed)} changed while being rewritten: left as written (run rekey again)`)
  if (r.corrupt > 0) lines.push(`${entries(r.corrupt)} damaged or failing authentication: left for readers and verify --repair to remove`)
  if (r.recovered > 0) lines.push(`${entries(r.recovered)} put back after an earlier rekey was killed mid-swap`)
  const redis = r.redis
  if (redis !== undefined) {
    lines.push(
      `Redis: checked ${entries(redis.scanned)}: ${count(redis.rekeyed)} rewritten under key ${active}, ${count(redis.current)} already under it`,
    )
    if (redis.missingKey > 0) lines.push(`Redis: ${entries(redis.missingKey)} under keys not listed: left as they are`)
    if (redis.unsealed > 0) lines.push(`Redis: ${entries(redis.unsealed)} not sealed at all: left for readers to remove`)
    if (redis.changed > 0) lines.push(`Redis: ${entries(redis.changed)} changed while being rewritten: left as written (run rekey again)`)
    if (redis.corrupt > 0) lines.push(`Redis: ${entries(redis.corrupt)} damaged or failing authentication: left for readers to remove`)
  }
  return lines.join('\n')
}
