/**
 * A cache directory someone damaged or planted things in (a FIFO, a huge sparse file, a
 * directory or an unreadable file where larder expects one of its files): every operation
 * finishes promptly, with bounded memory, counts the foreign item and goes on with the rest.
 * Sparse files (fs.truncateSync) stand in for huge ones: they cost no disk, and reading one
 * whole is what must not happen.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { describe, test } from 'node:test'
import { A_THEN_B, ONLY_A, open } from './encryption-helpers.ts'
import { entryFiles, tempDir } from './helpers.ts'

/** Resolves to 'timeout' if `promise` has not settled after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

describe('rekey in a damaged directory', () => {
  test('a FIFO at an entry name is counted corrupt and the rekey finishes, instead of waiting on it for ever', async () => {
    const dir = tempDir('larder-hostile-rekey-fifo')
    const writer = await open(dir, { encryption: ONLY_A })
    for (let i = 0; i < 5; i++) await writer.set(`k${i}`, `value ${i}`)
    await writer.close()
    const fifo = entryFiles(dir)[0]!
    fs.rmSync(fifo)
    execFileSync('mkfifo', [fifo])
    const cache = await open(dir, { encryption: A_THEN_B })
    const rekey = cache.rekey({ sealPlain: true })
    const report = await within(rekey, 5_000)
    if (report === 'timeout') {
      // The worker waits in open(2) for a writer: be one, so this run fails instead of hanging.
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK))
      await rekey
      assert.fail('rekey was still waiting on the FIFO after 5 s')
    }
    assert.equal(report.corrupt, 1)
    assert.equal(report.rekeyed, 4)
    await cache.close()
  })
})
