import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

/**
 * Who may do what. A token is presented as `Authorization: Bearer <token>` (turbo, nx, curl,
 * ccache's `bearer-token`) or as the password of HTTP Basic auth (ccache's
 * `http://user:token@host/…`). Write tokens may read and write; read tokens only read.
 *
 * Comparison takes the same time whatever is presented: both sides are hashed to 32 bytes
 * (so lengths leak nothing) and compared with `timingSafeEqual` against every configured
 * token, without stopping at the first match.
 */
export type Access = 'read' | 'write'

/** A token that opens some namespaces only (`--namespace-token NAMESPACE=TOKEN`). */
export interface NamespaceToken {
  namespace: string
  token: string
  access: Access
}

/**
 * What a presented token allows. A server token (`--token`, `--read-token`) opens every
 * namespace and the server-wide routes (metrics, the dashboard's figures) with its access
 * (`server`); a namespace token opens the namespaces it was given for, each with its own
 * access (`namespaces`). One token may be both (a server read token that writes one team).
 */
export interface Grant {
  server?: Access
  namespaces?: ReadonlyMap<string, Access>
}

export class Tokens {
  #write: Buffer[] = []
  #read: Buffer[] = []
  #scoped: { digest: Buffer; namespace: string; access: Access }[] = []

  constructor(write: readonly string[], read: readonly string[], scoped: readonly NamespaceToken[] = []) {
    this.replace(write, read, scoped)
  }

  /** Takes these tokens instead of the ones held (a tokens file reloaded): a request checked
   *  after this sees the new set whole. */
  replace(write: readonly string[], read: readonly string[], scoped: readonly NamespaceToken[] = []): void {
    this.#write = write.map(digest)
    this.#read = read.map(digest)
    this.#scoped = scoped.map((t) => ({ digest: digest(t.token), namespace: t.namespace, access: t.access }))
  }

  /** Whether the server asks for a token at all. */
  get required(): boolean {
    return this.#write.length + this.#read.length + this.#scoped.length > 0
  }

  /** What the presented token allows, or nothing. */
  grant(presented: string | undefined): Grant | undefined {
    if (!this.required) return WRITE
    if (presented === undefined) return undefined
    const given = digest(presented)
    let write = false
    let read = false
    for (const token of this.#write) write = timingSafeEqual(given, token) || write
    for (const token of this.#read) read = timingSafeEqual(given, token) || read
    const namespaces = new Map<string, Access>()
    for (const token of this.#scoped) {
      if (timingSafeEqual(given, token.digest) && namespaces.get(token.namespace) !== 'write') namespaces.set(token.namespace, token.access)
    }
    if (write) return WRITE
    if (namespaces.size > 0) return read ? { server: 'read', namespaces } : { namespaces }
    return read ? READ : undefined
  }

  /** The access `grant` has to namespace `name`: the better of its server access and what it
   *  was given there. */
  static accessTo(grant: Grant, name: string): Access | undefined {
    const given = grant.namespaces?.get(name)
    return given === 'write' || grant.server === 'write' ? 'write' : (given ?? grant.server)
  }
}

const WRITE: Grant = { server: 'write' }
const READ: Grant = { server: 'read' }

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

/** The token a request presents, if any (never logged, never echoed). */
export function presentedToken(headers: IncomingHttpHeaders): string | undefined {
  const header = headers.authorization
  if (typeof header !== 'string') return undefined
  const space = header.indexOf(' ')
  if (space === -1) return undefined
  const scheme = header.slice(0, space).toLowerCase()
  const credentials = header.slice(space + 1).trim()
  if (scheme === 'bearer') return credentials
  if (scheme === 'basic') {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    return colon === -1 ? decoded : decoded.slice(colon + 1)
  }
  return undefined
}
