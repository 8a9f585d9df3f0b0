import path from 'node:path'
import { CliFailure, EXIT } from './context.js'
import type { NamespaceToken } from '../server/auth.js'
import type { TlsFiles } from '../server/options.js'
import { readableByOthers, readTokensFile, TOKEN_NAMESPACE, TOKEN_NAMESPACES_SAID, type TokenSet } from '../server/tokens-file.js'

/** The flags of `larder serve` this file reads. */
export interface CredentialFlags {
  token?: string[] | undefined
  readToken?: string[] | undefined
  namespaceToken?: string[] | undefined
  namespaceReadToken?: string[] | undefined
  tokensFile?: string | undefined
  tlsCert?: string | undefined
  tlsKey?: string | undefined
}

/**
 * What `larder serve` proves and is proven with: its tokens (flags, their environment
 * variables, and `--tokens-file`) and its TLS certificate and key. The flags' tokens are fixed;
 * the files are read at start and again on a reload (SIGHUP, the tokens file changed), each
 * read whole or refused (TokensFileError, TlsFilesError), so a bad file changes nothing.
 */
export class ServeCredentials {
  readonly tokensFile: string | undefined
  readonly tlsFiles: { cert: string; key: string } | undefined
  readonly #given: TokenSet

  constructor(flags: CredentialFlags) {
    this.#given = {
      tokens: tokensFrom(flags.token, 'LARDER_TOKEN'),
      readTokens: tokensFrom(flags.readToken, 'LARDER_READ_TOKEN'),
      namespaceTokens: [
        ...namespaceTokensFrom(flags.namespaceToken, 'LARDER_NAMESPACE_TOKENS', 'write'),
        ...namespaceTokensFrom(flags.namespaceReadToken, 'LARDER_NAMESPACE_READ_TOKENS', 'read'),
      ],
    }
    this.tokensFile = flags.tokensFile === undefined ? undefined : path.resolve(flags.tokensFile)
    if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined))
      throw new CliFailure('--tls-cert and --tls-key go together: give both, or neither for plain HTTP', EXIT.usage)
    this.tlsFiles = flags.tlsCert === undefined ? undefined : { cert: path.resolve(flags.tlsCert), key: path.resolve(flags.tlsKey!) }
  }

  /** The flags' tokens with the tokens file's, read now (throws TokensFileError). */
  tokens(): TokenSet {
    if (this.tokensFile === undefined) return this.#given
    const read = readTokensFile(this.tokensFile)
    return {
      tokens: [...this.#given.tokens, ...read.tokens],
      readTokens: [...this.#given.readTokens, ...read.readTokens],
      namespaceTokens: [...this.#given.namespaceTokens, ...read.namespaceTokens],
    }
  }

  /** The certificate and key, read now (throws TlsFilesError); undefined: plain HTTP. Loaded
   *  on use: other commands never pay for node:tls. */
  async tls(): Promise<TlsFiles | undefined> {
    if (this.tlsFiles === undefined) return undefined
    const { readTlsFiles } = await import('../server/tls-files.js')
    return readTlsFiles(this.tlsFiles.cert, this.tlsFiles.key)
  }

  /** The start's lines about the files: each named, and a warning for one others can read. */
  lines(): string[] {
    const lines: string[] = []
    const warn = (file: string): void => {
      if (readableByOthers(file)) lines.push(`warning: ${file} can be read by other users (chmod 600 it)`)
    }
    if (this.tokensFile !== undefined) {
      lines.push(`tokens ${this.tokensFile}`)
      warn(this.tokensFile)
    }
    if (this.tlsFiles !== undefined) {
      lines.push(`tls ${this.tlsFiles.cert}`)
      warn(this.tlsFiles.key)
    }
    return lines
  }
}

/** Tokens from the repeatable flag, else the variable's comma-separated list. */
function tokensFrom(flag: string[] | undefined, variable: string): string[] {
  const raw = flag ?? (process.env[variable] ?? '').split(',')
  const tokens = raw.map((t) => t.trim()).filter((t) => t !== '')
  if (flag !== undefined && tokens.length !== flag.length)
    throw new CliFailure('--token and --read-token take a non-empty token', EXIT.usage)
  return tokens
}

/** `NAMESPACE=TOKEN` pairs from a repeated flag or a comma-separated variable. A mistake is
 *  named by its place, never by its text (which holds a token, or is one). */
function namespaceTokensFrom(flag: string[] | undefined, variable: string, access: 'read' | 'write'): NamespaceToken[] {
  const name = access === 'write' ? '--namespace-token' : '--namespace-read-token'
  const raw = flag ?? (process.env[variable] ?? '').split(',').filter((t) => t.trim() !== '')
  return raw.map((pair, i) => {
    const equals = pair.indexOf('=')
    const namespace = equals < 0 ? '' : pair.slice(0, equals).trim()
    const token = equals < 0 ? '' : pair.slice(equals + 1).trim()
    if (!TOKEN_NAMESPACE.test(namespace) || token === '') {
      throw new CliFailure(
        `${flag === undefined ? variable : name} (value ${i + 1}): expected NAMESPACE=TOKEN, NAMESPACE one of ${TOKEN_NAMESPACES_SAID}`,
        EXIT.usage,
      )
    }
    return { namespace, token, access }
  })
}
