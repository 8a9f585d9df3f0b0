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

/** Left-aligned text columns, numbers right-aligned when `right` says so. */
export function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

/** "label   value" lines with the values lined up. */
export function pairs(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([label]) => label.length))
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n')
}
