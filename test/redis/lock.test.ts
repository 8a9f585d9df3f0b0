/**
 * getOrSet({ lock: true }) across real processes sharing one Redis (neither peer protects
 * against a cross-instance stampede): 20 processes asking at once for one missing key call
 * the loader once, and every one of them gets its value.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startChild, type Child } from '../children/harness.ts'
import { tempDir } from '../helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

const PROCESSES = 20

describe('getOrSet({ lock: true }) across processes', { skip }, () => {
  const children: Child[] = []
  const prefix = `l${process.pid}:`
  before(async () => {
    children.push(...(await Promise.all(Array.from({ length: PROCESSES }, () => startChild('redis-peer.ts')))))
    await Promise.all(
      children.map((child, i) =>
        child.call('open', {
          // Half with a directory of their own, half memory + Redis only. The lock is what is
          // tested: 20 processes on 2 loaded cores can take longer than the default 500 ms to
          // get an answer to SET NX, and a command that times out is the fail-open rule (the
          // loader runs: test/redis/faults.test.ts), so the timeout is generous here.
          options: {
            dir: i % 2 === 0 ? tempDir() : false,
            memory: true,
            maintenance: false,
            redis: { url: server.url, prefix, commandTimeout: '10s' },
          },
        }),
      ),
    )
  })
  after(() => Promise.all(children.map((child) => child.shutdown())))

  test(`${PROCESSES} processes asking for one missing key call the loader once`, async () => {
    // The loader holds on long enough for every process to ask while it runs.
    const results = await Promise.all(
      children.map((child) =>
        child.call<{ value: unknown; loads: number }>('lockedLoad', { key: 'stampede', value: { built: 'once' }, ms: 1500 }),
      ),
    )
    for (const { value } of results) assert.deepEqual(value, { built: 'once' })
    assert.equal(
      results.reduce((sum, r) => sum + r.loads, 0),
      1,
      'one loader call in all',
    )
  })

  test('again for another key: one more loader call in all', async () => {
    const results = await Promise.all(
      children.map((child) => child.call<{ value: unknown; loads: number }>('lockedLoad', { key: 'stampede-2', value: 'again', ms: 1500 })),
    )
    for (const { value } of results) assert.equal(value, 'again')
    assert.equal(
      results.reduce((sum, r) => sum + r.loads, 0),
      2,
      'one more loader call in all',
    )
  })
})
