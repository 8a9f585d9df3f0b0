// W8: memory + Redis, larder vs bentocache (memory + redis driver) vs cacheable (memory +
// @keyv/redis), side by side on one redis-server (started here on a free loopback port,
// persistence off), each case in its own process, median of 3 runs; and the bus's
// invalidation latency between two processes (p50/p99).
//
//   npm run build && node bench/w8.mjs [--runs 3] [--n 5000] [--warm 0]
//
// --warm W: W untimed operations of the same kind (other keys) before the timed n, in each
// case process but the memory hit's (which warms up by itself): the figures of a warm process.
//
// Writes bench/results/<date>-w8.json and .md, and prints the table.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os, { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const RUNS = arg('runs', 3)
const N = arg('n', 5000)
const BUS_N = arg('bus-n', 1000)
const WARM = arg('warm', 0)
const CASES = ['hit', 'l2get', 'setThrough', 'setNoBus', 'setBack', 'getOrSet']
const IMPLS = ['larder', 'bentocache', 'cacheable']

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function runCase(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(here, 'w8-case.mjs'), JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.on('exit', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)))
      } catch {
        reject(new Error(`case ${JSON.stringify(args)} printed ${out}`))
      }
    })
  })
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const port = await freePort()
const dir = mkdtempSync(path.join(tmpdir(), 'w8-redis-'))
const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
  stdio: 'ignore',
})
for (let i = 0; i < 200; i++) {
  try {
    if (
      execFileSync('redis-cli', ['-p', String(port), 'PING'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() === 'PONG'
    )
      break
  } catch {
    // not answering yet: try again
  }
  await new Promise((r) => setTimeout(r, 25))
}
const url = `redis://127.0.0.1:${port}`
const loadBefore = os.loadavg()[0].toFixed(2)
const rows = {}
const p50s = {}
const cpus = {}
try {
  // Interleaved: run r of a case for every implementation (their order rotating each run),
  // then run r + 1, so a change in the machine's load spreads over all of them instead of
  // landing on the one whose runs came in that spell.
  for (const c of CASES) {
    rows[c] = {}
    p50s[c] = {}
    cpus[c] = {}
    const samples = Object.fromEntries(IMPLS.map((impl) => [impl, []]))
    for (let r = 0; r < RUNS; r++) {
      for (let i = 0; i < IMPLS.length; i++) {
        const impl = IMPLS[(i + r) % IMPLS.length]
        execFileSync('redis-cli', ['-p', String(port), 'FLUSHALL'], { stdio: 'ignore' })
        const result = await runCase({ case: c, impl, url, n: N, warm: WARM })
        if (!result.ok) throw new Error(result.error)
        samples[impl].push(result)
      }
    }
    for (const impl of IMPLS) {
      rows[c][impl] = median(samples[impl].map((s) => s.usPerOp))
      p50s[c][impl] = median(samples[impl].map((s) => s.p50))
      cpus[c][impl] = median(samples[impl].map((s) => s.cpuPerOp ?? NaN))
      console.error(
        `${c} ${impl}: ${rows[c][impl].toFixed(2)} µs/op, p50 ${p50s[c][impl].toFixed(2)} (runs ${samples[impl].map((s) => s.usPerOp.toFixed(2)).join(', ')}; load ${os.loadavg()[0].toFixed(1)})`,
      )
    }
  }
  // The reader spinning on get (as before), then a reader that waits for the message.
  const busRows = {}
  for (const idle of [false, true]) {
    const bus = []
    for (let r = 0; r < RUNS; r++) {
      execFileSync('redis-cli', ['-p', String(port), 'FLUSHALL'], { stdio: 'ignore' })
      const result = await runCase({ case: 'bus', impl: 'larder', url, n: BUS_N, idle })
      if (!result.ok) throw new Error(result.error)
      bus.push(result)
    }
    const m = (f) => median(bus.map(f))
    busRows[idle ? 'idle' : 'spin'] = {
      p50: m((b) => b.p50),
      p99: m((b) => b.p99),
      heard: { p50: m((b) => b.heard.p50), p99: m((b) => b.heard.p99) },
      read: { p50: m((b) => b.read.p50), p99: m((b) => b.read.p99) },
      load: os.loadavg()[0].toFixed(1),
    }
  }
  const names = {
    hit: 'get, memory hit',
    l2get: 'get from Redis (memory miss)',
    setThrough: 'set (write-through)',
    setNoBus: 'set (write-through, no bus: larder `bus: false`, bentocache without its bus; cacheable has none)',
    setBack: 'set (larder write-back; peers: their set)',
    getOrSet: 'getOrSet (missing key, loader, stored)',
  }
  let md = `# W8: memory + Redis (${new Date().toISOString().slice(0, 10)}, Node ${process.version}, redis-server ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[1]}, loopback)\n\n`
  md += `\`node bench/w8.mjs --runs ${RUNS} --n ${N}${WARM > 0 ? ` --warm ${WARM}` : ''}\`: µs per operation, median of ${RUNS} interleaved runs, each case in its own process (lower is better); × = the better peer's time / larder's.\n\n`
  md +=
    'Each cell: the mean µs per operation over n operations, then (after /) the median single operation (the memory hit: the median of 1,000-hit batches after 300 ms of warm-up, both figures).\n\n'
  md += '| case | larder | bentocache | cacheable | × vs better peer (mean / median) |\n| --- | --- | --- | --- | --- |\n'
  const cell = (c, impl) => `${rows[c][impl].toFixed(2)} / ${p50s[c][impl].toFixed(2)}`
  for (const c of CASES) {
    const best = Math.min(rows[c].bentocache, rows[c].cacheable)
    const bestP50 = Math.min(p50s[c].bentocache, p50s[c].cacheable)
    md += `| ${names[c]} | ${cell(c, 'larder')} | ${cell(c, 'bentocache')} | ${cell(c, 'cacheable')} | ${(best / rows[c].larder).toFixed(2)}× / ${(bestP50 / p50s[c].larder).toFixed(2)}× |\n`
  }
  md +=
    "\nCPU µs per operation of each case's process (user + system, median of the runs; the memory hit's is of its 1,000-hit batches and warm-up, so not shown), which the machine's load moves far less than wall time:\n\n"
  md += '| case | larder | bentocache | cacheable |\n| --- | --- | --- | --- |\n'
  for (const c of CASES.filter((c) => c !== 'hit')) md += `| ${names[c]} | ${IMPLS.map((impl) => cpus[c][impl].toFixed(1)).join(' | ')} |\n`
  md += `\nLoad average: ${loadBefore} before, ${os.loadavg()[0].toFixed(2)} after.\n`
  md += `\nBus invalidation latency between two processes (a set on A until B reads the new value; ${BUS_N} changes per run, median of ${RUNS} runs), in ms, split at the message's arrival on B (a plain subscriber of B's):\n\n`
  md += '| reader | p50 | p99 | set → heard on B p50 / p99 | heard → read p50 / p99 | load |\n| --- | --- | --- | --- | --- | --- |\n'
  for (const [kind, b] of Object.entries(busRows)) {
    const f = (x) => x.toFixed(2)
    md += `| ${kind === 'spin' ? 'spins on get' : 'waits for the message'} | ${f(b.p50)} | ${f(b.p99)} | ${f(b.heard.p50)} / ${f(b.heard.p99)} | ${f(b.read.p50)} / ${f(b.read.p99)} | ${b.load} |\n`
  }
  console.log(md)
  const stem = path.join(here, 'results', `${new Date().toISOString().slice(0, 10)}-w8`)
  writeFileSync(
    `${stem}.json`,
    JSON.stringify({ runs: RUNS, n: N, warm: WARM, rows, p50s, cpus, bus: busRows, node: process.version }, null, 2) + '\n',
  )
  writeFileSync(`${stem}.md`, md)
} finally {
  server.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}
