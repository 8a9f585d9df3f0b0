import type { TierName } from '../stats/counters.js'
import type { BusMessage } from './messages.js'

/** Keys per `keys` message. */
const KEYS_PER_MESSAGE = 256

/**
 * Messages waiting for Redis to come back, bounded and deduplicated: one entry per key and
 * per tag (the latest time wins), one per cleared tier; a clear makes the older key messages
 * redundant. Past `max` keys and tags, the details are dropped for one `all` message, which
 * makes every receiver treat it as an outage (drop its memory tier, re-validate local entries
 * against Redis): what it could not say precisely it says safely.
 */
export class Outbox {
  readonly #max: number
  #keys = new Map<string, number>()
  #tags = new Map<string, number>()
  #clears = new Map<TierName | 'all', number>()
  #patterns = new Map<string, number>()
  #all = 0

  constructor(max: number) {
    this.#max = max
  }

  get size(): number {
    return this.#keys.size + this.#tags.size + this.#clears.size + this.#patterns.size + (this.#all > 0 ? 1 : 0)
  }

  add(message: BusMessage): void {
    switch (message.op) {
      case 'keys':
        for (const [key, at] of message.keys) this.#keys.set(key, Math.max(at, this.#keys.get(key) ?? 0))
        break
      case 'tags':
        for (const tag of message.tags) this.#tags.set(tag, Math.max(message.at, this.#tags.get(tag) ?? 0))
        break
      case 'clear':
        this.#clears.set(message.tier, Math.max(message.at, this.#clears.get(message.tier) ?? 0))
        if (message.tier === 'all') for (const [key, at] of this.#keys) if (at <= message.at) this.#keys.delete(key)
        break
      case 'pattern':
        this.#patterns.set(message.pattern, Math.max(message.at, this.#patterns.get(message.pattern) ?? 0))
        break
      case 'all':
        this.#all = Math.max(this.#all, message.at)
        break
    }
    if (this.#keys.size + this.#tags.size + this.#patterns.size > this.#max) {
      this.#all = Math.max(this.#all, ...this.#keys.values(), ...this.#tags.values(), ...this.#patterns.values())
      this.#keys.clear()
      this.#tags.clear()
      this.#patterns.clear()
    }
  }

  /** Everything queued, as messages from `from` (clears first), and empties the box. */
  take(from: string): BusMessage[] {
    const messages: BusMessage[] = []
    for (const [tier, at] of this.#clears) messages.push({ from, op: 'clear', tier, at })
    const tagsByTime = new Map<number, string[]>()
    for (const [tag, at] of this.#tags) {
      // Pushed, not copied: a copy per tag made 9,999 tags of one time ~125 ms at a reconnect.
      const same = tagsByTime.get(at)
      if (same === undefined) tagsByTime.set(at, [tag])
      else same.push(tag)
    }
    for (const [at, tags] of tagsByTime) messages.push({ from, op: 'tags', tags, at })
    for (const [pattern, at] of this.#patterns) messages.push({ from, op: 'pattern', pattern, at })
    const keys = [...this.#keys]
    for (let i = 0; i < keys.length; i += KEYS_PER_MESSAGE) messages.push({ from, op: 'keys', keys: keys.slice(i, i + KEYS_PER_MESSAGE) })
    if (this.#all > 0) messages.push({ from, op: 'all', at: this.#all })
    this.#keys = new Map()
    this.#tags = new Map()
    this.#clears = new Map()
    this.#patterns = new Map()
    this.#all = 0
    return messages
  }
}
