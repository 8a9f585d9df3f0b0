/**
 * A process that uses larder through Keyv (and cache-manager on top): `write DIR` stores
 * values, `read DIR` reads them back and says whether cache-manager's wrap had to compute.
 */
import Keyv from 'keyv'
import { createCache } from 'cache-manager'
import { KeyvLarder } from 'larder/keyv'
import { report } from '../processes.ts'

const [action, dir] = process.argv.slice(2) as [string, string]
const keyv = new Keyv({ store: new KeyvLarder({ dir }), namespace: 'app' })
const manager = createCache({ stores: [new Keyv({ store: new KeyvLarder({ dir }), namespace: 'manager' })] })
let computed = 0
const compute = (): Promise<{ report: string }> => {
  computed++
  return Promise.resolve({ report: `computed by ${process.pid}` })
}

if (action === 'write') {
  await keyv.set('user:1', { name: 'Ada', at: 'child' }, 60_000)
  await keyv.set('forever', [1, 2, 3])
  await manager.wrap('report', compute, 60_000)
  report({ computed })
} else {
  report({
    user: (await keyv.get<unknown>('user:1')) ?? null,
    forever: (await keyv.get<unknown>('forever')) ?? null,
    parent: (await keyv.get<unknown>('from-parent')) ?? null,
    wrapped: await manager.wrap('report', compute, 60_000),
    computed,
  })
}
await keyv.disconnect()
await manager.disconnect()
