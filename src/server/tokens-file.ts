import fs from 'node:fs'
import type { NamespaceToken } from './auth.js'

/** The namespaces a namespace token may be given for: each protocol's, as its routes name them. */
export const TOKEN_NAMESPACE = /^(api|ccache|bazel|nx|(nx|turbo):[A-Za-z0-9][A-Za-z0-9._-]{0,99})$/

/** What `TOKEN_NAMESPACE` accepts, in words (for error messages). */
export const TOKEN_NAMESPACES_SAID = 'api, ccache, bazel, nx, nx:<team>, turbo:<team>'

/** A tokens file larger than this is not a tokens file (it is read whole, at start and on reload). */
const MAX_BYTES = 1024 * 1024

/** The tokens a tokens file gives, in the shape of the command line's. */
export interface TokenSet {
  tokens: string[]
  readTokens: string[]
  namespaceTokens: NamespaceToken[]
}

/** A tokens file that cannot be used: the message names the file and the line, never its text
 *  (which holds a token, or is one). */
export class TokensFileError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TokensFileError'
  }
}

/**
 * Reads `larder serve --tokens-file`: the server's tokens kept out of its command line (which
 * other users of the machine can read in `ps`) and out of its environment, in a file a secret
 * store mounts (a Kubernetes or Docker secret, systemd's credentials). Read at start and again
 * on SIGHUP or when it changes, so tokens are added and revoked without a restart.
 *
 * One token a line; blank lines and lines starting with `#` are skipped:
 *
 *     write <token>                 a server token: reads and writes every namespace (a
 *                                   token shaped like a namespace is refused: a line error)
 *     read <token>                  a server read token
 *     write <namespace> <token>     reads and writes that namespace only
 *     read <namespace> <token>      only reads that namespace
 *
 * A file with no token is refused: an emptied file (truncated by an editor mid-save, a secret
 * not yet mounted) must not leave a server that asked for tokens open to anyone.
 */
export function readTokensFile(file: string): TokenSet {
  let text: string
  try {
    const size = fs.statSync(file).size
    if (size > MAX_BYTES) throw new TokensFileError(`${file}: larger than 1 MiB: not a tokens file`)
    text = fs.readFileSync(file, 'utf8')
  } catch (error) {
    if (error instanceof TokensFileError) throw error
    throw new TokensFileError(`${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  const set: TokenSet = { tokens: [], readTokens: [], namespaceTokens: [] }
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const fields = line.split(/\s+/)
    const access = fields[0]
    const wrong = (what: string): TokensFileError => new TokensFileError(`${file}, line ${i + 1}: ${what}`)
    if (access !== 'write' && access !== 'read') throw wrong('expected "write" or "read", then an optional namespace, then the token')
    if (fields.length === 2) {
      // "write turbo:web" is a namespace token whose token was left out, not a server token
      // whose secret is "turbo:web" (which opened every namespace to anyone reading the file).
      if (TOKEN_NAMESPACE.test(fields[1]!)) throw wrong(`a namespace with no token: expected "${access} <namespace> <token>"`)
      ;(access === 'write' ? set.tokens : set.readTokens).push(fields[1]!)
    } else if (fields.length === 3) {
      if (!TOKEN_NAMESPACE.test(fields[1]!)) throw wrong(`the namespace is one of ${TOKEN_NAMESPACES_SAID}`)
      set.namespaceTokens.push({ namespace: fields[1]!, token: fields[2]!, access })
    } else {
      throw wrong(`expected "${access} <token>" or "${access} <namespace> <token>" (a token has no spaces)`)
    }
  })
  if (set.tokens.length + set.readTokens.length + set.namespaceTokens.length === 0) {
    throw new TokensFileError(`${file}: holds no token (an empty tokens file would leave the server open)`)
  }
  return set
}

/** Whether `file` can be read by users other than its owner (said as a warning at start). */
export function readableByOthers(file: string): boolean {
  try {
    return (fs.statSync(file).mode & 0o044) !== 0
  } catch {
    return false
  }
}
