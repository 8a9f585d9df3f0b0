import type { BusMessage } from '../bus/messages.js'
import type { CreationClock } from '../store/creation-clock.js'
import type { TierStack } from '../tiers/tier-stack.js'
import type { Loads } from './loads.js'

export interface RemoteParts {
  stack: TierStack
  clock: CreationClock
  loads: Loads<unknown>
  /** Whatever another instance could not say precisely (an `all` message): the outage rule and
   *  the tag stamps read again, as after this instance's own outage. */
  missedMessages(): void
  /** Records tag invalidations locally (the directory's tag stamps, or the memory clock). */
  invalidateTags(tags: readonly string[], at: number): Promise<void>
  /** Removes the directory's entries whose key matches `pattern`, created before `at` (the
   *  maintenance workers); nothing without a directory, nor for a read-only instance (whose
   *  file tier records the pattern instead: TierStack.dropMatching). */
  pruneMatching(pattern: string, at: number): Promise<void>
}

/**
 * What another instance's change (a bus message) does here. Local copies not newer than the
 * change are dropped (memory and file tier; never Redis, which the sender already changed);
 * loads in progress of what changed must not store; reads in flight must not promote what the
 * change replaced (tiers/promotion-guard.ts); and this instance's clock moves past the
 * change's time, so whatever it writes after hearing of it is newer, whatever the two hosts'
 * clocks say. A read-only instance drops its memory tier's copies only: its directory is left
 * as it is, and its file tier's reads take an entry older than the change for a miss
 * (TierStack.dropLocal, dropMatching, clearLocal; README: readOnly).
 */
export async function applyRemote(message: BusMessage, p: RemoteParts): Promise<void> {
  if (message.op !== 'keys') p.stack.heardAll() // reads in flight judge a key message by key
  switch (message.op) {
    case 'keys':
      await Promise.all(
        message.keys.map(([key, at]) => {
          p.clock.observe(at)
          p.loads.supersede(key)
          return p.stack.dropLocal(key, at)
        }),
      )
      break
    case 'clear':
      p.clock.observe(message.at)
      // What this instance queued for Redis before the clear must not bring it back there.
      if (message.tier === 'all' || message.tier === 'redis') p.stack.forgetQueuedBefore(message.at)
      if (message.tier !== 'redis') {
        p.loads.supersedeAll()
        await p.stack.clearLocal(message.tier, message.at)
      }
      break
    case 'tags':
      p.clock.observe(message.at)
      p.loads.supersedeTagged(message.tags)
      await p.invalidateTags(message.tags, message.at)
      break
    case 'pattern':
      p.clock.observe(message.at)
      p.loads.supersedeAll()
      await p.stack.dropMatching(message.pattern, message.at, () => p.pruneMatching(message.pattern, message.at))
      break
    case 'all':
      p.loads.supersedeAll()
      p.missedMessages()
      break
  }
}
