// larder with its defaults: JSON serializer, deflate level 1 from 4 KiB, no memory tier unless a
// case asks for one. run.mjs passes a snapshot of the build (`larderModule`), so a rebuild
// during a long run changes nothing.
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

let Larder

export const larder = {
  name: 'larder',
  packageName: null, // version comes from the build being measured, see run.mjs
  layout: 'file per entry (hashed, 256 partitions), checksummed, atomic rename',
  streams: true,
  multiProcess: true,
  prune: true,
  async prepare({ larderModule } = {}) {
    ;({ Larder } = await import(larderModule ?? path.join(root, 'dist', 'index.js')))
  },
  async open(dir, { larderOptions } = {}) {
    const cache = await Larder.open({ dir, ...larderOptions })
    return {
      set: (key, value) => cache.set(key, value),
      get: (key) => cache.get(key),
      setStream: (key, source) => cache.setStream(key, source),
      getStream: (key) => cache.getStream(key),
      prune: ({ maxEntries }) => cache.prune({ maxEntries }),
      // larder fails open: a write the disk refused is dropped, not thrown. A dropped write
      // would make a set look fast, so any drop or disk error fails the case.
      async check() {
        const { dropped, errors, corrupt } = await cache.stats()
        if (dropped || errors || corrupt) throw new Error(`larder reported dropped=${dropped} errors=${errors} corrupt=${corrupt}`)
      },
      stats: () => cache.stats(),
      close: () => cache.close(),
    }
  },
}
