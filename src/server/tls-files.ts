import fs from 'node:fs'
import tls from 'node:tls'
import type { TlsFiles } from './options.js'

/** A certificate or key that cannot be used: the message names the file, never its bytes. */
export class TlsFilesError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TlsFilesError'
  }
}

/**
 * `larder serve --tls-cert/--tls-key`, read and checked as a pair: both PEM, the key the
 * certificate's (what a TLS context needs), so a mistake is said at start, or on a reload
 * (SIGHUP: a renewed certificate) before the server lets go of the pair it has.
 */
export function readTlsFiles(certFile: string, keyFile: string): TlsFiles {
  const read = (file: string, flag: string): Buffer => {
    try {
      return fs.readFileSync(file)
    } catch (error) {
      throw new TlsFilesError(`${flag}: ${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  const files = { cert: read(certFile, '--tls-cert'), key: read(keyFile, '--tls-key') }
  try {
    tls.createSecureContext(files)
  } catch (error) {
    // OpenSSL's reason ("no start line", "key values mismatch"), which quotes no key bytes.
    throw new TlsFilesError(`--tls-cert ${certFile} with --tls-key ${keyFile}: not a usable pair (${(error as Error).message})`)
  }
  return files
}
