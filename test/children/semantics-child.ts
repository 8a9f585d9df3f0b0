/**
 * A child process for the API-semantics tests: larder calls over IPC (see harness.ts), plus a
 * `getOrSet` whose loader the parent holds open, so another process can act while it runs.
 *
 * Ops: `open { options }` → handle; `get`, `set`, `delete`, `invalidateTags` on a handle;
 * `startLoad { h, key, value, options }` starts `getOrSet(key, loader, options)`, and the
 * loader sends `{ type: 'loader-started', key }` and waits; `finishLoad { key }` lets the
 * loader return `value` and resolves with what `getOrSet` returned.
 */
import { Larder, type LarderOptions } from '../../src/index.ts'
import { serveRequests } from './rpc.ts'

const caches = new Map<number, Larder>()
let nextHandle = 1
const loads = new Map<string, { release(): void; result: Promise<unknown> }>()

function cacheOf(handle: unknown): Larder {
  const cache = caches.get(handle as number)
  if (cache === undefined) throw new Error(`no cache with handle ${String(handle)}`)
  return cache
}

async function handle(message: Record<string, unknown>): Promise<unknown> {
  switch (message.op) {
    case 'open': {
      const cache = await Larder.open(message.options as LarderOptions)
      caches.set(nextHandle, cache)
      return nextHandle++
    }
    case 'get': {
      const value = await cacheOf(message.h).get(message.key as string)
      return { present: value !== undefined, value }
    }
    case 'set':
      await cacheOf(message.h).set(message.key as string, message.value, message.options as object | undefined)
      return true
    case 'delete':
      return cacheOf(message.h).delete(message.key as string)
    case 'invalidateTags':
      await cacheOf(message.h).invalidateTags(message.tags as string[])
      return true
    case 'startLoad': {
      const key = message.key as string
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      const result = cacheOf(message.h).getOrSet(
        key,
        async () => {
          process.send!({ type: 'loader-started', key })
          await gate
          return message.value
        },
        message.options as object | undefined,
      )
      result.catch(() => {}) // reported by finishLoad
      loads.set(key, { release, result })
      return true
    }
    case 'finishLoad': {
      const load = loads.get(message.key as string)!
      loads.delete(message.key as string)
      load.release()
      return await load.result
    }
    default:
      throw new Error(`unknown op ${String(message.op)}`)
  }
}

serveRequests(handle, () => Promise.all([...caches.values()].map((c) => c.close())))
