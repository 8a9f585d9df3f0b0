/**
 * Another instance sharing a Redis (its own directory, or none), for test/redis/. Sends
 * `{ type: 'ready' }`, then answers `{ id, op, ...args }` with `{ id, ok, result | error }`:
 * open, get, set, setAll (keys at once), delete, clear, invalidateTags, lockedLoad (getOrSet with lock: true, whose
 * loader waits `ms` and is counted in `loads`), flush, stats, close.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { Larder, type LarderOptions } from '../../src/index.ts'
import { serveRequests } from './rpc.ts'

let cache: Larder | undefined
let loads = 0

function open(): Larder {
  if (cache === undefined) throw new Error('not open')
  return cache
}

async function handle(m: Record<string, unknown>): Promise<unknown> {
  switch (m.op) {
    case 'open':
      cache = await Larder.open(m.options as LarderOptions)
      return true
    case 'get':
      return { value: await open().get(m.key as string) }
    case 'set':
      await open().set(m.key as string, m.value, m.options as object | undefined)
      return true
    case 'setAll': {
      // Every key at once, each to `<tag>-<key>`: writes in flight together.
      const tag = m.tag as string
      await Promise.all((m.keys as string[]).map((key) => open().set(key, `${tag}-${key}`)))
      return true
    }
    case 'delete':
      return open().delete(m.key as string)
    case 'clear':
      await open().clear(m.options as { tier?: 'memory' | 'file' | 'redis' } | undefined)
      return true
    case 'invalidateTags':
      await open().invalidateTags(m.tags as string[])
      return true
    case 'lockedLoad': {
      const value = await open().getOrSet(
        m.key as string,
        async () => {
          loads++
          await delay(m.ms as number)
          return m.value
        },
        { lock: true },
      )
      return { value, loads }
    }
    case 'flush':
      await open().flush()
      return true
    case 'stats':
      return open().stats()
    case 'close':
      await open().close()
      cache = undefined
      return true
    default:
      throw new Error(`unknown op ${String(m.op)}`)
  }
}

serveRequests(handle, async () => cache?.close())
