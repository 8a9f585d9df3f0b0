import fs from 'node:fs'
import path from 'node:path'
import { decodeHead, FLAG_SEALED } from '../format/entry-format.js'
import { READ_FLAGS } from '../store/disk.js'

/** Entry files whose heads are read before the answer is "no sealed entry seen". */
const SAMPLE = 16
/** Bytes of each file read: the fixed header and more than most keys and tags. */
const HEAD_BYTES = 4096

/**
 * Whether the namespace at `namespaceDir` holds sealed (encrypted) entries, judged from the
 * heads of the first few entry files found: a CLI command run without the keys must not write
 * plaintext into a cache whose application seals its entries (the application would take
 * each such entry for a forgery and remove it: the value lost, and stored unencrypted in
 * between), nor report a removal it could not make. Read-only: regular files only (O_NOFOLLOW,
 * O_NONBLOCK), anything unreadable skipped.
 */
export function holdsSealedEntries(namespaceDir: string): boolean {
  let seen = 0
  for (const partition of list(namespaceDir).filter((name) => /^[0-9a-f]{2}$/.test(name))) {
    // Never through a link planted in a partition's place (nothing below the cache is followed).
    if (fs.lstatSync(path.join(namespaceDir, partition), { throwIfNoEntry: false })?.isDirectory() !== true) continue
    for (const name of list(path.join(namespaceDir, partition))) {
      if (name.endsWith('.tmp')) continue
      const flags = headFlags(path.join(namespaceDir, partition, name))
      if (flags === undefined) continue
      if ((flags & FLAG_SEALED) !== 0) return true
      if (++seen >= SAMPLE) return false
    }
  }
  return false
}

function list(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort()
  } catch {
    return []
  }
}

function headFlags(file: string): number | undefined {
  let fd: number
  try {
    fd = fs.openSync(file, READ_FLAGS)
  } catch {
    return undefined
  }
  try {
    const stat = fs.fstatSync(fd)
    if (!stat.isFile()) return undefined
    const bytes = Buffer.alloc(Math.min(HEAD_BYTES, stat.size))
    const read = fs.readSync(fd, bytes, 0, bytes.length, 0)
    return decodeHead(bytes.subarray(0, read), stat.size)?.flags
  } catch {
    return undefined // not an entry (or one whose head is longer than read: skipped)
  } finally {
    fs.closeSync(fd)
  }
}
