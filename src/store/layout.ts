import path from 'node:path'
import { hasher } from '../format/checksum.js'
import { FORMAT_VERSION } from '../format/entry-format.js'

/**
 * Where things live on disk:
 *
 *   <dir>/CACHEDIR.TAG                      marks the tree as a cache for backup tools
 *   <dir>/v1/                               the format version: a new format gets a new tree
 *   <dir>/v1/<ns>/                          one namespace ("default", or "ns-<xxhash64>")
 *   <dir>/v1/<ns>/<pp>/<hash>               an entry: hash = xxhash64(key) as 16 hex digits,
 *                                           pp = its first two digits (256 partitions)
 *   <dir>/v1/<ns>/<pp>/<hash>.<suffix>      a temp file being written (stray if its writer died)
 *   <dir>/v1/<ns>/tags/<xxhash64(tag)>      when a tag was last invalidated
 *   <dir>/v1/<ns>/meta/totals/              running totals: a base from the last scan plus one
 *                                           delta file per writing process (maintenance/totals.ts)
 *   <dir>/v1/<ns>/meta/hits/                hit-count logs for LFU (maintenance/hit-log.ts)
 *   <dir>/v1/<ns>/meta/maintenance.lock     held by the one process pruning (proper-lockfile)
 *
 * Keys never appear in paths (only their hashes), so no key can escape the directory or
 * collide with a name the file system treats specially. The key is stored inside the entry
 * and compared on read, so a hash collision reads as a miss, never as another key's value.
 *
 * Why one level of 256 partitions: creating a file costs 0.2–0.8 ms of kernel time here and
 * each new leaf directory as much again, so a 256×256 tree pays a mkdir for most of its
 * first 65,536 writes; 256 directories are all created within the first few thousand writes
 * and ext4's hashed directories stay fast to millions of entries (4,000 per partition).
 * Partitions are created when first written (a write that meets ENOENT makes its partition
 * and retries), so opening a cache costs no mkdirs.
 */
export const ENTRY_NAME = /^[0-9a-f]{16}$/
/** A partition directory's name. */
export const PARTITION_NAME = /^[0-9a-f]{2}$/
/** A temp file: write-file-atomic's `<hash>.<digits>` or our stream writer's `<hash>.<pid>-<n>.tmp`. */
export const TEMP_NAME = /^[0-9a-f]{16}\.[0-9]+(-[0-9]+\.tmp)?$/

/**
 * How a key becomes a file name: xxhash64, 16 hex digits. An object rather than a function so
 * that tests can replace `hash` to force two keys onto one name (a 64-bit collision cannot be
 * found on demand). Internal: not exported from the package.
 */
export const keyNames = {
  hash: (key: string): string => hasher().h64ToString(key),
}

export class Layout {
  readonly root: string
  readonly namespaceDir: string
  readonly tagsDir: string
  readonly metaDir: string
  readonly totalsDir: string
  readonly hitsDir: string
  readonly activityDir: string

  constructor(root: string, namespace: string) {
    this.root = root
    const ns = namespace === '' ? 'default' : 'ns-' + hasher().h64ToString(namespace)
    this.namespaceDir = path.join(root, `v${FORMAT_VERSION}`, ns)
    this.tagsDir = path.join(this.namespaceDir, 'tags')
    this.metaDir = path.join(this.namespaceDir, 'meta')
    this.totalsDir = path.join(this.metaDir, 'totals')
    this.hitsDir = path.join(this.metaDir, 'hits')
    this.activityDir = path.join(this.metaDir, 'activity')
  }

  /** 16 hex digits of xxhash64 of the key (see `keyNames`). */
  hashKey(key: string): string {
    return keyNames.hash(key)
  }

  entryPath(hash: string): string {
    return this.namespaceDir + path.sep + hash.slice(0, 2) + path.sep + hash
  }

  tagPath(tag: string): string {
    return this.tagsDir + path.sep + hasher().h64ToString(tag)
  }
}

export const CACHEDIR_TAG = `Signature: 8a477f597d28d172789f06886806bc55
# This file is a cache directory tag created by larder.
# For information about cache directory tags, see https://bford.info/cachedir/
`
