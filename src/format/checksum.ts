import xxhash from 'xxhash-wasm'

/**
 * xxhash64 from `xxhash-wasm`, used for two jobs: naming entry files (the key hash) and
 * checksumming every byte of an entry (and its xxhash32, the check of each record of the
 * change log, store/change-clock.ts). It is a fast non-cryptographic hash: it catches
 * torn writes, bit rot and foreign files, which is what a cache needs; it is not a defence
 * against someone who can write the cache directory.
 */
export type Hasher = Awaited<ReturnType<typeof xxhash>>
export type StreamingHash = ReturnType<Hasher['create64']>

let loading: Promise<Hasher> | undefined
let loaded: Hasher | undefined

/** Compiles the wasm module once per process; every cache instance shares it. */
export async function loadHasher(): Promise<Hasher> {
  loading ??= xxhash().then((h) => (loaded = h))
  return loading
}

/** The hasher, once `loadHasher()` has resolved (`Larder.open` awaits it). */
export function hasher(): Hasher {
  if (loaded === undefined) throw new Error('xxhash-wasm used before loadHasher() resolved')
  return loaded
}

/** xxhash64 (seed 0) of bytes. */
export function checksum(bytes: Uint8Array): bigint {
  return hasher().h64Raw(bytes, 0n)
}

/** xxhash32 (seed 0) of bytes, as an unsigned 32-bit number. */
export function check32(bytes: Uint8Array): number {
  return hasher().h32Raw(bytes, 0) >>> 0
}
