// cache-manager-fs-hash's DiskStore used directly, as the first example of its README:
// new DiskStore({ path }) with get/set. Defaults: md5-hashed file names in subdirectories, no
// zip. Every set and get takes a `.lock` file (the lockfile package), which is why its README
// says it "works well with the cluster module": it claims multi-process safety.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const cacheManagerFsHash = {
  name: 'cache-manager-fs-hash',
  packageName: 'cache-manager-fs-hash',
  layout: 'one JSON file per key (md5 name, subdirectories), lock file per operation',
  streams: false,
  multiProcess: true,
  prune: false,
  prepare: async () => void require('cache-manager-fs-hash'),
  async open(dir) {
    const { DiskStore } = require('cache-manager-fs-hash')
    const store = new DiskStore({ path: dir })
    return {
      set: (key, value) => store.set(key, value),
      get: (key) => store.get(key),
      close: async () => {},
    }
  },
}
