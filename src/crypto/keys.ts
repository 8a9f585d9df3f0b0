/**
 * The encryption keys of a cache (`encryption` option, `LARDER_ENCRYPTION_KEYS`): validated
 * once, held as node:crypto KeyObjects inside a Keyring whose key material no printing,
 * logging or JSON path can reach. An entry names its key by a fingerprint of the key's id
 * (xxhash64 of the id), never by the id itself nor anything derived from the key.
 */
import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto'
import { inspect } from 'node:util'
import { LarderError } from '../errors.js'

/** The `encryption` option as the caller gives it. */
export interface EncryptionOptions {
  /** Key id → key: 32 bytes, as a Buffer/Uint8Array, or a string of 64 hex digits or of
   *  base64 (standard or URL-safe alphabet) that decodes to exactly 32 bytes. */
  keys: Record<string, string | Uint8Array>
  /** The id (one of `keys`) new entries are encrypted under; may be left out when `keys`
   *  holds one key (that one). */
  activeKey?: string
}

export const KEY_BYTES = 32
/** Key ids: short names safe in `id:key,id:key` lists and in messages. */
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/
const HEX_KEY = /^[0-9a-fA-F]{64}$/
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/

/** Whether an id has a key's shape (64 hex digits, or 43 base64url characters: both pass
 *  KEY_ID): a key written where its id belongs (`key:id`, `{ [key]: id }`) is refused before
 *  any message, field name or listing of ids could show it. */
export function keyShaped(id: string): boolean {
  return HEX_KEY.test(id) || BASE64_KEY.test(id)
}

/** What a worker thread needs to rebuild a Keyring (KeyObjects cross threads by cloning). */
export interface KeyringData {
  keys: Array<[id: string, key: KeyObject]>
  activeKey: string
}

/** Each Keyring's keys, kept off the object itself: see Keyring. */
const secrets = new WeakMap<Keyring, { keys: { id: string; key: KeyObject }[]; byId: Map<bigint, { id: string; key: KeyObject }> }>()

/**
 * The keys of one cache, as `cache.options.encryption` shows them: the key ids and the active
 * id. Nothing reachable from the object hands out a key (no method, getter or field: the keys
 * are held apart, in a WeakMap of this module), so a caller who walks or calls what the options
 * hold (a logger, a deep clone, a debugger's REPL) meets key ids only; larder's own code takes a
 * key with `keyByFingerprint`, `activeKeyOf` and `keyringData`, which the package does not export.
 */
export class Keyring {
  readonly activeKey: string
  /** Fingerprint (entry header) of the active key. */
  readonly activeId: bigint

  constructor(data: KeyringData) {
    const keys = data.keys.map(([id, key]) => ({ id, key }))
    /** Each key by its fingerprint, and by the one of its id alone that entries written
     *  before carry (see keyFingerprint). */
    const byId = new Map<bigint, { id: string; key: KeyObject }>()
    for (const k of keys) byId.set(idFingerprint(k.id), k)
    for (const k of keys) byId.set(keyFingerprint(k.id, k.key), k)
    secrets.set(this, { keys, byId })
    this.activeKey = data.activeKey
    this.activeId = keyFingerprint(data.activeKey, keys.find((k) => k.id === data.activeKey)!.key)
  }

  /** The key ids, never the keys. */
  get ids(): string[] {
    return secretsOf(this).keys.map((k) => k.id)
  }

  /** What tells two keyrings apart (configure() compares them): each id with a digest of its
   *  key's bytes, never the bytes. A secret still: never shown. */
  identity(): string[] {
    return secretsOf(this)
      .keys.map((k) => `${k.id}:${createHash('sha256').update('larder keyring identity\0').update(k.key.export()).digest('hex')}`)
      .sort()
  }

  toJSON(): { keys: string[]; activeKey: string } {
    return { keys: this.ids, activeKey: this.activeKey }
  }

  [inspect.custom](): string {
    return `Keyring { keys: ${JSON.stringify(this.ids)}, activeKey: ${JSON.stringify(this.activeKey)} }`
  }
}

function secretsOf(keyring: Keyring): NonNullable<ReturnType<typeof secrets.get>> {
  return secrets.get(keyring)!
}

/** The key an entry's header names, or undefined when this cache does not hold it. */
export function keyByFingerprint(keyring: Keyring, fingerprint: bigint): KeyObject | undefined {
  return secretsOf(keyring).byId.get(fingerprint)?.key
}

/** The key new entries are sealed under. */
export function activeKeyOf(keyring: Keyring): KeyObject {
  return keyByFingerprint(keyring, keyring.activeId)!
}

/** For a worker thread (structured clone; never logged). */
export function keyringData(keyring: Keyring): KeyringData {
  return { keys: secretsOf(keyring).keys.map((k) => [k.id, k.key]), activeKey: keyring.activeKey }
}

/** The 8 bytes an entry header stores to name its key: the first 8 bytes of HMAC-SHA256, under
 *  the key, of its id. Two keys under one id (a role name such as `current`, mid-rotation)
 *  name themselves apart, so a reader holding the other one reads "missing key" and leaves the
 *  entry, where a fingerprint of the id alone made the read fail authentication and remove an
 *  entry its writer could read. Nothing of the key can be learnt from it. */
export function keyFingerprint(id: string, key: KeyObject): bigint {
  return createHmac('sha256', key).update('larder key fingerprint\0').update(id).digest().readBigUInt64LE(0)
}

/** What entries written before keyFingerprint name their key with: the first 8 bytes of
 *  sha256 of its id alone. Still read; rekey rewrites them under keyFingerprint. */
function idFingerprint(id: string): bigint {
  return createHash('sha256').update(id).digest().readBigUInt64LE(0)
}

/**
 * Validates the `encryption` option. Every message names the field (`encryption.keys.<id>`)
 * and says what is wrong with the value's shape, never the value.
 */
export function resolveEncryption(input: unknown, field = 'encryption'): Keyring | undefined {
  if (input === undefined) return undefined
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw invalid(field, 'expected { keys, activeKey }')
  const o = input as Partial<EncryptionOptions>
  for (const name of Object.keys(o)) {
    if (name === 'keys' || name === 'activeKey') continue
    // A key given as a name (`encryption: { [key]: id }`: the `keys` level left out, the pair
    // swapped) is neither put in the message nor in the field, which is logged too.
    if (keyShaped(name))
      throw invalid(field, 'holds an unknown option shaped like a key (is the `keys` level missing, and an id and its key swapped?)')
    throw invalid(`${field}.${name}`, 'unknown option (known: keys, activeKey)')
  }
  const { keys, activeKey } = o
  if (keys === null || typeof keys !== 'object' || Array.isArray(keys) || Object.keys(keys).length === 0) {
    throw invalid(`${field}.keys`, 'expected an object of at least one key id → 32-byte key')
  }
  const parsed: Array<[string, KeyObject]> = []
  for (const [index, [id, key]] of Object.entries(keys).entries()) {
    // Not the id itself: a config written key → id would show the key.
    if (!KEY_ID.test(id) || keyShaped(id))
      throw invalid(
        `${field}.keys`,
        `key id ${index + 1} (${id.length} characters) must be 1-64 of A-Z a-z 0-9 . _ -, and not shaped like a key (64 hex digits, 43 base64 characters: are an id and its key swapped?)`,
      )
    parsed.push([id, createSecretKey(keyBytes(key, `${field}.keys.${id}`))])
  }
  const seen = new Map<bigint, string>()
  for (const [id, key] of parsed) {
    for (const fingerprint of [idFingerprint(id), keyFingerprint(id, key)]) {
      const other = seen.get(fingerprint)
      if (other !== undefined) throw invalid(`${field}.keys`, `key ids ${other} and ${id} have the same fingerprint: rename one`)
      seen.set(fingerprint, id)
    }
  }
  const ids = parsed.map(([id]) => id).join(', ')
  // One key is the active one without being named; of several, which one seals is the
  // caller's to say (an object's key order is not theirs alone: integer-like ids come first).
  if (activeKey === undefined && parsed.length === 1) return new Keyring({ keys: parsed, activeKey: parsed[0]![0] })
  if (activeKey === undefined) throw invalid(`${field}.activeKey`, `required with more than one key: one of the key ids (${ids})`)
  if (typeof activeKey !== 'string' || !Object.hasOwn(keys, activeKey)) {
    throw invalid(`${field}.activeKey`, `expected one of the key ids (${ids})`)
  }
  return new Keyring({ keys: parsed, activeKey })
}

/** A key's 32 bytes from its accepted forms. Nothing of the value is ever put in a message. */
function keyBytes(key: unknown, field: string): Buffer {
  if (key instanceof Uint8Array) {
    if (key.length !== KEY_BYTES) throw invalid(field, `expected ${KEY_BYTES} bytes, got ${key.length}`)
    return Buffer.from(key)
  }
  if (typeof key !== 'string') throw invalid(field, `expected 32 bytes as a Uint8Array, 64 hex digits or base64, got ${typeof key}`)
  const text = key.trim()
  if (HEX_KEY.test(text)) return Buffer.from(text, 'hex')
  if (BASE64_KEY.test(text)) {
    const bytes = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64')
    if (bytes.length === KEY_BYTES) return bytes
  }
  throw invalid(field, `expected 32 bytes as 64 hex digits or base64 (a string of ${text.length} characters is neither)`)
}

/**
 * `LARDER_ENCRYPTION_KEYS` (`id:key,id:key`, keys in hex or base64) and
 * `LARDER_ENCRYPTION_ACTIVE_KEY` (default: the first id listed) as an `encryption` option, or
 * undefined when the variable is unset or empty. Errors name the variable, never a key.
 */
export function keysFromEnv(env: NodeJS.ProcessEnv = process.env): Required<EncryptionOptions> | undefined {
  const list = env.LARDER_ENCRYPTION_KEYS?.trim()
  if (list === undefined || list === '') return undefined
  const keys: Record<string, string> = Object.create(null) as Record<string, string> // an id may be `__proto__`
  let first: string | undefined
  for (const [index, item] of list.split(',').entries()) {
    const colon = item.indexOf(':')
    const id = item.slice(0, colon).trim()
    if (colon <= 0 || !KEY_ID.test(id) || keyShaped(id)) {
      throw invalid(
        'LARDER_ENCRYPTION_KEYS',
        `item ${index + 1} is not id:key (an id of 1-64 of A-Z a-z 0-9 . _ -, not shaped like a key, then the key)`,
      )
    }
    if (Object.hasOwn(keys, id)) throw invalid('LARDER_ENCRYPTION_KEYS', `key id ${id} is listed twice`)
    keys[id] = item.slice(colon + 1).trim()
    keyBytes(keys[id], `LARDER_ENCRYPTION_KEYS (key ${id})`)
    first ??= id
  }
  const active = env.LARDER_ENCRYPTION_ACTIVE_KEY?.trim() || first!
  if (!Object.hasOwn(keys, active)) {
    // Not the value: a key put here in place of its id would be shown.
    throw invalid('LARDER_ENCRYPTION_ACTIVE_KEY', `not a key id of LARDER_ENCRYPTION_KEYS (${Object.keys(keys).join(', ')})`)
  }
  return { keys: { ...keys }, activeKey: active } // a plain object again (spread defines `__proto__` as an own key)
}

function invalid(field: string, message: string): LarderError {
  return new LarderError('ERR_INVALID_OPTION', `Invalid option "${field}": ${message}`, { field })
}
