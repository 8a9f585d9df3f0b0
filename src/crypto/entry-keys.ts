/**
 * What an entry's v2 header says about where it belongs and which key opens it, judged
 * against this cache: its namespace id, and its key fingerprint against the keyring.
 */
import type { KeyObject } from 'node:crypto'
import { hasher } from '../format/checksum.js'
import { CorruptEntryError, FLAG_SEALED, type EntryHead } from '../format/entry-format.js'
import { keyByFingerprint, type Keyring } from './keys.js'
import { KeyError } from './seal.js'

const ids = new Map<string, bigint>()

/** A namespace's id in v2 headers: xxhash64 (seed 0) of its name's UTF-8 (memoized). */
export function namespaceIdOf(namespace: string): bigint {
  let id = ids.get(namespace)
  if (id === undefined) {
    id = hasher().h64Raw(Buffer.from(namespace), 0n)
    if (ids.size < 1024) ids.set(namespace, id)
  }
  return id
}

/** Throws CorruptEntryError when a v2 entry names another namespace (copied or moved here
 *  from another namespace's directory). v1 entries name none and are not judged. */
export function checkNamespace(head: EntryHead, namespace: string): void {
  if (head.namespaceId !== undefined && head.namespaceId !== namespaceIdOf(namespace)) {
    throw new CorruptEntryError('an entry of another namespace (copied or moved here)')
  }
}

/** The key that opens a sealed entry, undefined for an entry that is not sealed in a cache
 *  without keys; a KeyError when this cache does not hold the key it names (missing), or seals
 *  every entry and this one is not sealed: anyone who can write the directory or Redis could
 *  plant such an entry, or clear a sealed one's flag (its checksum is no secret), and it would
 *  be served as it is. Only `rekey`'s `sealPlain` takes one (what was written before encryption
 *  was turned on). */
export function keyOf(head: EntryHead, keyring: Keyring | undefined, sealPlain = false): KeyObject | undefined {
  if ((head.flags & FLAG_SEALED) === 0) {
    if (keyring !== undefined && !sealPlain) throw new KeyError(false, undefined, true)
    return undefined
  }
  const key = keyring && keyByFingerprint(keyring, head.keyId!)
  if (key === undefined) throw new KeyError(true)
  return key
}
