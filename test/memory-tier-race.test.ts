/**
 * The memory tier and another process's write that lands while this process is busy with
 * cache calls of its own. Small entries are read and written synchronously, so a run of such
 * calls (misses, writes) may keep the event loop from turning for as long as it lasts: the
 * timer that marks the memory tier's next look at the change log cannot fire. A hit after
 * such a run must still see a write that resolved more than the documented ~5 ms before it.
 * Seen as stale reads (a value superseded 300+ ms earlier served from memory) in the
 * concurrency torture test under load.
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Larder } from '../src/index.ts'
import { childScript, runScript, repoRoot } from './children/shared.ts'

const base = mkdtempSync(path.join(tmpdir(), 'larder-memory-race-'))
after(() => rmSync(base, { recursive: true, force: true }))
let dirs = 0

/** Comfortably past the documented bound (another process's write is seen within ~5 ms). */
const PAST_THE_BOUND = 50
/** How many calls the busy run may make before the test gives up on the writer (it cannot
 *  time out otherwise: its timers cannot fire while the run lasts). */
const MOST_CALLS = 5_000_000

const runs = {
  'misses of other keys': (a: Larder, i: number) => a.get(`absent-${i % 8}`),
  'writes of other keys': (a: Larder, i: number) => a.set(`mine-${i % 8}`, i),
}

describe("a run of this process's own cache calls does not hide another process's write from its memory tier", () => {
  for (const [name, call] of Object.entries(runs)) {
    test(`${name}, then a hit: the other process's write is seen`, { timeout: 120_000 }, async () => {
      const dir = path.join(base, `cache-${++dirs}`)
      const marker = path.join(base, `written-${dirs}`)
      const a = await Larder.open({ dir, memory: true, maintenance: false })
      await a.set('k', 'v1')
      assert.equal(await a.get('k'), 'v1') // a hit: the memory tier has just looked at the change log
      assert.equal((await a.stats()).memoryHits, 1, 'the read came from memory')

      // From here until the marker appears, this process's event loop does not turn: only
      // its own cache calls run, each resolved without I/O callbacks or timers.
      const writer = spawn(
        process.execPath,
        [...runScript(childScript('late-writer.ts')), dir, 'k', '"v2"', String(PAST_THE_BOUND), marker],
        { cwd: repoRoot, stdio: 'ignore' },
      )
      let calls = 0
      while (!existsSync(marker) && calls < MOST_CALLS) await call(a, calls++)
      const seen = await a.get('k')

      const [code] = (await once(writer, 'exit')) as [number | null]
      assert.equal(code, 0, 'the writer failed')
      assert.ok(existsSync(marker), `the writer had not written after ${calls} calls`)
      assert.equal(seen, 'v2', `after ${calls} calls, while B's write resolved ${PAST_THE_BOUND}+ ms before the hit`)
      await a.close()
    })
  }
})
