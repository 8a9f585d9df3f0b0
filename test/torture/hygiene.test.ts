/**
 * Resource hygiene: a process runs many operations over several open/close sessions (memory
 * tier, streams, tags, automatic and explicit prunes and verifies in worker threads), then
 * must end on its own: no timer, worker or handle of larder may keep it alive. Open file
 * descriptors after close equal those before, and RSS does not grow from one session to the
 * next (compared after a full GC, with a generous margin: the bound catches a leak of
 * entries or buffers, not allocator noise).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { childScript, repoRoot, MiB } from '../children/shared.ts'
import { tempDir } from '../helpers.ts'
import { record, scale } from './scale.ts'

describe('resource hygiene', () => {
  const OPS = scale(12_000, 100_000)

  test(`after ${OPS.toLocaleString('en-US')} operations and close: the process exits on its own, no fd growth, RSS stable`, { timeout: scale(240_000, 1_200_000) }, async (t) => {
    const dir = tempDir('larder-torture-hygiene')
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', childScript('../torture/children/hygiene-child.ts'), dir, String(OPS)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d))
    child.stderr.on('data', (d: Buffer) => (err += d))
    // The child never calls process.exit: if anything keeps its event loop alive, this waits
    // until the generous timer below fires and fails the test.
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    let kept = false
    const timer = setTimeout(() => {
      kept = true
      child.kill('SIGKILL')
    }, scale(200_000, 1_100_000))
    const code = await exited
    clearTimeout(timer)
    assert.equal(kept, false, `the process did not exit on its own after close; it printed: ${out}${err}`)
    assert.equal(code, 0, err)
    const result = JSON.parse(out.trim().split('\n').pop()!) as { fdsBefore: number; fdsAfter: number; rss: number[]; resources: string[]; ops: number }
    assert.ok(result.fdsAfter <= result.fdsBefore, `file descriptors: ${result.fdsBefore} before, ${result.fdsAfter} after`)
    assert.deepEqual(result.resources.filter((r) => r !== 'Timeout' && r !== 'FSReqCallback'), [], 'handles left after close')
    const [first, , , last] = result.rss as [number, number, number, number]
    assert.ok(last - first < 64 * MiB, `RSS grew ${((last - first) / MiB).toFixed(1)} MiB from the first to the last session`)
    record(t, {
      area: 'hygiene', what: 'operations over 4 sessions, then close', tried: result.ops, unit: 'operations', survived: result.ops,
      note: `fds ${result.fdsBefore} → ${result.fdsAfter}; RSS by session ${result.rss.map((r) => (r / MiB).toFixed(0)).join(' / ')} MiB; exited on its own`,
    })
  })
})
