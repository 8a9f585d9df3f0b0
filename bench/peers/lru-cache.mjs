// lru-cache, the in-memory reference for larder's memory tier (which is built on it). Not
// persistent: it only takes part in the memory-tier row. Its get is synchronous; the case
// awaits every get of every implementation alike, as async application code would.
let LRUCache

export const lruCache = {
  name: 'lru-cache',
  packageName: 'lru-cache',
  layout: 'in-process memory only',
  streams: false,
  multiProcess: false,
  prune: false,
  memoryOnly: true,
  async prepare() {
    ;({ LRUCache } = await import('lru-cache'))
  },
  async open() {
    const cache = new LRUCache({ max: 10_000 })
    return {
      set: (key, value) => void cache.set(key, value),
      get: (key) => cache.get(key),
      close: async () => {},
    }
  },
}
