// keyv with the keyv-file adapter: new Keyv({ store: new KeyvFile({ filename }) }). The whole
// cache is one JSON file, held in memory and rewritten at most every `writeDelay` (100 ms).
// keyv-file's README warns that `await kv.set()` waits for that delay and advises not awaiting
// each set; so sets are not awaited one by one, and the case waits for the last save (flush)
// inside its timed part, since a value is only stored once it is on disk. It takes a lock file
// so that one process owns the file: no multi-process use.
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

let Keyv

export const keyvFile = {
  name: 'keyv-file',
  packageName: 'keyv-file',
  versionOf: ['keyv'],
  layout: 'whole cache in one JSON file, loaded into memory, rewritten on change (batched)',
  streams: false,
  multiProcess: false,
  prune: false,
  async prepare() {
    ;({ default: Keyv } = await import('keyv'))
    require('keyv-file')
  },
  async open(dir) {
    const { KeyvFile } = require('keyv-file')
    const file = new KeyvFile({ filename: path.join(dir, 'cache.json') })
    const keyv = new Keyv({ store: file })
    let pending = []
    return {
      set(key, value) {
        pending.push(keyv.set(key, value))
      },
      get: (key) => keyv.get(key),
      async flush() {
        const writes = pending
        pending = []
        await Promise.all(writes)
      },
      close: async () => file.releaseFileLock?.(),
    }
  },
}
