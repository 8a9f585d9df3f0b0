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
 */
export function findConfigFile(from: string): string | undefined {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    const found = CONFIG_FILE_NAMES.map((name) => path.join(dir, name)).filter(isFile)
    if (found.length > 1) throw fileError(found[0]!, `${CONFIG_FILE_NAMES.join(' and ')} are both in ${dir}: keep one`)
    if (found.length === 1) return found[0]
    if (path.dirname(dir) === dir) return undefined
  }
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
    loaded = typeof exported === 'function' ? await (exported as () => unknown)() : exported
  } else {
    let text: string
    try {
      text = fs.readFileSync(absolute, 'utf8')
    } catch (error) {
      throw fileError(absolute, `cannot be read: ${(error as Error).message}`, error)
    }
    try {
      loaded = JSON.parse(text) as unknown
    } catch (error) {
      throw fileError(absolute, `is not JSON${jsonErrorPlace(text, error)}`)
    }
  }
  if (!isPlainObject(loaded))
    throw fileError(absolute, 'expected an object of options (for .mjs: its default export, or what that function returns)')
  const options = { ...loaded }
  if (typeof options.dir === 'string' && options.dir !== '') options.dir = path.resolve(path.dirname(absolute), options.dir)
  return { file: absolute, options }
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
