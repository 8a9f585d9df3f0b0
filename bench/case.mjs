// One benchmark case in one fresh process:
//
//   node --expose-gc bench/case.mjs '{"case":"set1k","impl":"larder","dir":"/tmp/x","n":5000,"conc":1}'
//
// Prints exactly one JSON line on stdout: { ok, case, impl, metrics: { name: number }, info }.
// run.mjs spawns one of these per measurement; it can also be run by hand to look at a single
// number, with {"larderOptions": {...}} to try larder options (run.mjs never sets them).
import { set1k, get1k, miss1k } from './cases/small-values.mjs'
import { mem1k } from './cases/memory-tier.mjs'
import { set64k, get64k } from './cases/big-values.mjs'
import { streamPut, streamGet } from './cases/artifact-stream.mjs'
import { multiProcess } from './cases/many-processes.mjs'
import { prune, pruneSetup } from './cases/prune.mjs'
import { limits } from './cases/machine-limits.mjs'

const CASES = { set1k, get1k, miss1k, mem1k, set64k, get64k, streamPut, streamGet, multiProcess, prune, pruneSetup, limits }

const args = JSON.parse(process.argv[2] ?? '{}')
// An application process stays alive while its cache works. node-persist's write queue runs on
// an unref'd 1 s interval: without this, a case waiting on it would end with its writes pending.
const keepAlive = setInterval(() => {}, 2 ** 30)
let exitCode = 0
try {
  const run = CASES[args.case]
  if (!run) throw new Error(`unknown case ${args.case} (known: ${Object.keys(CASES).join(', ')})`)
  const result = await run(args)
  process.stdout.write(JSON.stringify({ ok: true, case: args.case, impl: args.impl, ...result }) + '\n')
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, case: args.case, impl: args.impl, error: String(error?.stack ?? error) }) + '\n')
  exitCode = 1
}
// Some stores keep timers alive (write queues, expiry sweeps, idle workers): the case is over.
clearInterval(keepAlive)
process.exit(exitCode)
