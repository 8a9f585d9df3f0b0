import type { TierName } from '../stats/counters.js'

/**
 * What one instance tells the others over the bus (JSON on the namespace's channel). Every
 * message says what changed and when (`at`: the change's own time, the creation time of a
 * written entry or the time of a delete, clear or invalidation), so a receiver drops only the
 * local copies that are not newer than the change: an older message never undoes a newer
 * write.
 *
 * - `keys`: these keys were written or deleted: drop local copies created before `at` (one
 *   created at `at` is the very entry the message is about).
 * - `clear`: one tier (or every tier) was cleared at `at`.
 * - `tags`: these tags were invalidated at `at`.
 * - `pattern`: the keys matching this glob were removed (prune's or the CLI's `pattern`) at
 *   `at`: drop local copies created before it, whether Redis held them or not (an entry too
 *   large for Redis, or still queued for it, is only local).
 * - `all`: the sender's queue of messages overflowed while Redis was unreachable: treat it as
 *   an outage (drop the memory tier, re-validate local entries against Redis).
 */
export type BusMessage =
  | { from: string; op: 'keys'; keys: [key: string, at: number][] }
  | { from: string; op: 'clear'; tier: TierName | 'all'; at: number }
  | { from: string; op: 'tags'; tags: string[]; at: number }
  | { from: string; op: 'pattern'; pattern: string; at: number }
  | { from: string; op: 'all'; at: number }

/** A message as sent: JSON that always begins with its sender (see `sentBy`). A write's
 *  message (`keys`, one per write-through set) is written out directly: the same text as the
 *  general case, without its two copies of the message. */
export function encodeMessage(message: BusMessage): string {
  if (message.op === 'keys') return `{"from":${JSON.stringify(message.from)},"op":"keys","keys":${JSON.stringify(message.keys)}}`
  const { from, ...rest } = message
  return JSON.stringify({ from, ...rest })
}

/** `encodeMessage` for one sender: a `keys` message (one per write-through set) is its
 *  sender's fixed start and its keys, with no message object copied to add `from`; the same
 *  text as `encodeMessage({ ...message, from })`. */
export function encoderFor(from: string): (message: DistributiveOmit<BusMessage, 'from'>) => string {
  const keysStart = `{"from":${JSON.stringify(from)},"op":"keys","keys":`
  return (message) => (message.op === 'keys' ? `${keysStart}${JSON.stringify(message.keys)}}` : encodeMessage({ ...message, from }))
}

export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/**
 * Whether `text` is a message sent by `from`, judged by its first bytes alone. Every instance
 * hears its own messages (Redis pub/sub has no way to leave the publisher out), one per write
 * it publishes, and they are for nothing: recognising them without parsing keeps that cost
 * off every write (W8's write-through set, issue 10). The bus hands it the message as Redis
 * delivered it (bytes), so its own are never even decoded into a string.
 */
export function sentBy(from: string): (text: string | Buffer) => boolean {
  const start = `{"from":${JSON.stringify(from)},`
  const bytes = Buffer.from(start)
  const length = bytes.length
  return (text) =>
    typeof text === 'string' ? text.startsWith(start) : text.length >= length && text.compare(bytes, 0, length, 0, length) === 0
}

/** How far ahead of this host's clock a message's time may be: hosts' clocks disagree by
 *  seconds, not hours. */
export const MAX_AHEAD_MS = 60 * 60_000

/** The message, or undefined for anything that is not one (never trusted further). */
export function decodeMessage(text: string): BusMessage | undefined {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return undefined
  }
  if (m === null || typeof m !== 'object') return undefined
  const message = m as Record<string, unknown>
  if (typeof message.from !== 'string') return undefined
  // A change's time moves every receiver's clock (remote-changes.ts) and stamps its tags: one
  // far ahead of this host's clock (a host whose clock is hours out, or a forged message) would
  // invalidate tags for good and make every later write look older than it. Past MAX_AHEAD_MS,
  // the message is not one.
  const latest = Date.now() + MAX_AHEAD_MS
  const time = (at: unknown): boolean => typeof at === 'number' && at >= 0 && at <= latest
  switch (message.op) {
    case 'keys':
      return Array.isArray(message.keys) && message.keys.every((k) => Array.isArray(k) && typeof k[0] === 'string' && time(k[1]))
        ? (message as BusMessage)
        : undefined
    case 'clear':
      return ['memory', 'file', 'redis', 'all'].includes(message.tier as string) && time(message.at) ? (message as BusMessage) : undefined
    case 'tags':
      return Array.isArray(message.tags) && message.tags.every((t) => typeof t === 'string') && time(message.at)
        ? (message as BusMessage)
        : undefined
    case 'pattern':
      return typeof message.pattern === 'string' && time(message.at) ? (message as BusMessage) : undefined
    case 'all':
      return time(message.at) ? (message as BusMessage) : undefined
    default:
      return undefined
  }
}
