// node-persist as its README's API section shows: create({ dir }) then `await init()`, and
// setItem / getItem. Defaults kept, including the write queue (a per-file queue flushed as
// soon as possible and every second), which its README says "would not properly work in
// multi-process setting". One JSON file per key, named by sha256 of the key, written in place.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const nodePersist = {
  name: 'node-persist',
  packageName: 'node-persist',
  layout: 'one JSON file per key (sha256 name), one directory, written in place',
  streams: false,
  multiProcess: false,
  prune: false,
  prepare: async () => void require('node-persist'),
  async open(dir) {
    const storage = require('node-persist').create({ dir })
    await storage.init()
    return {
      set: (key, value) => storage.setItem(key, value),
      get: (key) => storage.getItem(key),
      close: async () => {
        storage.stopExpiredKeysInterval?.()
        storage.stopWriteQueueInterval?.()
      },
    }
  },
}
