// W6: `procs` processes share one directory and each does `ops` rounds of set + get over a
// small shared key space, so writers race writers and readers race writers on the same files
// (`getsPerSet`: that many gets a round, a read-heavy mix).
// Every value read is checked whole; a read that is not exactly some writer's value for that
// key is "wrong"; a read that throws a parse error is "torn"; any other exception is an error.
// A miss is allowed (a cache may miss) and counted. Aggregate ops/s counts sets and gets.
import { fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { openStore } from './open.mjs'

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'many-processes-worker.mjs')

export async function multiProcess(args) {
  const { procs, ops } = args
  // Open once here so directory set-up (partitions, index) is not raced by the first writes.
  const first = await openStore(args)
  await first.close()
  const workers = Array.from({ length: procs }, (_, w) =>
    fork(WORKER, [JSON.stringify({ ...args, writer: w })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] }),
  )
  const message = (child, type) =>
    new Promise((resolve, reject) => {
      child.on('message', (m) => m.type === type && resolve(m))
      child.on('message', (m) => m.type === 'failed' && reject(new Error(m.error)))
      child.on('exit', (code) => code && reject(new Error(`worker exited with ${code}`)))
    })
  await Promise.all(workers.map((child) => message(child, 'ready')))
  const done = workers.map((child) => message(child, 'done'))
  const started = performance.now()
  for (const child of workers) child.send({ type: 'go' })
  const reports = await Promise.all(done)
  const elapsed = (performance.now() - started) / 1000
  const sum = (field) => reports.reduce((total, r) => total + r[field], 0)
  const metrics = {
    opsPerSec: (procs * ops * (1 + (args.getsPerSet ?? 1))) / elapsed,
    errors: sum('errors'),
    torn: sum('torn'),
    wrong: sum('wrong'),
  }
  const info = {
    seconds: elapsed,
    reads: sum('reads'),
    misses: sum('misses'),
    memoryHits: sum('memoryHits'),
    corruptDetected: sum('corruptDetected'),
    firstError: reports.find((r) => r.firstError)?.firstError,
  }
  return { metrics, info }
}
