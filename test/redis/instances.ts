/**
 * Several instances of one test, side by side (two hosts sharing Redis, most often).
 */
import { Larder, type LarderOptions } from '../../src/index.ts'

/** Opens one cache per options (in order), runs `use` with them, and closes every one opened
 *  however `use` ends. */
export async function withCaches<const O extends readonly LarderOptions[], T>(
  options: O,
  use: (caches: { [K in keyof O]: Larder }) => Promise<T>,
): Promise<T> {
  const caches: Larder[] = []
  try {
    for (const each of options) caches.push(await Larder.open(each))
    return await use(caches as { [K in keyof O]: Larder })
  } finally {
    for (const cache of caches) await cache.close()
  }
}
