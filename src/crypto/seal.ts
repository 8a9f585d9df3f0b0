/**
 * Encryption of entry payloads (header flag SEALED, format v2): AES-256-GCM from node:crypto,
 * after compression (ciphertext does not compress), before the checksum (which stays over the
 * stored bytes, so `verify` and maintenance need no key).
 *
 * A buffered entry's payload is one sealed box: ciphertext · 16-byte tag, under a fresh random
 * 96-bit nonce kept in the header. Its authenticated data is every byte before the payload
 * (magic, version, codec, compression, flags, times, the namespace id, the key fingerprint, the
 * nonce, key and tags) and the trailer's fields (lengths, grace), so a header edited and
 * re-checksummed, or an entry moved to another key's name or namespace, fails authentication.
 *
 * A streamed entry is sealed frame by frame (bounded memory): frame i is encrypted under the
 * header's random base nonce with i XORed into its last four bytes (unique per frame, and
 * across entries as unlikely to collide as two random nonces), and its authenticated data is
 * the head, the frame's own header, i and whether it is the last frame. Frames reordered,
 * dropped, repeated or cut off after any frame but the last fail authentication; an empty
 * stream is one empty sealed frame, so even "no frames at all" cannot be forged.
 */
import { createCipheriv, createDecipheriv, randomBytes, type KeyObject } from 'node:crypto'
import { CorruptEntryError, NONCE_BYTES } from '../format/entry-format.js'

export const TAG_BYTES = 16
const CIPHER = 'aes-256-gcm'

/**
 * An entry that cannot be opened with the keys at hand: a 'key' problem, not bit rot (the
 * checksum passed or was not yet reached). `missing`: the entry names a key this cache does
 * not hold (rotation in progress elsewhere, say), so it is a miss but stays on disk; otherwise
 * authentication failed under a key we hold (tampered, or moved): it is removed like any
 * corrupt entry.
 */
export class KeyError extends CorruptEntryError {
  readonly missing: boolean
  /** An entry not sealed at all, read by a cache that seals every entry (not `missing`). */
  readonly unsealed: boolean

  constructor(missing: boolean, ino?: number, unsealed = false) {
    super(
      missing
        ? 'sealed under a key this cache does not hold'
        : unsealed
          ? 'not sealed, in a cache that seals every entry (planted, or written before encryption was on)'
          : 'authentication failed (tampered, moved or wrong key)',
      ino,
    )
    this.missing = missing
    this.unsealed = unsealed
  }

  override of(ino: number): KeyError {
    return this.ino === ino ? this : new KeyError(this.missing, ino, this.unsealed)
  }
}

/** What a `corrupt` event says of a judgement: reason 'key' (with the detail) for a KeyError,
 *  else the judgement's own words. */
export function reportedReason(error: CorruptEntryError): { reason: string; detail?: string } {
  if (error instanceof KeyError)
    return { reason: 'key', detail: error.missing ? 'missing key' : error.unsealed ? 'not sealed' : 'authentication failed' }
  return { reason: error.message }
}

export function freshNonce(): Buffer {
  return randomBytes(NONCE_BYTES)
}

/** What a payload is authenticated with: one buffer, or several taken in order as one (a
 *  buffered entry's head and trailer fields, passed as the views they are in the file rather
 *  than joined: on a 1 KiB get the join's copies were a tenth of what encryption added). */
export type AuthenticatedData = Buffer | readonly Buffer[]

function authenticate(cipher: { setAAD(data: Buffer): unknown }, aad: AuthenticatedData): void {
  if (Buffer.isBuffer(aad)) cipher.setAAD(aad)
  else for (const part of aad) cipher.setAAD(part) // GCM takes its AAD in parts, as one
}

/** `plain` encrypted and authenticated with `aad`: ciphertext · tag. */
export function seal(key: KeyObject, nonce: Buffer, aad: AuthenticatedData, plain: Buffer): Buffer {
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES })
  authenticate(cipher, aad)
  const out = Buffer.allocUnsafe(plain.length + TAG_BYTES)
  let at = cipher.update(plain).copy(out, 0)
  at += cipher.final().copy(out, at)
  cipher.getAuthTag().copy(out, at)
  return out
}

/** The plain bytes of `sealed` (ciphertext · tag), or a KeyError if it fails authentication. */
export function open(key: KeyObject, nonce: Buffer, aad: AuthenticatedData, sealed: Buffer): Buffer {
  if (sealed.length < TAG_BYTES) throw new CorruptEntryError('sealed payload shorter than its tag')
  const end = sealed.length - TAG_BYTES
  const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES })
  authenticate(decipher, aad)
  decipher.setAuthTag(sealed.subarray(end))
  const first = decipher.update(sealed.subarray(0, end))
  let last: Buffer
  try {
    last = decipher.final()
  } catch {
    throw new KeyError(false)
  }
  return last.length === 0 ? first : Buffer.concat([first, last])
}

/** The nonce of frame `index`: the base nonce with the index XORed into its last 4 bytes. */
function frameNonce(base: Buffer, index: number): Buffer {
  const nonce = Buffer.from(base)
  nonce.writeUInt32BE((nonce.readUInt32BE(NONCE_BYTES - 4) ^ index) >>> 0, NONCE_BYTES - 4)
  return nonce
}

/** What frame `index` is authenticated with: the entry's head, the frame header, the index and
 *  whether it is the last frame. */
function frameAad(head: Buffer, frameHeader: Buffer, index: number, last: boolean): Buffer {
  const aad = Buffer.allocUnsafe(head.length + frameHeader.length + 5)
  head.copy(aad, 0)
  frameHeader.copy(aad, head.length)
  aad.writeUInt32LE(index, head.length + frameHeader.length)
  aad[aad.length - 1] = last ? 1 : 0
  return aad
}

/** The frames of one streamed entry, sealed (writer) or opened (reader) in order: frame i
 *  under the base nonce with i mixed in, authenticated with the head, its header, i and
 *  whether it is the last. */
export class FrameCipher {
  #index = 0
  readonly #key: KeyObject
  readonly #nonce: Buffer
  readonly #head: Buffer

  constructor(key: KeyObject, nonce: Buffer, head: Buffer) {
    this.#key = key
    this.#nonce = nonce
    this.#head = head
  }

  /** Frames sealed or opened so far. */
  get count(): number {
    return this.#index
  }

  /** A frame ([header, stored], frames.ts) sealed: its header's stored length grows by the
   *  tag, then header · ciphertext · tag. */
  seal(frame: Buffer[], last: boolean): Buffer[] {
    const [header, stored] = frame as [Buffer, Buffer]
    header.writeUInt32LE(stored.length + TAG_BYTES, 4)
    const index = this.#index++
    return [header, seal(this.#key, frameNonce(this.#nonce, index), frameAad(this.#head, header, index, last), stored)]
  }

  /** The stored bytes (compressed or raw) of the next frame, `sealed` being ciphertext · tag. */
  open(header: Buffer, sealed: Buffer, last: boolean): Buffer {
    const index = this.#index++
    return open(this.#key, frameNonce(this.#nonce, index), frameAad(this.#head, header, index, last), sealed)
  }
}
