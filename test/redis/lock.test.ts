/**
 * getOrSet({ lock: true }) across real processes sharing one Redis (neither peer protects
 * against a cross-instance stampede): 20 processes asking at once for one missing key call
 * the loader once, and every one of them gets its value.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startChild, type Child } from '../children/harness.ts'
import { tempDir } from '../helpers.ts'
import { eventually } from '../eventually.ts'
import { withCaches } from './instances.ts'
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

describe('getOrSet({ lock: true }) when the holder lets the lock go without a value', { skip }, () => {
  test('every waiting instance calls its own loader then, none waiting for another waiter’s loader', async () => {
    const options = { dir: false, redis: { url: server.url, prefix: `lr${process.pid}:`, commandTimeout: '10s' } } as const
    await withCaches([options, options, options, options], async (caches) => {
      // Each loader runs until the test lets it end: the holder's fails, the waiters' hang.
      const started: number[] = []
      let failHolder!: (error: Error) => void
      let endWaiters!: (value: string) => void
      const waitersEnd = new Promise<string>((resolve) => (endWaiters = resolve))
      const call = (i: number): Promise<unknown> =>
        caches[i]!.getOrSet(
          'fails',
          () => {
            started.push(i)
            return i === 0 ? new Promise<string>((_, reject) => (failHolder = reject)) : waitersEnd
          },
          { lock: true },
        ).catch((error: unknown) => error)
      const holder = call(0)
      await eventually(() => started.length === 1, 'the holder’s loader runs')
      const waiters = [1, 2, 3].map(call)
      await new Promise((resolve) => setTimeout(resolve, 300)) // the waiters find the lock held
      assert.deepEqual(started, [0], 'the waiters wait for the holder')
      failHolder(new Error('source down'))
      await holder
      // Before: one waiter took the lock and the others waited for its loader (up to 10 s),
      // where the README says they call their own once the lock is released.
      await eventually(() => started.length === 4, 'every waiter calls its loader within 6 s, not one at a time', 6_000)
      endWaiters('loaded')
      for (const value of await Promise.all(waiters)) assert.equal(value, 'loaded')
    })
  })
})
