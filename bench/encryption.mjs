// Encryption's cost (issue 13): larder with and without `encryption`, side by side in one run.
// Each round runs bench/run.mjs once per variant (every case in its own process, as always),
// the variants alternating so machine load falls on both alike; the table shows medians of the
// rounds and their ratio. Goals: gets of 1 KiB values cost ≤ 1.15× unencrypted; streams keep
// ≥ 0.9× of their throughput.
//
//   npm run bench:encryption                   # quick sizes, 3 rounds (~4 min here)
//   node bench/encryption.mjs --full --rounds 5   # full sizes (after npm run build)
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const here = path.dirname(new URL(import.meta.url).pathname)
const argv = process.argv.slice(2)
const full = argv.includes('--full')
const rounds = Number(argv[argv.indexOf('--rounds') + 1] || 3) || 3
const STEPS = ['W1-set-seq', 'W1-set-c16', 'W2-get-seq', 'W2-get-c16', 'W5-put-tar', 'W5-get-tar', 'W5-put-gz', 'W5-get-gz']
// A throwaway key: the benchmark measures the cipher, not a secret.
const key = crypto.randomBytes(32).toString('hex')
const variants = {
  plain: undefined,
  encrypted: { encryption: { keys: { bench: key }, activeKey: 'bench' } },
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-bench-encryption-'))
const samples = { plain: {}, encrypted: {} } // variant → step → [value]
try {
  for (let round = 1; round <= rounds; round++) {
    for (const [variant, options] of Object.entries(variants)) {
      const out = path.join(work, `${variant}-${round}`)
      const args = [
        path.join(here, 'run.mjs'),
        ...(full ? [] : ['--quick']),
        '--runs',
        '1',
        '--impls',
        'larder',
        '--only',
        'W1,W2-get-seq,W2-get-c16,W5',
        '--out',
        out,
      ]
      if (options !== undefined) args.push('--larder-options', JSON.stringify(options))
      process.stderr.write(`round ${round}/${rounds}: ${variant}\n`)
      execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] })
      const file = fs.readdirSync(out).find((name) => name.endsWith('.json'))
      const result = JSON.parse(fs.readFileSync(path.join(out, file), 'utf8'))
      for (const step of STEPS) {
        const sample = result.samples[step]?.larder?.[0]
        if (sample === undefined) continue
        ;(samples[variant][step] ??= []).push(sample.metrics.opsPerSec ?? sample.metrics.mbPerSec)
      }
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}
const lines = [
  `# Encryption's cost (${full ? 'full' : 'quick'} sizes, median of ${rounds} rounds, ${new Date().toISOString().slice(0, 10)})`,
  '',
  '| step | unit | unencrypted | encrypted | cost (unencrypted ÷ encrypted) |',
  '|---|---|---:|---:|---:|',
]
for (const step of STEPS) {
  const plain = samples.plain[step]
  const sealed = samples.encrypted[step]
  if (plain === undefined || sealed === undefined) continue
  const unit = step.startsWith('W5') ? 'MB/s' : 'ops/s'
  const [p, s] = [median(plain), median(sealed)]
  lines.push(`| ${step} | ${unit} | ${p.toFixed(0)} | ${s.toFixed(0)} | ${(p / s).toFixed(2)}× |`)
}
console.log(lines.join('\n'))
