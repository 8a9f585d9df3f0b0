import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { LarderError } from '../errors.js'
import { isPlainObject, type OptionTree } from './option-paths.js'

/** The names a config file may have, in the order they are looked for in one directory. */
export const CONFIG_FILE_NAMES = ['larder.config.json', 'larder.config.mjs'] as const

export interface ConfigFile {
  /** Absolute path of the file. */
  file: string
  options: OptionTree
}

/**
 * The config file for a process started in `from`: the first directory, from `from` up to the
 * filesystem root, holding `larder.config.json` or `larder.config.mjs` (both in one directory
 * is refused: which one is meant is not ours to guess). Undefined when there is none.
 *
 * A file found this way was not named by anyone: it is used only if others could not have put
 * it there (unsafeConfigFile), else ERR_UNSAFE_DIR. A `.mjs` is code that runs as whoever
 * runs larder, and a JSON file chooses the directory a command prunes: a `larder.config.mjs`
 * planted in /tmp by another user ran as root when root ran `larder stats` below /tmp.
 */
export function findConfigFile(from: string): string | undefined {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    const found = CONFIG_FILE_NAMES.map((name) => path.join(dir, name)).filter(isFile)
    if (found.length > 1) throw fileError(found[0]!, `${CONFIG_FILE_NAMES.join(' and ')} are both in ${dir}: keep one`)
    if (found.length === 1) {
      const problem = unsafeConfigFile(found[0]!)
      if (problem !== undefined)
        throw new LarderError(
          'ERR_UNSAFE_DIR',
          `${displayFile(found[0]!)}: not used: ${problem}. A config file found by searching up from the working directory must be owned by you or root, in a directory not everyone can change: move it, or fix its owner or mode (an application may also name its file: config: { file })`,
          { field: 'config' },
        )
      return found[0]
    }
    if (path.dirname(dir) === dir) return undefined
  }
}

/**
 * Why others could have written `file` or put it in place, or undefined: the file or its
 * directory owned by a user other than this process's or root, the file writable by anyone,
 * or its directory writable by anyone without the sticky bit (with it, as /tmp, only a file's
 * owner can replace the file: the owner rule covers that). Group write is allowed, as git's
 * `safe.directory` allows it: a user's own group, under the umask 002 many systems give users,
 * writes every project file so. Not judged where there are no uids (Windows).
 */
export function unsafeConfigFile(file: string): string | undefined {
  const uid = process.getuid?.()
  if (uid === undefined) return undefined
  const trusted = (owner: number): boolean => owner === uid || owner === 0
  const stat = fs.statSync(file)
  if (!trusted(stat.uid)) return `it is owned by uid ${stat.uid}`
  if ((stat.mode & 0o002) !== 0) return 'it is writable by anyone'
  const dir = fs.statSync(path.dirname(file))
  if (!trusted(dir.uid)) return `its directory is owned by uid ${dir.uid}`
  if ((dir.mode & 0o002) !== 0 && (dir.mode & 0o1000) === 0) return 'its directory is writable by anyone'
  return undefined
}

/**
 * Reads a config file: JSON, or an ES module whose default export is the options or a function
 * returning them (possibly a promise), for what JSON cannot hold (a custom serializer). A
 * relative `dir` is taken from the file's directory, not the working directory, so a file
 * means the same wherever the process starts. Errors are `ERR_INVALID_OPTION` naming the file.
 */
export async function loadConfigFile(file: string): Promise<ConfigFile> {
  const absolute = path.resolve(file)
  let loaded: unknown
  if (absolute.endsWith('.mjs') || absolute.endsWith('.js')) {
    let exported: unknown
    try {
      // A query that changes with the file, so a reload (larder serve) sees the new version.
      const version = fs.statSync(absolute).mtimeMs
      const module = (await import(`${pathToFileURL(absolute).href}?v=${version}`)) as { default?: unknown }
      exported = module.default
    } catch (error) {
      throw fileError(absolute, `cannot be loaded: ${(error as Error).message}`, error)
    }
    try {
      loaded = typeof exported === 'function' ? await (exported as () => unknown)() : exported
    } catch (error) {
      // As a module that throws as it loads: named, not the function's bare Error.
      throw fileError(absolute, `its default export threw: ${(error as Error).message}`, error)
    }
  } else {
    let text: string
    try {
      text = fs.readFileSync(absolute, 'utf8')
    } catch (error) {
      throw fileError(absolute, `cannot be read: ${(error as Error).message}`, error)
    }
    try {
      // A byte order mark (Windows editors write one) is not JSON, but says nothing either.
      loaded = JSON.parse(text.startsWith('\uFEFF') ? text.slice(1) : text) as unknown
    } catch (error) {
      throw fileError(absolute, `is not JSON${jsonErrorPlace(text, error)}`)
    }
    const exposed = exposedKeys(absolute, loaded)
    if (exposed !== undefined) {
      throw new LarderError(
        'ERR_UNSAFE_DIR',
        `${displayFile(absolute)}: not used: it holds encryption keys and ${exposed}: make it readable by its owner only (chmod 600), or give the keys in LARDER_ENCRYPTION_KEYS`,
        { field: 'config' },
      )
    }
  }
  if (!isPlainObject(loaded))
    throw fileError(absolute, 'expected an object of options (for .mjs: its default export, or what that function returns)')
  const options = { ...loaded }
  if (typeof options.dir === 'string' && options.dir !== '') options.dir = path.resolve(path.dirname(absolute), options.dir)
  return { file: absolute, options }
}

/**
 * Why the encryption keys a JSON config file holds are exposed, or undefined: the file readable
 * by its group or by anyone. Anyone who can read a key can read every entry sealed under it,
 * and forge entries, so such a file is refused, as ssh refuses a private key others can read.
 * (A `.mjs` is not judged: its keys may come from the environment, which its text only names.)
 */
function exposedKeys(file: string, loaded: unknown): string | undefined {
  if (process.getuid === undefined || !isPlainObject(loaded)) return undefined
  const encryption = loaded.encryption
  if (!isPlainObject(encryption) || encryption.keys === undefined) return undefined
  const mode = fs.statSync(file).mode & 0o777
  if ((mode & 0o044) === 0) return undefined
  return `is readable by ${(mode & 0o004) !== 0 ? 'anyone' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')})`
}

/** How a file is named in messages: relative to the working directory when below it. */
export function displayFile(file: string): string {
  const relative = path.relative(process.cwd(), file)
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file
}

function fileError(file: string, message: string, cause?: unknown): LarderError {
  return new LarderError('ERR_INVALID_OPTION', `${displayFile(file)}: ${message}`, { field: 'config', cause })
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** Where JSON.parse stopped, as line and column, or nothing: never its message, which quotes
 *  the text around the error (a key in the file, say). */
function jsonErrorPlace(text: string, error: unknown): string {
  const at = /position (\d+)/.exec((error as Error).message)
  if (at === null) return ' (a syntax error)'
  const before = text.slice(0, Number(at[1])).split('\n')
  return ` (a syntax error at line ${before.length}, column ${before.at(-1)!.length + 1})`
}
