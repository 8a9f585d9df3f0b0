/**
 * An instance for refresh-ahead across processes (test/refresh-ahead.test.ts). Sends
 * `{ type: 'ready' }`, then answers: open, set, get, refreshingGet (getOrSet with `refreshAhead`
 * whose loader, counted in `loads`, announces `{ type: 'loading' }` and waits for `release`),
 * release, refreshed (the next `refresh` event's outcome), stats, close.
 */
import { Larder, type LarderOptions } from '../../src/index.ts'
import { serveRequests } from './rpc.ts'

let cache: Larder | undefined
let loads = 0
let release: (() => void) | undefined
let released = new Promise<void>((resolve) => (release = resolve))
const outcomes: string[] = []
let heard: (() => void) | undefined

function open(): Larder {
  if (cache === undefined) throw new Error('not open')
  return cache
}

async function handle(m: Record<string, unknown>): Promise<unknown> {
  switch (m.op) {
    case 'open':
      cache = await Larder.open(m.options as LarderOptions)
      cache.on('refresh', ({ outcome }) => {
        outcomes.push(outcome)
        heard?.()
      })
      return true
    case 'set':
      await open().set(m.key as string, m.value, m.options as object | undefined)
      return true
    case 'get':
      return { value: await open().get(m.key as string) }
    case 'refreshingGet': {
      const value = await open().getOrSet(
        m.key as string,
        async () => {
          loads++
          process.send!({ type: 'loading' })
          await released
          return m.value
        },
        { ttl: m.ttl as number, refreshAhead: m.refreshAhead as number },
      )
      return { value, loads }
    }
    case 'release':
      release!()
      released = new Promise<void>((resolve) => (release = resolve))
      return true
    case 'refreshed':
      if (outcomes.length === 0) await new Promise<void>((resolve) => (heard = resolve))
      return { outcome: outcomes.shift(), loads }
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
