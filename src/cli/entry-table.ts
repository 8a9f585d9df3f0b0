import type { EntryInfo } from '../maintenance/listing.js'
import { columnWidths, count, duration, entries as plural, printable, size, table, tableLine } from './format.js'

/** `larder ls`'s columns; size and age right-aligned. */
const HEADER = ['key', 'size', 'age', 'expires', 'tags']
const RIGHT: ReadonlySet<number> = new Set([1, 2])

/** A chunk is printed once it holds this many entries, or this many characters of keys and
 *  tags (a head may carry kilobytes of tags: the chunk's memory, not its count, is the bound). */
const CHUNK_ENTRIES = 1000
const CHUNK_CHARS = 1 << 20

/** An entry as a row of `larder ls`, as of `now`. */
function entryRow(e: EntryInfo, now: number): string[] {
  return [
    e.key.length > 60 ? e.key.slice(0, 59) + '…' : e.key,
    size(e.size),
    duration(now - e.createdAt),
    e.expiresAt === null ? 'never' : e.expiresAt <= now ? 'expired' : `in ${duration(e.expiresAt - now)}`,
    e.tags.join(','),
  ]
}

/** The table of a listing held whole (sorted, or the first of a --limit), and how many of how
 *  many it shows. */
export function entryTable(entries: readonly EntryInfo[], total: number): string {
  if (total === 0) return 'no entries'
  const now = Date.now()
  const rows = entries.map((e) => entryRow(e, now))
  const shown = entries.length < total ? `\n${count(entries.length)} of ${plural(total)}` : `\n${plural(total)}`
  return table(HEADER, rows, RIGHT) + shown
}

/**
 * `larder ls` without a sort asked for or a limit: the table printed as the listing comes, a
 * chunk at a time, so a cache of millions is listed in the memory of a chunk and the batches
 * the listing has in flight. Each chunk is in `order` (key order) within itself, not across
 * chunks; a listing that fits in one chunk prints exactly as a sorted whole one does. Columns
 * are as wide as the first chunk needs, and widen (never narrow) for a later one's wider cells.
 */
export class EntryTableStream {
  /** Entries listed so far. */
  total = 0
  readonly #write: (text: string) => Promise<void>
  readonly #order: (a: EntryInfo, b: EntryInfo) => number
  #held: EntryInfo[] = []
  #chars = 0
  #widths: number[] | undefined

  /** `write`: resolves once the text is taken (stdout's backpressure holds the listing back). */
  constructor(write: (text: string) => Promise<void>, order: (a: EntryInfo, b: EntryInfo) => number) {
    this.#write = write
    this.#order = order
  }

  async add(batch: readonly EntryInfo[]): Promise<void> {
    for (const entry of batch) {
      this.#held.push(entry)
      this.total++
      this.#chars += entry.key.length
      for (const tag of entry.tags) this.#chars += tag.length + 1
      if (this.#held.length >= CHUNK_ENTRIES || this.#chars >= CHUNK_CHARS) await this.#flush()
    }
  }

  /** After the last batch: what is held, then the count (or "no entries"). */
  async end(): Promise<void> {
    if (this.total === 0) return this.#write('no entries\n')
    await this.#flush()
    await this.#write(`${plural(this.total)}\n`)
  }

  async #flush(): Promise<void> {
    if (this.#held.length === 0) return
    const held = this.#held.sort(this.#order)
    this.#held = []
    this.#chars = 0
    const now = Date.now()
    const rows = held.map((e) => entryRow(e, now).map(printable))
    const first = this.#widths === undefined
    const widths = (this.#widths = columnWidths(HEADER, rows, this.#widths))
    const lines = first
      ? [
          tableLine(HEADER, widths, RIGHT),
          tableLine(
            widths.map((w) => '-'.repeat(w)),
            widths,
            RIGHT,
          ),
        ]
      : []
    for (const row of rows) lines.push(tableLine(row, widths, RIGHT))
    await this.#write(lines.join('\n') + '\n')
  }
}
