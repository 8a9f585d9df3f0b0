/**
 * A `getStream` the breaker timed out: the caller was answered (a miss), while the read went
 * on and made a stream with the entry file open. Nobody will consume that stream, and a
 * stream is read (and its file closed) only when consumed, so it must be destroyed, not left
 * holding the file. Found by the torture suite's slow-disk case as a leaked descriptor.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Larder } from '../src/index.ts'
import { disk } from '../src/store/disk.ts'
import { openFileTargets, tempDir } from './helpers.ts'

const base = tempDir('larder-late-stream')
after(() => rmSync(base, { recursive: true, force: true }))

/** This process's open descriptors on files under `dir`. */
function openUnder(dir: string): string[] {
  return openFileTargets().filter((target) => target.startsWith(dir + path.sep))
}

test('a stream made after the breaker timed its getStream out is destroyed: its entry file is closed', async () => {
  const dir = path.join(base, 'cache')
  // Incompressible, over the 2 MiB + 64 KiB that getStream reads whole, and stored as it is:
  // streamed through an open handle. Written without a timeout: this test is about the read.
  const writer = await Larder.open({ dir, maintenance: false, compression: 'none' })
  await writer.setStream('artifact', [randomBytes(3 * 1024 * 1024)])
  await writer.close()
  const cache = await Larder.open({
    dir,
    maintenance: false,
    compression: 'none',
    breaker: { timeout: '20ms', volumeThreshold: 1_000_000 },
  })
  const real = disk.open
  let opened = 0
  try {
    disk.open = async (...args: Parameters<typeof real>) => {
      await delay(100) // a slow disk: the open outlasts the breaker's timeout
      const handle = await real(...args)
      opened++
      return handle
    }
    assert.equal(await cache.getStream('artifact'), undefined, 'the timed-out read answered as a miss')
    while (opened === 0) await delay(10) // the read went on, and has the file open now
    disk.open = real
    let left = openUnder(dir)
    // Closed at once when destroyed; without that, only a garbage collection would close it.
    for (let i = 0; i < 10 && left.length > 0; i++) {
      await delay(20)
      left = openUnder(dir)
    }
    assert.deepEqual(left, [], 'the late stream kept its entry file open')
  } finally {
    disk.open = real
    await cache.close()
  }
})
