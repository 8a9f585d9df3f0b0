// Turns the raw samples of a run into the Markdown report: one table per workload, a cell per
// implementation as **median** (min–max), the best peer and the limit of each row with larder's
// ratio to both, the machine limits, and the targets of issue #5 as PASS/MISS (reported, never
// asserted). Also the short excerpt the top-level README quotes (LATEST.md).
import fsp from 'node:fs/promises'
import path from 'node:path'
import { LIMITS, WHOLE_FILE, limitRowsFor, stepsFor, tablesFor } from './plan.mjs'

export function fmt(value, digits = 0) {
  if (value === undefined || Number.isNaN(value)) return '–'
  if (Math.abs(value) >= 1e6 && digits === 0) return `${(value / 1e6).toLocaleString('en-US', { maximumFractionDigits: 2 })} M`
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function summary(values) {
  if (!values || values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length, sum: sorted.reduce((a, b) => a + b, 0) }
}

const ratioText = (r) => (r === undefined || !Number.isFinite(r) ? '–' : `${r.toFixed(2)}×`)

export function renderReport({
  env,
  config,
  steps: ran,
  samples,
  failures,
  elapsedSeconds,
  cleanupSeconds,
  templateSeconds = 0,
  partial = false,
}) {
  // The steps as run (a subset's --impls leave others out: n/a, not failed); older records
  // without them: the plan's.
  const steps = Object.fromEntries((ran ?? stepsFor(config)).map((s) => [s.id, s]))
  const stat = (step, impl, metric) => summary(samples[step]?.[impl]?.map((s) => s.metrics[metric]))
  const targets = []
  const spreads = []
  const lines = []
  const latest = []

  lines.push(`# larder benchmark — ${env.date.slice(0, 10)} (${config.mode}${partial ? ', partial: only the steps below' : ''})`, '')
  lines.push(
    `- node ${env.node} · larder ${env.larder} · ${Object.entries(env.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(' · ')}`,
  )
  lines.push(`- ${env.cpu} · ${env.memory} RAM · ${env.os} · data in ${env.tmpdir}`)
  lines.push(
    `- machine state: load average ${env.loadBefore} before, ${env.loadAfter} after; thread-pool round trip (sequential fs.promises.stat) ${env.poolRoundTripBefore} µs before, ${env.poolRoundTripAfter} µs after`,
  )
  lines.push(
    `- ${config.runs} runs of every case, each in a fresh process, interleaved across implementations (run 1 of each, then run 2, …; the order rotates). ` +
      `Cells: **median** (min–max) of the runs; ratios and PASS/MISS on medians. Every read is checked against what was stored.`,
  )
  lines.push(
    `- Elapsed: ${fmt(elapsedSeconds / 60, 1)} min measuring, plus ${fmt(templateSeconds / 60, 1)} min writing W7's data sets once and ${fmt(cleanupSeconds / 60, 1)} min deleting data between runs (both untimed).`,
  )
  if (config.runs < 3)
    lines.push(
      `- **Smoke run (${config.runs} run${config.runs > 1 ? 's' : ''}): no meaningful spread; use \`npm run bench\` for numbers to quote.**`,
    )
  lines.push('')

  for (const table of tablesFor(config)) {
    const rows = table.rows.filter((row) => samples[row.step] !== undefined)
    if (rows.length === 0) continue
    const impls = [...new Set(rows.flatMap((row) => steps[row.step].impls))]
    const peers = impls.filter((i) => i !== 'larder' && !LIMITS.has(i))
    // A table may have several limits (W1–W4: async raw-fs and synchronous raw-fs-sync): a
    // column and a ratio for each. The first is the one LATEST.md quotes.
    const limits = impls.filter((i) => LIMITS.has(i))
    const limit = limits[0]
    const limitHeads = limits.length ? limits.map((l) => `limit: ${l}`) : ['limit']
    const ratioHeads = limits.length > 1 ? limits.map((l) => `larder / ${l}`) : ['larder / limit']
    lines.push(`## ${table.title}`, '')
    const wholeFile = peers.some((p) => WHOLE_FILE.has(p))
    lines.push(
      `| case | larder | ${peers.join(' | ')} | ${limitHeads.join(' | ')} | best peer | larder / best peer |${wholeFile ? ' larder / best file-per-entry peer |' : ''} ${ratioHeads.join(' | ')} | target |`,
    )
    lines.push(
      `|---|${'---:|'.repeat(peers.length + 1 + limitHeads.length)}---|---:|${wholeFile ? '---:|' : ''}${'---:|'.repeat(ratioHeads.length)}---|`,
    )
    for (const row of rows) {
      const digits = row.digits ?? 0
      const s = (impl) => {
        const st = stat(row.step, impl, row.metric)
        if (st && row.total) return { ...st, median: st.sum, min: st.sum, max: st.sum }
        return st
      }
      const cell = (impl) => {
        if (!steps[row.step].impls.includes(impl)) return 'n/a'
        const st = s(impl)
        if (st === undefined) return 'failed'
        if (row.total) return fmt(st.sum, 0)
        if (st.median > 0 && st.n > 1) spreads.push({ label: `${row.label} · ${impl}`, spread: (st.max - st.min) / st.median })
        return `**${fmt(st.median, digits)}** (${fmt(st.min, digits)}–${fmt(st.max, digits)})`
      }
      const mine = s('larder')
      const present = peers.filter((p) => steps[row.step].impls.includes(p) && s(p) !== undefined)
      const better = (a, b) => (row.lowerIsBetter ? a < b : a > b)
      const bestOf = (list) =>
        row.total ? undefined : list.reduce((top, p) => (top === undefined || better(s(p).median, s(top).median) ? p : top), undefined)
      const best = bestOf(present)
      const bestPerEntry = bestOf(present.filter((p) => !WHOLE_FILE.has(p)))
      const rPerEntry = mine && bestPerEntry ? mine.median / s(bestPerEntry).median : undefined
      const limitStatOf = (l) => (l && steps[row.step].impls.includes(l) ? s(l) : undefined)
      const limitStat = limitStatOf(limit)
      const rBest = mine && best && !row.total ? mine.median / s(best).median : undefined
      const rLimitOf = (l) => (mine && limitStatOf(l) && !row.total ? mine.median / limitStatOf(l).median : undefined)
      const verdicts = []
      for (const target of [row.target ?? []].flat()) {
        const verdict = checkTarget(
          row,
          target,
          mine,
          (name) => s(name),
          target.vsBestPerEntry !== undefined ? bestPerEntry : best,
          samples,
        )
        if (!verdict) continue
        verdicts.push(verdict)
        targets.push({ label: row.label, ...verdict })
        if (target.vsBest !== undefined && wholeFile && bestPerEntry !== best) {
          const info = checkTarget(row, target, mine, (name) => s(name), bestPerEntry, samples)
          if (info) targets.push({ label: `${row.label} (for information: file-per-entry peers only)`, ...info, informational: true })
        }
      }
      const perEntryCell = wholeFile ? ` ${ratioText(rPerEntry)}${bestPerEntry ? ` (${bestPerEntry})` : ''} |` : ''
      const limitCells = limits.length ? limits.map((l) => cell(l)) : ['–']
      const ratioCells = limits.length ? limits.map((l) => ratioText(rLimitOf(l))) : ['–']
      lines.push(
        `| ${row.label}${row.lowerIsBetter ? ' ↓' : ''} | ${cell('larder')} | ${peers.map(cell).join(' | ')} | ${limitCells.join(' | ')} | ${best ?? '–'} | ${ratioText(rBest)} |${perEntryCell} ${ratioCells.join(' | ')} | ${verdicts.map((v) => `${v.result} (${v.rule})`).join('; ')} |`,
      )
      if (!row.total && mine) {
        const limitText = limits
          .filter((l) => limitStatOf(l))
          .map((l) => `${fmt(limitStatOf(l).median, digits)} (${l}, ${ratioText(rLimitOf(l))})`)
          .join('; ')
        latest.push(
          `| ${row.label}${row.metric === 'rssGrowthMiB' ? ' (MiB)' : ''}${row.lowerIsBetter ? ' ↓' : ''} | ${fmt(mine.median, digits)} | ${best ? `${fmt(s(best).median, digits)} (${best})` : '–'} | ${ratioText(rBest)} | ${limitText || '–'} | ${verdicts.map((v) => `${v.rule.split(':')[0]} ${v.result}`).join(', ')} |`,
        )
      } else if (row.total && mine) {
        latest.push(
          `| ${row.label} | ${fmt(mine.sum)} | ${best ? `${fmt(s(best).sum)} (${best})` : '–'} | – | ${limitStat ? `${fmt(limitStat.sum)} (${limit})` : '–'} | ${verdicts.map((v) => `${v.rule.split(':')[0]} ${v.result}`).join(', ')} |`,
        )
      }
    }
    if (rows.some((row) => row.lowerIsBetter)) lines.push('', '↓ lower is better: there, a ratio below 1× favours larder.')
    lines.push('')
  }

  if (samples.limits?.machine) {
    lines.push(`## Machine limits · larder's per-byte work alone, same data, no disk`, '')
    lines.push('| what | median (min–max) |', '|---|---:|')
    for (const row of limitRowsFor(config)) {
      const st = stat('limits', 'machine', row.metric)
      if (st) lines.push(`| ${row.label} | **${fmt(st.median)}** (${fmt(st.min)}–${fmt(st.max)}) |`)
    }
    const ratio = summary(samples.limits.machine.map((x) => x.info.deflate_tar_ratio))
    const ratio64 = summary(samples.limits.machine.map((x) => x.info.value64kRatio))
    lines.push(
      '',
      `DEFLATE level 1 keeps ${fmt(ratio.median * 100, 0)} % of the tar-like artifact and ${fmt(ratio64.median * 100, 0)} % of a ~64 KiB value.`,
      '',
    )
  }

  lines.push('## Targets (issues #5 and #14; on medians; reported, not asserted)', '')
  lines.push('| target | rule | measured | result | short by |', '|---|---|---:|---|---:|')
  for (const t of targets)
    lines.push(`| ${t.label} | ${t.rule} | ${t.measured} | ${t.informational ? `(${t.result})` : t.result} | ${t.shortBy ?? ''} |`)
  const counted = targets.filter((t) => !t.informational)
  lines.push(
    '',
    `${counted.filter((t) => t.result === 'PASS').length} of ${counted.length} targets met. keyv-file and flat-cache keep the whole cache in memory and write it as one file ` +
      '(a "get from a new instance" is a memory read after loading that file, and a set is only durable at the next whole-file save); ' +
      'the rows marked "for information" compare larder with the best peer that stores a file per entry instead.',
    '',
  )

  const notes = []
  const disk = (step, impl) => summary(samples[step]?.[impl]?.map((s) => s.info.onDiskMiB))
  for (const step of ['W5-put-tar', 'W5-put-gz']) {
    if (!samples[step]) continue
    notes.push(
      `- ${step} entry size on disk (MiB, of ${config.streamMiB}): ${steps[step].impls.map((i) => `${i} ${fmt(disk(step, i)?.median, 1)}`).join(', ')}.`,
    )
  }
  const mp = samples['W6-procs']
  if (mp)
    notes.push(
      `- W6 misses (a key not written yet, or a larder entry caught damaged and turned into a miss), all runs: ${Object.entries(mp)
        .map(
          ([i, xs]) =>
            `${i} ${fmt(xs.reduce((a, x) => a + x.info.misses, 0))}` +
            (xs.some((x) => x.info.corruptDetected) ? ` (corrupt detected ${xs.reduce((a, x) => a + x.info.corruptDetected, 0)})` : ''),
        )
        .join(', ')}.`,
    )
  const wide = spreads.sort((a, b) => b.spread - a.spread).slice(0, 5)
  if (wide.length)
    notes.push(
      `- Widest spreads ((max − min) / median): ${wide.map((w) => `${w.label} ${fmt(w.spread * 100, 0)} %`).join('; ')}. Differences inside a cell's min–max are noise on this shared VM.`,
    )
  if (failures.length) {
    notes.push(`- **${failures.length} measurement(s) failed** (details in the JSON file):`)
    for (const f of failures) notes.push(`  - run ${f.run} ${f.step} ${f.impl}: ${String(f.error).split('\n')[0]}`)
  }
  if (notes.length) lines.push('## Notes', '', ...notes, '')

  const excerpt = [
    `Measured with \`npm run bench\` on ${env.date.slice(0, 10)}: ${env.cpu}, node ${env.node}; medians of ${config.runs} interleaved runs, each case in a fresh process. ` +
      `Full table with min–max and every peer: \`bench/results/${env.date.slice(0, 10)}.md\`; method: [bench/README.md](bench/README.md).`,
    '',
    '| case | larder | best peer | larder / best peer | limit (larder / limit) | targets (issue) |',
    '|---|---:|---:|---:|---:|---|',
    ...latest,
    '',
    '↓ lower is better. keyv-file and flat-cache hold the whole cache in memory and save it as one file; the full report also compares larder with the best peer that stores a file per entry.',
    '',
    `Peers: ${Object.entries(env.versions)
      .filter(([k]) => k !== 'xxhash-wasm')
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}. ` +
      `Targets met: ${targets.filter((t) => !t.informational && t.result === 'PASS').length} of ${targets.filter((t) => !t.informational).length} (details and misses in the full report).`,
    '',
  ].join('\n')

  return { markdown: lines.join('\n'), excerpt, targets }
}

function checkTarget(row, t, mine, statOf, best, samples) {
  if (!t || !mine) return undefined
  const result = checkOne(row, t, mine, statOf, best, samples)
  return result && { ...result, rule: `#${t.issue ?? 5}: ${result.rule}` }
}

function checkOne(row, t, mine, statOf, best, samples) {
  const short = (got, need) => `${fmt((1 - got / need) * 100, 0)} %`
  if (t.vsBest !== undefined || t.vsBestPerEntry !== undefined || t.vs !== undefined) {
    const other = t.vs ?? best
    const os = other && statOf(other)
    if (!os) return undefined
    const factor = t.f ?? t.vsBest ?? t.vsBestPerEntry
    const r = mine.median / os.median
    const ok = r >= factor
    const whom = t.vs ? other : t.vsBestPerEntry !== undefined ? `best file-per-entry peer (${other})` : `best peer (${other})`
    return {
      rule: `≥ ${factor}× ${whom}`,
      measured: `${r.toFixed(2)}×`,
      result: ok ? 'PASS' : 'MISS',
      shortBy: ok ? undefined : short(r, factor),
    }
  }
  if (t.atMost !== undefined) {
    const ok = mine.median <= t.atMost
    return {
      rule: `≤ ${t.atMost} ${t.unit}`,
      measured: `${fmt(mine.median, row.digits ?? 1)} ${t.unit}`,
      result: ok ? 'PASS' : 'MISS',
      shortBy: ok ? undefined : `${fmt(mine.median - t.atMost, row.digits ?? 1)} ${t.unit} over`,
    }
  }
  if (t.zero) {
    const total = samples[row.step].larder.reduce((a, x) => a + x.metrics[row.metric], 0)
    return {
      rule: '0 in every run',
      measured: fmt(total),
      result: total === 0 ? 'PASS' : 'MISS',
      shortBy: total === 0 ? undefined : `${fmt(total)} too many`,
    }
  }
  return undefined
}

/**
 * Writes <out>/<date>[-quick][-partial].md and .json (the raw samples, written to a temp name
 * and renamed), and for a complete full run the README excerpt <out>/LATEST.md.
 */
export async function writeReport(record, out) {
  const { markdown, excerpt } = renderReport(record)
  const { env, config, partial } = record
  await fsp.mkdir(out, { recursive: true })
  const base = path.join(out, `${env.date.slice(0, 10)}${config.mode === 'quick' ? '-quick' : ''}${partial ? '-partial' : ''}`)
  await fsp.writeFile(base + '.md', markdown + '\n')
  await fsp.writeFile(base + '.json.tmp', JSON.stringify(record, null, 2) + '\n')
  await fsp.rename(base + '.json.tmp', base + '.json')
  if (config.mode === 'full' && !partial) await fsp.writeFile(path.join(out, 'LATEST.md'), excerpt)
  return { markdown, base }
}
