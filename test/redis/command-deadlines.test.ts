/**
 * commandTimeout kept by one timer per client (src/redis/command-deadlines.ts): a late command
 * is judged after the poll, a settled one never, the queue holds what is in flight and no
 * more, and a command sent twice keeps its first deadline. Commands here are stand-ins with
 * the one field the deadlines read and ioredis's `_clearTimers` deletes; a real connection's
 * commands are in the Redis test below.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Larder } from '../../src/index.ts'
import { CommandDeadlines, type WatchedCommand } from '../../src/redis/command-deadlines.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

/** What ioredis's Command does with the field when the command settles (`_clearTimers`). */
function settle(command: WatchedCommand): void {
  delete command._commandTimeoutTimer
}

describe('command deadlines', () => {
  test('a command unanswered past its deadline is late; an answered one never is', async () => {
    const late: WatchedCommand[] = []
    const deadlines = new CommandDeadlines((command) => late.push(command))
    const answered: WatchedCommand = {}
    const silent: WatchedCommand = {}
    deadlines.watch(answered, 30)
    deadlines.watch(silent, 30)
    settle(answered)
    await sleep(10)
    assert.deepEqual(late, [], 'not before its deadline')
    await sleep(80)
    assert.equal(late.length, 1)
    assert.equal(late[0], silent)
  })

  test('an answer that arrives before the check after the timer is taken (judged after the poll)', async () => {
    const late: WatchedCommand[] = []
    const deadlines = new CommandDeadlines((command) => late.push(command))
    const command: WatchedCommand = {}
    deadlines.watch(command, 5)
    // The answer comes in the same turn as the late timer, before the immediate that judges it:
    // a timer of the same duration, armed after the deadline's, runs right after it in the same
    // timers phase (one list per duration, in the order armed), however busy the process was.
    // (A setTimeout(0) armed after the busy wait was due only in the next turn under load: CI.)
    setTimeout(() => settle(command), 5)
    const until = performance.now() + 30
    while (performance.now() < until);
    await sleep(60)
    assert.deepEqual(late, [])
  })

  test('the queue holds what is in flight: 10,000 commands answered one after another leave one', () => {
    const deadlines = new CommandDeadlines(() => assert.fail('none is late'))
    for (let i = 0; i < 10_000; i++) {
      const command: WatchedCommand = {}
      deadlines.watch(command, 60_000)
      settle(command)
    }
    assert.equal(deadlines.size, 1, 'the last one, until the next is sent')
  })

  test('a command sent again (a redirection) keeps its first deadline; later ones are judged in turn', async () => {
    const late: WatchedCommand[] = []
    const deadlines = new CommandDeadlines((command) => late.push(command))
    const first: WatchedCommand = {}
    deadlines.watch(first, 20)
    await sleep(10)
    deadlines.watch(first, 1000) // sent again: the first deadline stands
    const second: WatchedCommand = {}
    deadlines.watch(second, 60)
    await sleep(40)
    assert.deepEqual(late, [first])
    await sleep(60)
    assert.deepEqual(late, [first, second])
  })
})

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe('command deadlines on a connection larder opened', { skip }, () => {
  test('commands in flight arm no timer each (ioredis armed one per command)', async () => {
    const cache = await Larder.open({
      dir: false,
      memory: false,
      maintenance: false,
      bus: false,
      redis: { url: server.url, prefix: `cd${process.pid}:` },
    })
    try {
      await cache.set('k', 1)
      const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length
      const idle = timers()
      const reads = Array.from({ length: 50 }, (_, i) => cache.get(`k${i % 2 === 0 ? '' : i}`))
      const during = timers()
      await Promise.all(reads)
      assert.ok(during - idle <= 1, `${during - idle} more timers with 50 commands in flight`)
    } finally {
      await cache.close()
    }
  })
})
