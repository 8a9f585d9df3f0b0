// CPU time of one set() with no disk under it (`dir: false`, memory tier only): validation,
// serialization, the memory tier's read-back, call order and counting, the part of every set
// that is larder's own work rather than the kernel's. Compares builds side by side, so a change
// to that path (issue 14: the JSON serializer without a replacer) is measured, not guessed.
//
//   npm run build && node bench/set-cpu.mjs [--rounds 5] [--n 100000] [--big] [label=path/to/index.js ...]
//
// Without builds named, the one in dist/. Each (build, round) is its own process, the builds
// alternating; a process sets 20,000 untimed, then n timed, one at a time, over 1,000 keys whose
// values are the bench's ~1 KiB ORM rows (`--big`: its ~64 KiB values, n/50 sets), and reports
// user + system CPU µs per set (process.cpuUsage, which other jobs' load moves far less than
// wall time). Printed: each round, then the median per build.
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = fileURLToPath(import.meta.url)
const argv = process.argv.slice(2)
const option = (name, fallback) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback)

if (argv[0] === '--child') {
  const [, module, n, big] = argv
  const { Larder } = await import(pathToFileURL(module).href)
  const { smallValue, bigValue } = await import('./data.mjs')
  const make = big === 'big' ? bigValue : smallValue
  const values = Array.from({ length: 1000 }, (_, i) => make(i))
  const cache = await Larder.open({ dir: false, memory: { maxEntries: 2000 } })
  const warm = big === 'big' ? 400 : 20_000
  for (let i = 0; i < warm; i++) await cache.set(`k${i % 1000}`, values[i % 1000])
  const count = Number(n)
  const before = process.cpuUsage()
  for (let i = 0; i < count; i++) await cache.set(`k${i % 1000}`, values[i % 1000])
  const used = process.cpuUsage(before)
  await cache.close()
  process.stdout.write(`${(used.user + used.system) / count}\n`)
  process.exit(0)
}

const rounds = option('--rounds', 5)
const big = argv.includes('--big')
const n = Math.max(100, Math.round(option('--n', 100_000) / (big ? 50 : 1)))
const builds = argv.filter((a) => a.includes('=')).map((a) => a.split('=', 2))
if (builds.length === 0) builds.push(['dist', path.join(path.dirname(here), '..', 'dist', 'index.js')])

const results = new Map(builds.map(([label]) => [label, []]))
for (let round = 0; round < rounds; round++) {
  for (const [label, module] of builds) {
    const out = execFileSync(process.execPath, [here, '--child', path.resolve(module), String(n), big ? 'big' : 'small'], {
      encoding: 'utf8',
    })
    const micros = Number(out.trim())
    results.get(label).push(micros)
    console.log(`round ${round + 1} ${label}: ${micros.toFixed(2)} µs CPU per set`)
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`\n${big ? '~64 KiB' : '~1 KiB'} values, ${n} sets a round, ${rounds} rounds; median CPU µs per set:`)
for (const [label, xs] of results)
  console.log(`  ${label}: ${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`)
