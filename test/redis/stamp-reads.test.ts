/**
 * The tag stamps Redis holds (`<prefix><ns>:\0tags`, one field per tag ever invalidated, never
 * removed) are read at open. A review found each open reading the whole hash twice (once when
 * the command connection was ready, once more after the bus's first SUBSCRIBE), each time with
 * one HGETALL: at 200k stamps 0.3–0.4 s of Redis blocked for every client, twice per open, past
 * commandTimeout. Asserted by what reaches Redis (MONITOR), never by time.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { MonitorRecorder } from './monitor-recorder.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

/** Passes over the stamp hash among `sent`: an HGETALL, or an HSCAN from cursor 0 (MONITOR
 *  shows the key's NUL as the text `\x00`). */
function stampPasses(sent: string[][]): number {
  const stamps = /(\0|\\x00)tags$/
  return sent.filter(([name, key, cursor]) => stamps.test(key ?? '') && (name === 'hgetall' || (name === 'hscan' && cursor === '0'))).length
}

describe('the tag stamps read at open', { skip }, () => {
  const recorder = new MonitorRecorder(server.url, 'clients')
  const prefix = `sr${process.pid}:`
  before(async () => {
    // A stamp in Redis, so there is something to read.
    const writer = await Larder.open({ dir: false, maintenance: false, redis: { url: server.url, prefix } })
    await writer.invalidateTags(['users'])
    await writer.close()
    await recorder.start()
  })
  after(() => recorder.stop())

  const cases: [string, Partial<LarderOptions>][] = [
    ['dir: false', { dir: false }],
    ['a directory', { dir: tempDir() }],
    ['readOnly', { dir: tempDir(), readOnly: true }],
    ['bus: false', { dir: false, bus: false }],
  ]
  for (const [label, more] of cases) {
    test(`an open (${label}) reads the stamp hash once`, async () => {
      let cache: Larder | undefined
      const sent = await recorder.during(async () => {
        cache = await Larder.open({ maintenance: false, redis: { url: server.url, prefix }, ...more })
      })
      try {
        // Before: two passes, the first sent when the connection was ready, before the bus had
        // subscribed, so the subscription (which may have missed messages) read them again.
        assert.equal(stampPasses(sent), 1, `passes over the hash: ${JSON.stringify(sent.map(([name]) => name))}`)
      } finally {
        await cache?.close()
      }
    })
  }
})
