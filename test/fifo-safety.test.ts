/**
 * A FIFO planted where a small file of the cache belongs (a tag stamp, budget.json, the
 * running totals) must not stop the process: reads of such files never block on it (no
 * O_NONBLOCK, and `open()` of a FIFO nobody writes waits for ever), never follow a link, and
 * treat it as a damaged file. Run in a child process: a blocked main thread cannot time out.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { runChildScript, tempDir } from './helpers.ts'

async function run(where: string): Promise<{ out: string; err: string; finished: boolean }> {
  // Generous: the child needs well under a second; only a blocked thread takes this long.
  const { code, out, err } = await runChildScript('fifo-child.ts', [tempDir(`larder-fifo-${where}`), where])
  return { out, err, finished: code === 0 }
}

describe('a FIFO planted where a small file of ours belongs', () => {
  for (const where of ['stamp', 'budget', 'base', 'epoch']) {
    test(
      `at the ${where === 'stamp' ? 'tag stamp' : where}: get, stats, prune and close return (the FIFO is a damaged file, not a wait)`,
      { timeout: 60_000 },
      async () => {
        const r = await run(where)
        assert.ok(r.finished, `the process did not finish: blocked on the FIFO? stdout ${r.out} stderr ${r.err.slice(0, 500)}`)
        const done = JSON.parse(r.out.slice(r.out.indexOf('done ') + 5)) as { value: unknown; pruned: unknown }
        if (where === 'stamp') assert.equal(done.value, undefined, 'a stamp that cannot be read must not leave the entry fresh')
        else assert.deepEqual(done.value, { v: 1 })
        assert.equal(typeof done.pruned, 'number', `prune: ${String(done.pruned)}`)
      },
    )
  }
})
