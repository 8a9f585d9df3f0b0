import { createHash } from 'node:crypto'

/**
 * A larder key (or tag) for a host library's key: the text itself, readable in `larder ls`,
 * when larder takes it (not empty, no NUL, well-formed, at most `maxBytes` of UTF-8); otherwise
 * `prefix` and the SHA-256 of the text. Host keys can be long (TypeORM keys queries by their SQL text, MikroORM by a JSON
 * description, undici by URL) while larder takes keys of at most 8 KiB and tags of 1 KiB.
 *
 * A hashed key loses nothing larder relies on: an adapter whose values must match their
 * host key exactly (undici's responses) stores that key in the value and checks it on read.
 */
export function boundedKey(prefix: string, text: string, maxBytes: number): string {
  const readable = prefix + text
  if (
    readable !== '' &&
    !readable.includes('\0') &&
    readable.isWellFormed() &&
    Buffer.byteLength(readable) <= maxBytes &&
    !looksHashed(text)
  )
    return readable
  return `${prefix}${HASHED}${createHash('sha256').update(text).digest('hex')}`
}

/** How the hashed part of a key begins. */
export const HASHED = 'sha256:'

/** A text that begins as a hash does is hashed too: kept as it is, `sha256:<the hash of a long
 *  key>` was the very key that long one is stored under, and the one read the other's entry. */
export function looksHashed(text: string): boolean {
  return text.startsWith(HASHED)
}

/** Larder's bounds (8 KiB keys, 1 KiB tags), with room to spare. */
export const KEY_BYTES = 4096
export const TAG_BYTES = 1000
