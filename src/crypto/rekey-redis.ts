/**
 * `rekey` for the shared tier: every entry of this namespace that Redis holds, rewritten under
 * the active key like an entry file read whole (rekey-entries.ts `resealed`): same key, value,
 * times, tags and grace, so the same version (createdAt) and the same expiry (the swap keeps
 * the key's TTL). Redis holds only buffered values (streams stay local), each within
 * `redis.maxValueSize`, so each is read whole (at most that much: RedisTier.rawGet), checked
 * (checksum, key, namespace) and opened on this thread, IN_FLIGHT at a time.
 *
 * The swap is REPLACE_IF_SAME: the new bytes go in only if the key still holds the bytes read
 * (same length, same checksum). A write, delete or expiry in between wins, and is counted as
 * `changed`. No bus message goes out: the value every instance may hold in memory is the one
 * it was.
 */
import { Slots } from '../batch-slots.js'
import { LarderError } from '../errors.js'
import { CorruptEntryError, decodeEntry, FLAG_SEALED } from '../format/entry-format.js'
import type { MaintenanceProgress } from '../maintenance/maintainer.js'
import { isTombstone, type RedisTier } from '../tiers/redis-tier.js'
import { checkNamespace, keyOf } from './entry-keys.js'
import type { Keyring } from './keys.js'
import { resealed, type RekeyOutput } from './rekey-entries.js'
import { KeyError } from './seal.js'

/** What `rekey` did with the Redis values of the namespace: a file rekey's counts (less
 *  `recovered`, which only files have). `scanned` counts entries: tombstones, locks and tag
 *  stamps are not; `corrupt` ones are left for readers, which remove them. */
export type RedisRekeyReport = Omit<RekeyOutput, 'recovered' | 'stopped' | 'grownBytes'>

/** Values read and rewritten at once: enough to overlap round trips to Redis. */
const IN_FLIGHT = 8

type Verdict = Exclude<keyof RedisRekeyReport, 'scanned'>

export async function rekeyRedis(
  tier: RedisTier,
  keyring: Keyring,
  namespace: string,
  options: { signal?: AbortSignal; onProgress?: (progress: MaintenanceProgress) => void; sealPlain?: boolean },
): Promise<RedisRekeyReport> {
  const report: RedisRekeyReport = { scanned: 0, rekeyed: 0, current: 0, missingKey: 0, unsealed: 0, corrupt: 0, changed: 0 }
  const slots = new Slots(IN_FLIGHT)
  const stopIfAsked = (): void => {
    if (options.signal?.aborted !== true) return
    throw Object.assign(
      new LarderError('ERR_ABORTED', 'rekey was cancelled; `report` holds what was done before it stopped', {
        field: 'signal',
        cause: options.signal.reason,
      }),
      { report },
    )
  }
  let seen = 0
  let done = 0
  for await (const entries of tier.entryPages()) {
    stopIfAsked()
    seen += entries.length
    await Promise.all(
      entries.map((name) =>
        slots.run(async () => {
          if (options.signal?.aborted === true) return
          const verdict = await rekeyValue(tier, name, keyring, namespace, options.sealPlain === true)
          if (verdict !== undefined) {
            report.scanned++
            report[verdict]++
          }
          options.onProgress?.({ operation: 'rekey', phase: 'redis', done: ++done, total: seen })
        }),
      ),
    )
  }
  stopIfAsked()
  return report
}

/** One value: rewritten, or why not (undefined: not an entry, or gone before it was read). */
async function rekeyValue(
  tier: RedisTier,
  name: string,
  keyring: Keyring,
  namespace: string,
  sealPlain: boolean,
): Promise<Verdict | undefined> {
  const bytes = await tier.rawGet(name)
  if (bytes.length === 0 || isTombstone(bytes)) return undefined
  let next: Buffer
  try {
    if (!tier.fits(bytes.length)) throw new CorruptEntryError('longer than any value this tier stores')
    const entry = decodeEntry(bytes)
    if (entry.key !== name.slice(tier.base.length)) throw new CorruptEntryError('an entry of another key under this name')
    checkNamespace(entry, namespace)
    if ((entry.flags & FLAG_SEALED) !== 0 && entry.keyId === keyring.activeId) return 'current'
    next = resealed(entry, keyOf(entry, keyring, sealPlain), keyring, namespace)
  } catch (error) {
    if (error instanceof KeyError && error.missing) return 'missingKey'
    if (error instanceof KeyError && error.unsealed) return 'unsealed'
    if (error instanceof CorruptEntryError) return 'corrupt'
    throw error
  }
  return (await tier.replaceIfSame(name, bytes, next)) ? 'rekeyed' : 'changed'
}
