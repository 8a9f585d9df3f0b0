// Every implementation the benchmark measures, in report column order: larder, its peers, and
// the limits. Each adapter lives in its own file and exposes the same small interface:
//   open(dir, options) → { set(key, value), get(key), setStream?, getStream?, prune?, flush?, check?, close() }
// plus what it claims: `streams`, `multiProcess`, `prune`, `memoryOnly`, `limit`.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { larder } from './larder.mjs'
import { cacache } from './cacache.mjs'
import { bentocache } from './bentocache.mjs'
import { nodePersist } from './node-persist.mjs'
import { unstorage } from './unstorage.mjs'
import { cacheManagerFsHash } from './cache-manager-fs-hash.mjs'
import { keyvFile } from './keyv-file.mjs'
import { flatCache } from './flat-cache.mjs'
import { lruCache } from './lru-cache.mjs'
import { rawFs } from './raw-fs.mjs'
import { rawFsSync } from './raw-fs-sync.mjs'

export const PEERS = [
  larder,
  cacache,
  bentocache,
  nodePersist,
  unstorage,
  cacheManagerFsHash,
  keyvFile,
  flatCache,
  lruCache,
  rawFs,
  rawFsSync,
]

export function peer(name) {
  const found = PEERS.find((p) => p.name === name)
  if (!found) throw new Error(`unknown implementation ${name} (known: ${PEERS.map((p) => p.name).join(', ')})`)
  return found
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Installed versions, read from node_modules (what actually ran, not the range in package.json). */
export function installedVersions() {
  const version = (name) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')).version
    } catch {
      return 'not installed'
    }
  }
  const versions = {}
  for (const p of PEERS) {
    for (const name of [p.packageName, ...(p.versionOf ?? [])]) if (name) versions[name] = version(name)
  }
  versions['xxhash-wasm'] = version('xxhash-wasm')
  return versions
}
