// unstorage with its Node file-system driver, as its docs show:
// createStorage({ driver: fsDriver({ base }) }). setItem JSON-encodes objects and getItem
// parses them back. Keys map onto paths (':' → '/'); files are written in place.
let lib

export const unstorage = {
  name: 'unstorage',
  packageName: 'unstorage',
  layout: 'one file per key, keys split on ":" into nested directories, written in place',
  streams: false,
  multiProcess: false,
  prune: false,
  async prepare() {
    lib = { createStorage: (await import('unstorage')).createStorage, fsDriver: (await import('unstorage/drivers/fs')).default }
  },
  async open(dir) {
    const { createStorage, fsDriver } = lib
    const storage = createStorage({ driver: fsDriver({ base: dir }) })
    return {
      set: (key, value) => storage.setItem(key, value),
      // unstorage answers a miss with null
      get: async (key) => (await storage.getItem(key)) ?? undefined,
      close: () => storage.dispose(),
    }
  },
}
