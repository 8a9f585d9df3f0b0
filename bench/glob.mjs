// Key globs (src/maintenance/glob.ts): matching time against key length, for patterns with
// several stars, larder's automaton beside the regular-expression translation it replaced
// (`*` → `.*`, what glob-to-regexp produced), on keys that almost match (the worst case for
// backtracking). The automaton should grow linearly with the key; the regex grows with the
// key's length to the power of the stars (cubic for the issue's pattern), so it is run only for
// that pattern and only up to 2.5 KB. Median of --runs (default 5) per cell.
// Usage (sources through tsx): node --import tsx bench/glob.mjs [--runs 5]
import { Glob } from '../src/maintenance/glob.ts'

const args = process.argv.slice(2)
const runs = Number(args[args.indexOf('--runs') + 1] || 5) || 5
const PATTERNS = ['build:*:*:*:done', '*:*:*:*:*:*:done', 'build:{*:,:*}*:done']
const LENGTHS = [512, 1024, 2560, 4096, 8192]
const REGEX_UP_TO = 2560

function nearMiss(length) {
  return 'build:' + ':'.repeat(length - 'build:'.length - 4) + 'donX'
}

function regexOf(pattern) {
  const body = pattern
    .replace(/[.+^$()|\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
    .replace(/\{([^}]*)\}/g, (_, alts) => `(${alts.split(',').join('|')})`)
  return new RegExp(`^${body}$`)
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

function time(match, key) {
  const samples = []
  for (let r = 0; r < runs; r++) {
    const started = performance.now()
    const matched = match(key)
    samples.push(performance.now() - started)
    if (matched) throw new Error('a near miss matched')
  }
  return median(samples)
}

const ms = (x) => (x < 1 ? `${(x * 1000).toFixed(0)} µs` : x < 1000 ? `${x.toFixed(1)} ms` : `${(x / 1000).toFixed(2)} s`)
console.log(`| pattern | matcher | ${LENGTHS.map((l) => `${l} B`).join(' | ')} |`)
console.log(`|---|---|${LENGTHS.map(() => '---:').join('|')}|`)
for (const pattern of PATTERNS) {
  const glob = new Glob(pattern)
  for (let i = 0; i < 20; i++) glob.test(nearMiss(LENGTHS.at(-1))) // warm up the JIT
  console.log(`| \`${pattern}\` | larder Glob | ${LENGTHS.map((l) => ms(time((k) => glob.test(k), nearMiss(l)))).join(' | ')} |`)
  if (pattern !== PATTERNS[0]) continue
  const regex = regexOf(pattern)
  console.log(
    `| \`${pattern}\` | RegExp | ${LENGTHS.map((l) => (l <= REGEX_UP_TO ? ms(time((k) => regex.test(k), nearMiss(l))) : '–')).join(' | ')} |`,
  )
}
