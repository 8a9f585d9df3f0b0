// The synchronous raw limit (issue #14): the same layout as raw-fs, but `readFileSync` +
// `JSON.parse` for a get and `writeFileSync(temp)` + `renameSync` for a set. No header,
// checksum, compression or thread-pool round trip: the floor of a small-entry get on this
// machine, which larder's synchronous small-file path is measured against. A set here never
// overlaps another (16 in flight run one after another), so the async raw-fs stays the limit
// for sets with many in flight.
import fs from 'node:fs'
import { rawLayout } from './raw-fs.mjs'

export const rawFsSync = {
  name: 'raw-fs-sync',
  packageName: null,
  layout: 'limit: writeFileSync(temp) + renameSync into 256 partitions / readFileSync + JSON.parse',
  streams: false,
  multiProcess: false,
  prune: false,
  limit: true,
  async open(dir) {
    const { file, tempFor } = await rawLayout(dir)
    return {
      async set(key, value) {
        const final = file(key)
        const temp = tempFor(final)
        fs.writeFileSync(temp, JSON.stringify(value))
        fs.renameSync(temp, final)
      },
      async get(key) {
        let text
        try {
          text = fs.readFileSync(file(key), 'utf8')
        } catch (error) {
          if (error.code === 'ENOENT') return undefined
          throw error
        }
        return JSON.parse(text)
      },
      close: async () => {},
    }
  },
}
