// flat-cache v6 as its README starts: create({ cacheId, cacheDir }) loads the file if present,
// setKey / getKey work in memory, save() writes the whole cache to one file. The case calls
// save() (flush) inside its timed part: a value is only stored once it is on disk.
let create

export const flatCache = {
  name: 'flat-cache',
  packageName: 'flat-cache',
  layout: 'whole cache in one file (flatted JSON), loaded into memory, saved explicitly',
  streams: false,
  multiProcess: false,
  prune: false,
  async prepare() {
    ;({ create } = await import('flat-cache'))
  },
  async open(dir) {
    const cache = create({ cacheId: 'bench', cacheDir: dir })
    return {
      set: (key, value) => cache.setKey(key, value),
      get: (key) => cache.getKey(key),
      flush: async () => cache.save(),
      close: async () => {},
    }
  },
}
