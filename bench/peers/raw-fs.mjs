// The raw file-system limit in larder's own layout: <dir>/v1/default/<2 hex>/<16 hex>, 256
// partition directories made up front, writeFile to a temp name then rename; readFile whole.
// No header, no checksum, no compression: it bounds what any file-per-entry cache can do with
// async fs calls. (larder uses synchronous syscalls for small files, so it can beat this
// "limit" at 1 in flight.)
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'

/** larder's layout with its 256 partitions made up front: the file of a key and a temp name
 *  beside it. Shared by both raw limits (async here, synchronous in raw-fs-sync.mjs). */
export async function rawLayout(dir) {
  const base = path.join(dir, 'v1', 'default')
  await Promise.all(Array.from({ length: 256 }, (_, i) => fsp.mkdir(path.join(base, i.toString(16).padStart(2, '0')), { recursive: true })))
  const file = (key) => {
    const hash = crypto.createHash('md5').update(key).digest('hex')
    return base + path.sep + hash.slice(0, 2) + path.sep + hash.slice(0, 16)
  }
  let temps = 0
  const tempFor = (final) => `${final}.${process.pid}-${++temps}.tmp`
  return { file, tempFor }
}

export const rawFs = {
  name: 'raw-fs',
  packageName: null,
  layout: 'limit: writeFile(temp) + rename into 256 partitions / readFile',
  streams: true,
  multiProcess: true,
  prune: true,
  limit: true,
  async open(dir) {
    const { file, tempFor } = await rawLayout(dir)
    return {
      async set(key, value) {
        const final = file(key)
        const temp = tempFor(final)
        await fsp.writeFile(temp, JSON.stringify(value))
        await fsp.rename(temp, final)
      },
      async get(key) {
        let text
        try {
          text = await fsp.readFile(file(key), 'utf8')
        } catch (error) {
          if (error.code === 'ENOENT') return undefined
          throw error
        }
        return JSON.parse(text)
      },
      async setStream(key, source) {
        const final = file(key)
        const temp = tempFor(final)
        await pipeline(source, fs.createWriteStream(temp))
        await fsp.rename(temp, final)
      },
      getStream: async (key) => fs.createReadStream(file(key)),
      // The W7 limit: unlink the unwanted half by name, one synchronous call each, knowing
      // every key up front (no scan, no head read, no check against concurrent writers).
      async prune({ keep, keys }) {
        for (const key of keys) if (!keep({ key })) fs.unlinkSync(file(key))
      },
      close: async () => {},
    }
  },
}
