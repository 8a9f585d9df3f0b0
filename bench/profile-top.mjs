// Summarises a V8 CPU profile (`node --cpu-prof`): self time per function and the total time
// under each of larder's own functions, so a profile can be read without a browser.
//
//   node bench/profile-top.mjs /tmp/prof/CPU.*.cpuprofile [--top 30] [--filter dist/index]
import fs from 'node:fs'

const args = process.argv.slice(2)
const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a))
const top = Number(args[args.indexOf('--top') + 1]) || 30
const filter = args.includes('--filter') ? args[args.indexOf('--filter') + 1] : undefined
const profile = JSON.parse(fs.readFileSync(file, 'utf8'))

const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const dt = new Map() // node id → µs of samples
for (let i = 0; i < profile.samples.length; i++)
  dt.set(profile.samples[i], (dt.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0))
const total = [...dt.values()].reduce((a, b) => a + b, 0)

const name = (n) => {
  const f = n.callFrame
  return `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`
}
const self = new Map()
const inclusive = new Map()
for (const [id, us] of dt) {
  const n = byId.get(id)
  self.set(name(n), (self.get(name(n)) ?? 0) + us)
  const seen = new Set()
  for (let at = id; at !== undefined; at = parent.get(at)) {
    const k = name(byId.get(at))
    if (seen.has(k)) continue
    seen.add(k)
    inclusive.set(k, (inclusive.get(k) ?? 0) + us)
  }
}
const pct = (us) => `${((us / total) * 100).toFixed(1).padStart(5)} %`
const show = (title, map) => {
  console.log(`\n${title} (of ${(total / 1000).toFixed(0)} ms sampled)`)
  for (const [k, us] of [...map]
    .filter(([k]) => !filter || k.includes(filter))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top))
    console.log(`${pct(us)}  ${k}`)
}
show('self time', self)
show('total time (self + callees)', inclusive)

// --callers NAME: where the time of functions whose name starts with NAME is spent from.
if (args.includes('--callers')) {
  const wanted = args[args.indexOf('--callers') + 1]
  const from = new Map()
  for (const [id, us] of dt) {
    const n = byId.get(id)
    if (!(n.callFrame.functionName || '').startsWith(wanted)) continue
    const chain = []
    for (let at = parent.get(id); at !== undefined && chain.length < 3; at = parent.get(at)) chain.push(name(byId.get(at)).split(' ')[0])
    const k = chain.join(' < ')
    from.set(k, (from.get(k) ?? 0) + us)
  }
  show(`callers of ${wanted}`, from)
}
