/** Keys whose latest change heard is remembered, at least (the most recent ones). */
export const HEARD_MAX = 10_000
/** …unless their UTF-16 code units add up to more than this: a guard holds each key's string,
 *  and 10,000 keys of 8 KiB (the longest there is) would keep ~100 MB alive. Typical keys (up
 *  to ~100 characters) never reach it. */
export const HEARD_CHARS_MAX = 1 << 20

/**
 * Whether a value a read found in a lower tier may be promoted into the tiers above it, given
 * what other instances changed (heard on the bus) while the read was in flight. A memory tier
 * keeps one of its own for what the change log names (memory-tier.ts).
 *
 * A read takes a `ticket` before it starts. A change of its key heard since then that is newer
 * than the entry read (a delete, an overwrite) means the value may be what that change
 * replaced: it must not be promoted, or it would outlive the message that dropped the copies
 * above. A change heard of another key, or of this very entry (a message stamped with its own
 * creation time, the usual case just after another instance set it), does not matter: a busy
 * bus must not stop every promotion. Whatever cannot be judged key by key (a clear, a tag
 * invalidation, an outage, a key forgotten past HEARD_MAX) refuses every promotion of a read
 * that began before it.
 *
 * Changes called by this instance are KeyOrder's concern: it keeps a guard of its own, where
 * each one counts as a change of its key newer than any entry (`at` = Infinity).
 */
export class PromotionGuard {
  /** Keys whose latest change is remembered (at least), and their characters (at most). */
  readonly #remember: number
  readonly #maxChars: number
  /** The characters of the keys in #heard. */
  #chars = 0
  /** Moves with every change heard. */
  #seq = 0
  /** Tickets taken (see `tickets`). */
  #tickets = 0
  /** Reads with a ticket below this may not promote anything. */
  #floor = 0
  /** Clears of the local files under way (see hold()). */
  #holds = 0
  /** key → the latest change heard of it (when, and `#seq` then); oldest first. */
  readonly #heard = new Map<string, { seq: number; at: number }>()

  /** `remember`: how many keys' latest changes to keep (the tier stack's guard: HEARD_MAX; a
   *  memory tier's guard of the change log, fewer: its reads in flight span a look or two);
   *  `maxChars`: the most characters of keys kept. */
  constructor(remember = HEARD_MAX, maxChars = HEARD_CHARS_MAX) {
    this.#remember = remember
    this.#maxChars = maxChars
  }

  /** Taken by a read before it starts. */
  ticket(): number {
    this.#tickets++
    return this.#seq
  }

  /** How many tickets were taken so far: a change during which none was taken cannot have
   *  been read by a read that would promote (KeyOrder hears its end only if one was). */
  get tickets(): number {
    return this.#tickets
  }

  /** Another instance changed `key` at `at` (a write of an entry created then, or a delete). */
  heard(key: string, at: number): void {
    const seq = ++this.#seq
    const before = this.#heard.get(key)
    if (before === undefined) this.#chars += key.length
    else this.#heard.delete(key)
    this.#heard.set(key, { seq, at: Math.max(at, before?.at ?? 0) })
    if (this.#heard.size > this.#remember + Math.ceil(this.#remember / 4) || this.#chars > this.#maxChars) this.#forgetOldest()
  }

  /** Forgets the oldest changes down to what it remembers (and to three quarters of its
   *  characters), in one walk, once the map has grown a quarter past it (or past its
   *  characters); a read begun before the newest of them can no longer be judged by its key,
   *  so it may not promote. In bulk because a Map forgets its oldest entry cheaply only
   *  so: V8 leaves a deleted entry as a hole that iteration walks over until the table is
   *  rebuilt, so forgetting the first entry on every change (as this did) walked thousands of
   *  holes per change once a cache had changed more than HEARD_MAX keys (a memory-only set,
   *  9 µs with 1,000 keys, took 15–23 µs with 9,000–50,000 distinct keys). */
  #forgetOldest(): void {
    let excess = this.#heard.size - this.#remember
    const chars = (this.#maxChars * 3) / 4
    for (const [key, change] of this.#heard) {
      if (excess-- <= 0 && this.#chars <= chars) break
      this.#heard.delete(key)
      this.#chars -= key.length
      this.#floor = Math.max(this.#floor, change.seq)
    }
  }

  /** Something changed that no key names (a clear, a tag invalidation, an outage): no read
   *  that began before may promote. */
  heardAll(): void {
    // The changes heard by key stay (bounded as ever): a write asks them (supersededSince).
    this.#floor = ++this.#seq
  }

  /**
   * A clear of the local files begins: it removes them one partition at a time, so a read
   * meanwhile may find a file about to go, and its promotion into memory would outlive the
   * clear (and any clear of memory heard while it runs). Nothing is promoted until every hold
   * is released, and then no read begun before may promote.
   */
  hold(): void {
    this.#holds++
  }

  release(): void {
    this.#holds--
    this.heardAll()
  }

  /** Whether another instance's change of `key` stamped at or after `createdAt` (a newer
   *  write or delete, or a write stamped alike) was heard since `ticket`: a write's local copies
   *  then must not outlive it. Changes that name no key do not count (a clear keeps what was
   *  written after it, a tag invalidation is judged by its stamps), nor do changes forgotten
   *  since the ticket (past HEARD_MAX: a busy bus must not make every write drop its own fresh
   *  copies; Redis's answer, `kept`, still catches a write it did not keep). */
  supersededSince(key: string, createdAt: number, ticket: number): boolean {
    const change = this.#heard.get(key)
    return change !== undefined && change.seq > ticket && change.at >= createdAt
  }

  /** Whether the entry of `key` created at `createdAt`, read with `ticket`, may be promoted. */
  mayPromote(key: string, createdAt: number, ticket: number): boolean {
    if (this.#holds > 0) return false
    if (ticket === this.#seq) return true
    if (this.#floor > ticket) return false
    const change = this.#heard.get(key)
    return change === undefined || change.seq <= ticket || change.at <= createdAt
  }
}
