// bentocache with only its file driver as an L2 layer (no memory L1), as bentocache.dev's
// "File" driver section configures it: bentostore().useL2Layer(fileDriver({ directory })).
// The periodic cleaner worker is off (pruneInterval: false, the default); W7 calls the
// driver's prune() by hand. Keys with ':' become nested directories; each file is
// JSON [value, expiresAt], written in place with writeFile (no temp + rename), so it makes
// no claim of multi-process safety.
let lib

export const bentocache = {
  name: 'bentocache',
  packageName: 'bentocache',
  layout: 'one JSON file per key, keys split on ":" into nested directories, written in place',
  streams: false,
  multiProcess: false,
  prune: true,
  async prepare() {
    lib = { ...(await import('bentocache')), ...(await import('bentocache/drivers/file')) }
  },
  async open(dir) {
    const { BentoCache, bentostore, fileDriver, FileDriver } = lib
    const bento = new BentoCache({
      default: 'file',
      stores: { file: bentostore().useL2Layer(fileDriver({ directory: dir, pruneInterval: false })) },
    })
    return {
      set: (key, value, ttl) => bento.set({ key, value, ...(ttl ? { ttl } : {}) }),
      get: (key) => bento.get({ key }),
      // The facade has no prune(); the driver's is what its cleaner worker runs: it reads every
      // file under the directory and deletes the expired ones. A driver on the same directory
      // reaches the same files.
      prune: () => new FileDriver({ directory: dir, pruneInterval: false }).prune(),
      close: () => bento.disconnectAll(),
    }
  },
}
