/**
 * `npm run test:torture`: runs test/torture/*.test.ts (at full scale unless LARDER_TORTURE is
 * already set, e.g. LARDER_TORTURE=reduced), then prints the summary table the tests
 * recorded (see scale.ts). Exits with the test run's status.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '../..')
const summaryDir = mkdtempSync(path.join(tmpdir(), 'larder-torture-summary-'))
const summary = path.join(summaryDir, 'rows.jsonl')
const files = readdirSync(here)
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => path.join('test/torture', f))
const started = performance.now()
const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, LARDER_TORTURE: process.env.LARDER_TORTURE ?? 'full', LARDER_TORTURE_SUMMARY: summary },
})
const seconds = (performance.now() - started) / 1000

interface Row {
  area: string
  what: string
  tried: number
  unit: string
  survived: number
  note?: string
  scale: string
  skipped?: boolean
  reason?: string
}
const rows: Row[] = existsSync(summary)
  ? readFileSync(summary, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Row)
  : []
rmSync(summaryDir, { recursive: true, force: true })

const header = ['area', 'what was tried', 'tried', 'survived']
const table = rows.map((r) =>
  r.skipped === true
    ? [r.area, r.what, 'skipped', '–']
    : [r.area, r.what, `${r.tried.toLocaleString('en-US')} ${r.unit}`, `${r.survived.toLocaleString('en-US')}`],
)
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)))
const line = (cells: string[]): string => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`
console.log(
  `\n=== torture summary (${rows[0]?.scale ?? process.env.LARDER_TORTURE ?? 'full'} scale, ${seconds.toFixed(0)} s, exit ${run.status})`,
)
console.log(line(header))
console.log(`|${widths.map((w, i) => (i >= 2 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|')}|`)
for (const r of table) console.log(line(r))
for (const r of rows) if (r.note) console.log(`  ${r.area} / ${r.what}: ${r.note}`)
for (const r of rows) if (r.skipped === true) console.log(`  ${r.area} / ${r.what}: skipped, ${r.reason}`)
if (rows.length === 0) console.log('(no rows recorded: did every test fail early?)')
// The table is computed from what each case observed; a row where fewer survived than were
// tried fails the run even if its test somehow passed.
const fell = rows.filter((r) => r.skipped !== true && r.survived < r.tried)
if (fell.length > 0) console.log(`\n${fell.length} row(s) with survived < tried: the run fails`)
process.exit(fell.length > 0 ? 1 : (run.status ?? 1))
