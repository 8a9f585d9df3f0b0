/**
 * Findings of an adversarial review of the shared tier (2026-12-06), each reproduced there
 * first (several processes on one redis-server) and failing on the code before its fix:
 * - a host whose disk refused writes (reads still working, as on a file system remounted
 *   read-only) went on serving values another host had deleted, overwritten or invalidated,
 *   even once its disk took writes again: the removal or stamp heard on the bus was dropped;
 * - after an outage, grace served a value another host had deleted meanwhile: the outage rule
 *   checked fresh local copies against Redis, not those in their grace period.
 */
import { afterEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Larder } from '../../src/index.ts'
import { disk } from '../../src/store/disk.ts'
import { entryFiles, tempDir } from '../helpers.ts'
import { startRelay } from './proxy.ts'
import { eventually, redisAvailable, startRedis, type RedisServer } from './server.ts'
import { setTimeout as delay } from 'node:timers/promises'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

let prefixes = 0
const nextPrefix = (): string => `rv3-${process.pid}-${++prefixes}:`

const realDisk = { ...disk }
afterEach(() => Object.assign(disk, realDisk))
const seam = disk as unknown as Record<string, (...args: unknown[]) => unknown>

/** The disk refuses every change (EROFS) and still reads, as a file system remounted read-only. */
function readOnlyDisk(): void {
  const refuse = (): never => {
    throw Object.assign(new Error('EROFS: injected'), { code: 'EROFS' })
  }
  const writes = fs.constants.O_WRONLY | fs.constants.O_RDWR | fs.constants.O_CREAT
  seam.openSync = (file: unknown, flags: unknown, ...rest: unknown[]) =>
    (typeof flags === 'number' && (flags & writes) !== 0) || (typeof flags === 'string' && flags !== 'r')
      ? refuse()
      : realDisk.openSync(file as string, flags as number, ...(rest as []))
  for (const name of [
    'unlinkSync',
    'renameSync',
    'linkSync',
    'rmSync',
    'mkdirSync',
    'writeSync',
    'utimesSync',
    'lutimesSync',
    'unlink',
    'rename',
    'rm',
    'write',
  ])
    seam[name] = refuse
}

describe('a host whose disk refuses changes', { skip }, () => {
  test('serves none of the values another host deleted, overwrote or invalidated, then or once its disk takes writes again', async () => {
    const redis = { url: server.url, prefix: nextPrefix() }
    const a = await Larder.open({ dir: false, redis, maintenance: false })
    const dir = tempDir()
    const b = await Larder.open({ dir, redis, maintenance: false, breaker: { volumeThreshold: 1000 } })
    try {
      await a.set('k', 'v1', { tags: ['t'] })
      await a.set('k2', 'x1')
      await a.set('k3', 'y1')
      assert.deepEqual(await b.getMany(['k', 'k2', 'k3']), ['v1', 'x1', 'y1'])
      await eventually(() => entryFiles(dir).length === 3)
      readOnlyDisk()
      await a.invalidateTags(['t'])
      await a.set('k2', 'x2')
      await a.delete('k3')
      // The three messages reach b a moment apart: wait for the last, then require all three.
      const values = async (): Promise<unknown[]> => b.getMany(['k', 'k2', 'k3'])
      await eventually(async () => JSON.stringify(await values()) === JSON.stringify([undefined, 'x2', undefined]))
      assert.deepEqual(await b.getMany(['k', 'k2', 'k3']), [undefined, 'x2', undefined], 'while the disk refuses')
      Object.assign(disk, realDisk)
      assert.deepEqual(await b.getMany(['k', 'k2', 'k3']), [undefined, 'x2', undefined], 'once it takes writes again')
    } finally {
      Object.assign(disk, realDisk)
      await a.close()
      await b.close()
    }
  })
})

describe('after an outage', { skip }, () => {
  test('grace does not serve a value another host deleted while this one was cut off', async () => {
    const relay = await startRelay(server.port)
    const prefix = nextPrefix()
    const a = await Larder.open({ dir: false, redis: { url: server.url, prefix }, maintenance: false })
    const b = await Larder.open({ dir: tempDir(), redis: { url: relay.url, prefix }, maintenance: false })
    try {
      assert.equal(await b.getOrSet('k', () => 'v1', { ttl: '300ms', grace: '1h' }), 'v1')
      await delay(400) // expired, in its grace period, on b's disk
      await relay.down()
      // Expired (in its grace): removed, but no live entry was there.
      assert.equal(await a.delete('k'), false)
      await relay.up()
      await eventually(async () => (await b.stats()).tiers.redis!.breaker?.state === 'closed')
      await delay(300)
      await assert.rejects(
        b.getOrSet(
          'k',
          () => {
            throw new Error('db down')
          },
          { grace: '1h' },
        ),
        /db down/,
        'the deleted value is not the stand-in',
      )
    } finally {
      await a.close()
      await b.close()
      await relay.close()
    }
  })
})
