import type { EntryInfo } from '../maintenance/listing.js'

/**
 * The first `limit` entries in `order` of a listing that arrives in batches (`larder ls
 * --limit`), and how many there were, holding at most twice `limit` entries besides the batch
 * just given: a cache of millions is listed in the memory of its top few. The sort is stable
 * and what is kept always came earlier in the listing than what is added, so ties come out as
 * a sort of the whole listing would have left them.
 */
export class TopEntries {
  /** Entries seen, kept or not. */
  total = 0
  readonly #limit: number
  readonly #order: (a: EntryInfo, b: EntryInfo) => number
  #kept: EntryInfo[] = []

  constructor(limit: number, order: (a: EntryInfo, b: EntryInfo) => number) {
    this.#limit = limit
    this.#order = order
  }

  add(batch: readonly EntryInfo[]): void {
    this.total += batch.length
    if (this.#limit === 0) return
    for (const entry of batch) this.#kept.push(entry) // not push(...batch): a partition may hold more than a call's arguments
    if (this.#kept.length >= 2 * this.#limit) this.#trim()
  }

  /** The first `limit`, in order. */
  get entries(): EntryInfo[] {
    this.#trim()
    return this.#kept
  }

  #trim(): void {
    this.#kept.sort(this.#order)
    if (this.#kept.length > this.#limit) this.#kept.length = this.#limit
  }
}
