// cacache as its README shows it: put(cache, key, data) / get(cache, key) → { data }, and
// put.stream / get.stream. It stores bytes, so values are JSON-encoded by the caller, as an
// application would. Its docs describe concurrent access by many processes as safe
// (content-addressed files, an append-only index, atomic moves).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const cacache = {
  name: 'cacache',
  packageName: 'cacache',
  layout: 'content-addressed (sha512) files + append-only index buckets',
  streams: true,
  multiProcess: true,
  prune: true,
  prepare: async () => void require('cacache'),
  async open(dir) {
    const cacache = require('cacache')
    return {
      set: (key, value) => cacache.put(dir, key, JSON.stringify(value)),
      async get(key) {
        let entry
        try {
          entry = await cacache.get(dir, key)
        } catch (error) {
          if (error.code === 'ENOENT') return undefined // cacache's miss
          throw error
        }
        return JSON.parse(entry.data.toString('utf8'))
      },
      async setStream(key, source) {
        const sink = cacache.put.stream(dir, key)
        const done = new Promise((resolve, reject) => {
          sink.on('integrity', resolve)
          sink.on('error', reject)
        })
        for await (const chunk of source) {
          if (!sink.write(chunk)) await new Promise((resolve) => sink.once('drain', resolve))
        }
        sink.end()
        await done
      },
      getStream: async (key) => cacache.get.stream(dir, key),
      // cacache's clean-up is verify(): it checks every content file's sha512, rebuilds the
      // index and garbage-collects content no entry points to. Its `filter` option drops index
      // entries, which is how a caller evicts with it.
      prune: ({ keep }) => cacache.verify(dir, { filter: keep }),
      close: async () => {},
    }
  },
}
