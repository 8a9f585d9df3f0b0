import { setTimeout as sleep } from 'node:timers/promises'
import { isLarderError } from 'larder'

/** Deletes held to be sent again; past this, the oldest is let go (and reported). */
const MAX_HELD = 1_000
/** The first wait before a refused delete is tried again, and the longest. */
const FIRST_WAIT_MS = 500
const LONGEST_WAIT_MS = 30_000
/** How long closing the adapter keeps trying the deletes still held. */
const CLOSING_MS = 2_000

/**
 * Deletes a cache refused (`ERR_UNAVAILABLE`, which only a cache with `failOpen: false` throws:
 * a fail-open cache keeps what Redis could not take and sends it itself), held and tried again
 * until they go through, for a host library that cannot: undici fires `delete` after an unsafe
 * request and never hears how it went, so a delete Redis refused once would leave every other
 * host (and each one that starts later) serving the old response until its ttl.
 *
 * One per key (a later delete of a key held replaces it), at most MAX_HELD, tried again on an
 * unref'd timer that waits longer after each round that fails (FIRST_WAIT_MS doubling up to
 * LONGEST_WAIT_MS), and by `drain()` when the adapter closes (for up to CLOSING_MS). A delete
 * sent late only costs misses: a response stored meanwhile goes too.
 */
export class ResentDeletes<Key> {
  readonly #send: (key: Key) => Promise<void>
  readonly #report: (error: Error) => void
  readonly #held = new Map<string, Key>()
  #timer: NodeJS.Timeout | undefined
  #wait = FIRST_WAIT_MS
  #sending: Promise<void> | undefined

  /** `send` runs the delete; it rejects with ERR_UNAVAILABLE when it was refused again. */
  constructor(send: (key: Key) => Promise<void>, report: (error: Error) => void) {
    this.#send = send
    this.#report = report
  }

  /** Holds `key` (under `id`) if `error` is a refusal; anything else is not sent again. */
  holdIfRefused(error: unknown, id: string, key: Key): void {
    if (!isLarderError(error, 'ERR_UNAVAILABLE')) return
    this.#held.delete(id)
    this.#held.set(id, key)
    if (this.#held.size > MAX_HELD) {
      const [oldest] = this.#held.keys()
      this.#held.delete(oldest as string)
      this.#report(new Error(`More than ${MAX_HELD} refused deletes held: the oldest was let go (${oldest})`))
    }
    this.#schedule()
  }

  /** The adapter is closing: rounds for up to CLOSING_MS (a breaker opened by the refusals
   *  lets calls through again after its resetTimeout); what is still refused is reported, and
   *  let go. */
  async drain(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#sending
    const until = Date.now() + CLOSING_MS
    for (;;) {
      await this.#round()
      if (this.#held.size === 0 || Date.now() + FIRST_WAIT_MS > until) break
      await sleep(FIRST_WAIT_MS)
    }
    for (const id of this.#held.keys()) this.#report(new Error(`A refused delete was never sent: ${id}`))
    this.#held.clear()
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#sending !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#sending = this.#round().finally(() => {
        this.#sending = undefined
        if (this.#held.size > 0) this.#schedule()
      })
    }, this.#wait)
    this.#timer.unref()
  }

  /** Tries every held delete once, in the order held; a refusal keeps it (and the next round
   *  waits longer), anything else settles it. */
  async #round(): Promise<void> {
    let refused = false
    for (const [id, key] of [...this.#held]) {
      try {
        await this.#send(key)
        if (this.#held.get(id) === key) this.#held.delete(id)
      } catch (error) {
        if (isLarderError(error, 'ERR_UNAVAILABLE')) refused = true
        else {
          if (this.#held.get(id) === key) this.#held.delete(id)
          this.#report(error instanceof Error ? error : new Error(String(error)))
        }
      }
    }
    this.#wait = refused ? Math.min(this.#wait * 2, LONGEST_WAIT_MS) : FIRST_WAIT_MS
  }
}
