// One of W6's processes: opens the shared store, waits for the parent's "go", then does its
// rounds of set + get (or + `getsPerSet` gets) and reports counts (see many-processes.mjs).
import { prng, smallValue } from '../data.mjs'
import { openStore } from './open.mjs'

const args = JSON.parse(process.argv[2])
const { ops, keySpace, writer } = args
/** Gets per round after its set (1 in W6; more for a read-heavy mix such as an ORM's, where
 *  another process's write must not cost every other key's memory hit). */
const getsPerSet = args.getsPerSet ?? 1
const keyOf = (k) => `shared:orm:list:${k}`
// A value names its key and its writer and carries that key's rows: any writer's value for key
// k is a right answer for k, anything else is wrong.
const rows = Array.from({ length: keySpace }, (_, k) => smallValue(k))
const valueOf = (k, seq) => ({ key: k, writer, seq, rows: rows[k] })
const expectedRows = rows.map((r) => JSON.stringify(r))

// Stay alive while the store works (see case.mjs).
setInterval(() => {}, 2 ** 30)

const counts = { reads: 0, misses: 0, errors: 0, torn: 0, wrong: 0, corruptDetected: 0, memoryHits: 0, firstError: undefined }
try {
  const store = await openStore(args)
  process.send({ type: 'ready' })
  await new Promise((resolve) => process.once('message', resolve))
  const next = prng(7919 * (writer + 1))
  for (let seq = 0; seq < ops; seq++) {
    const k = next() % keySpace
    try {
      await store.set(keyOf(k), valueOf(k, seq))
    } catch (error) {
      counts.errors++
      counts.firstError ??= `set: ${error.message}`
    }
    for (let g = 0; g < getsPerSet; g++) {
      const r = next() % keySpace
      let value
      try {
        value = await store.get(keyOf(r))
      } catch (error) {
        if (error instanceof SyntaxError) counts.torn++
        else counts.errors++
        counts.firstError ??= `get: ${error.message}`
        continue
      }
      counts.reads++
      if (value === undefined || value === null) counts.misses++
      else if (value.key !== r || !(value.writer >= 0 && value.writer < 64) || JSON.stringify(value.rows) !== expectedRows[r])
        counts.wrong++
    }
  }
  await store.flush?.()
  // larder turns a damaged file into a miss and counts it: report how often that happened.
  if (store.stats) {
    const stats = await store.stats()
    counts.corruptDetected = stats.corrupt
    counts.memoryHits = stats.memoryHits
  }
  await store.close()
  // Some stores keep timers alive (write queues, expiry sweeps): exit once the parent has the report.
  process.send({ type: 'done', ...counts }, () => process.exit(0))
} catch (error) {
  process.send({ type: 'failed', error: String(error?.stack ?? error) }, () => process.exit(1))
}
