/**
 * prune({ pattern }) with `redis`, while sets of matching keys are called after it. A prune is
 * in no key's order: those sets run at once, and land in Redis while its pass still scans.
 * The pass used to UNLINK every matching key it met, these too, and with a directory it took
 * its removal's time only once the workers' pass over the files was done: the writer kept its
 * memory copy, Redis and every other instance lost the value. Redis now loses only what was
 * written at or before the removal's time, taken when prune() is called.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Larder } from '../../src/index.ts'
import { tempDir } from '../helpers.ts'
import { redisAvailable, startRedis, type RedisServer } from './server.ts'

const skip = redisAvailable() ? false : 'redis-server is not installed (.ci/run installs it)'
const server = skip === false ? await startRedis() : (undefined as unknown as RedisServer)

describe('prune({ pattern }) with sets of matching keys called after it', { skip }, () => {
  const shapes = [
    { dir: false, writeStrategy: 'write-through' },
    { dir: true, writeStrategy: 'write-through' },
    { dir: true, writeStrategy: 'write-back' },
  ] as const
  for (const [i, { dir, writeStrategy }] of shapes.entries()) {
    test(`${dir ? 'a directory' : 'dir: false'}, ${writeStrategy}: the sets stay in Redis and every instance reads them`, async () => {
      const prefix = `po-${process.pid}-${i}:`
      const raw = new Redis(server.port, '127.0.0.1')
      const open = (): Promise<Larder> =>
        Larder.open({
          dir: dir && tempDir('larder-prune-overlap'),
          memory: { maxEntries: 5000 },
          redis: { url: server.url, prefix },
          writeStrategy,
        })
      const [a, b] = [await open(), await open()]
      try {
        await a.setMany(Array.from({ length: 3000 }, (_, i) => ({ key: `k${i}`, value: i })))
        await a.flush()
        const pruning = a.prune({ pattern: 'k*' })
        const late = Array.from({ length: 30 }, (_, i) => `k${i * 100}`)
        await Promise.all(late.map((key) => a.set(key, `new ${key}`)))
        await a.flush()
        await pruning

        for (const key of late) {
          assert.equal(await raw.exists(`${prefix}default:${key}`), 1, `Redis holds ${key}`)
          assert.equal(await a.get(key), `new ${key}`)
          assert.equal(await b.get(key), `new ${key}`, 'the other instance reads it from Redis')
        }
        assert.equal(await b.get('k1'), undefined, 'the values written before the prune went')
      } finally {
        await a.close()
        await b.close()
        raw.disconnect()
      }
    })
  }
})
