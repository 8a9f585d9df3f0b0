import bytes from 'bytes-iec'

/** How numbers, sizes, times and tables look in human output. */

export function count(n: number): string {
  return n.toLocaleString('en-US')
}

/** "1 entry", "48,211 entries". */
export function entries(n: number): string {
  return `${count(n)} ${n === 1 ? 'entry' : 'entries'}`
}

/** Decimal units, as operators read disk sizes: 2.3 GB. */
export function size(n: number): string {
  if (n < 1000) return `${n} B`
  return (bytes.format(n, { mode: 'metric', decimalPlaces: 1 }) ?? `${n} B`).replace(/([\d.])([A-Za-z])/, '$1 $2')
}

/** A duration for people: 850 ms, 1.4 s, 3 min, 5 h, 2 d. */
export function duration(ms: number): string {
  const abs = Math.abs(ms)
  if (abs < 1000) return `${Math.round(ms)} ms`
  if (abs < 60_000) return `${(ms / 1000).toFixed(1)} s`
  if (abs < 3_600_000) return `${Math.round(ms / 60_000)} min`
  if (abs < 86_400_000) return `${Math.round(ms / 3_600_000)} h`
  return `${Math.round(ms / 86_400_000)} d`
}

export function ago(at: number, now = Date.now()): string {
  return `${duration(now - at)} ago`
}

export function percent(part: number, whole: number): string {
  return whole === 0 ? '0 %' : `${((part / whole) * 100).toFixed(1)} %`
}

/** Control characters (C0, DEL, C1) and bidirectional overrides escaped (`\x1b`, `\u202e`):
 *  keys and tags are the applications' text, often a request's, and must not move the
 *  operator's cursor, recolour or clear the terminal, or start a line of their own. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it finds
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`
  })
}

/** Left-aligned text columns, numbers right-aligned when `right` says so; cells made printable. */
export function table(header: string[], rawRows: string[][], right: ReadonlySet<number> = new Set()): string {
  const rows = rawRows.map((row) => row.map(printable))
  const widths = columnWidths(header, rows)
  return [
    tableLine(header, widths, right),
    tableLine(
      widths.map((w) => '-'.repeat(w)),
      widths,
      right,
    ),
    ...rows.map((row) => tableLine(row, widths, right)),
  ].join('\n')
}

/** The widths of a table's columns: each its widest cell's, and never less than `atLeast` (a
 *  table printed a chunk at a time keeps every column as wide as it has been). */
export function columnWidths(header: string[], rows: string[][], atLeast: readonly number[] = []): number[] {
  // A loop, not Math.max(...rows): a spread of 130,000 rows overflows the stack.
  const widths = header.map((h, i) => Math.max(h.length, atLeast[i] ?? 0))
  for (const row of rows) for (const [i, cell] of row.entries()) if (cell.length > (widths[i] ?? 0)) widths[i] = cell.length
  return widths
}

/** One line of a table: cells (already printable) padded to `widths`. */
export function tableLine(cells: string[], widths: readonly number[], right: ReadonlySet<number> = new Set()): string {
  return cells
    .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
    .join('  ')
    .trimEnd()
}

/** "label   value" lines with the values lined up. */
export function pairs(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([label]) => label.length))
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n')
}
