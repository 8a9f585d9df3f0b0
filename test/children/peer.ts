/**
 * Another process using the same cache, for the cross-process read tests (tag clock, memory
 * tier). Two ways to run it:
 *
 * - `peer.ts` with an 'advanced' IPC channel: sends `{ type: 'ready' }`, then answers
 *   `{ id, op, ...args }` requests (open, get, set, setStream, delete, clear, invalidateTags,
 *   stats, close) with `{ id, ok, result | error }`, as worker.ts does.
 * - `peer.ts once <dir> <op> <key> [value JSON]`: opens the cache, does one set / setStream /
 *   delete / clear, closes it and exits. Run with `execFileSync`, it writes while the calling
 *   process's event loop is blocked.
 */
import { Larder, type LarderOptions } from '../../src/index.ts'

const caches = new Map<number, Larder>()
let nextHandle = 1

function cacheOf(handle: unknown): Larder {
  const cache = caches.get(handle as number)
  if (cache === undefined) throw new Error(`no cache with handle ${String(handle)}`)
  return cache
}

async function handle(m: Record<string, unknown>): Promise<unknown> {
  switch (m.op) {
    case 'open': {
      const cache = await Larder.open(m.options as LarderOptions)
      const h = nextHandle++
      caches.set(h, cache)
      return h
    }
    case 'get':
      return { value: await cacheOf(m.h).get(m.key as string) }
    case 'set':
      await cacheOf(m.h).set(m.key as string, m.value, m.options as object | undefined)
      return true
    case 'setStream':
      await cacheOf(m.h).setStream(m.key as string, [Buffer.from(m.bytes as Uint8Array)], m.options as object | undefined)
      return true
    case 'delete':
      return cacheOf(m.h).delete(m.key as string)
    case 'clear':
      await cacheOf(m.h).clear()
      return true
    case 'invalidateTags':
      await cacheOf(m.h).invalidateTags(m.tags as string[])
      return true
    case 'stats':
      return cacheOf(m.h).stats()
    case 'close':
      await cacheOf(m.h).close()
      caches.delete(m.h as number)
      return true
    default:
      throw new Error(`unknown op ${String(m.op)}`)
  }
}

if (process.argv[2] === 'once') {
  const [dir, op, key, value] = process.argv.slice(3) as [string, string, string, string | undefined]
  const cache = await Larder.open({ dir, maintenance: false })
  if (op === 'set') await cache.set(key, JSON.parse(value!))
  else if (op === 'setStream') await cache.setStream(key, [Buffer.from(JSON.parse(value!) as string)])
  else if (op === 'delete') await cache.delete(key)
  else if (op === 'clear') await cache.clear()
  else throw new Error(`unknown op ${op}`)
  await cache.close()
} else {
  process.on('message', (raw) => {
    const m = raw as Record<string, unknown>
    if (m.op === 'exit') {
      void Promise.all([...caches.values()].map((c) => c.close())).finally(() => process.exit(0))
      return
    }
    handle(m).then(
      (result) => process.send!({ id: m.id, ok: true, result }),
      (error: unknown) => {
        const e = error as { message?: string; code?: string; name?: string; stack?: string }
        process.send!({ id: m.id, ok: false, error: { message: e.stack ?? e.message ?? String(error), code: e.code, name: e.name } })
      },
    )
  })
  process.on('disconnect', () => process.exit(0))
  process.send!({ type: 'ready' })
}
