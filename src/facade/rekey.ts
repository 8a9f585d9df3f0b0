import { isLarderError, LarderError } from '../errors.js'
import { noRekeyCounts } from '../crypto/rekey-counts.js'
import { rekeyRedis } from '../crypto/rekey-redis.js'
import type { RekeyOptions, RekeyReport } from '../maintenance/maintainer.js'
import type { CacheParts } from './cache-parts.js'

/**
 * `Larder.rekey`: the directory's entries in the maintenance workers, then, with `redis`, the
 * values Redis holds for this namespace (crypto/rekey-redis.ts), so that once both report
 * nothing left under the old key, the old key can go. A cache with `dir: false` rekeys Redis
 * only. Cancelled (`signal`), it rejects with ERR_ABORTED whose `report` holds both parts' work.
 */
export async function rekeyTiers(parts: CacheParts, options: RekeyOptions): Promise<RekeyReport> {
  const keyring = parts.options.encryption
  if (keyring === undefined)
    throw new LarderError('ERR_INVALID_OPTION', 'rekey needs the encryption option (the keys)', { field: 'encryption' })
  const redis = parts.stack.redis
  const started = performance.now()
  if (redis === undefined) parts.files('rekey') // ERR_INVALID_OPTION with dir: false: nothing to rekey
  const report: RekeyReport = parts.disk !== undefined ? await parts.disk.maintainer.rekey(options) : { ...noRekeyCounts(), durationMs: 0 }
  if (redis === undefined) return report
  try {
    report.redis = await rekeyRedis(redis, keyring, parts.options.namespace, options)
  } catch (error) {
    if (isLarderError(error, 'ERR_ABORTED')) Object.assign(error, { report: { ...report, redis: (error as { report?: unknown }).report } })
    throw error
  } finally {
    report.durationMs = performance.now() - started
  }
  return report
}
