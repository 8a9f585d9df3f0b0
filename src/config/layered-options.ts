import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { keyShaped } from '../crypto/keys.js'
import { LarderError, shownValue } from '../errors.js'
import { resolveOptions, shownUrl, withoutCredentials, type ResolvedOptions } from '../options.js'
import { displayFile, findConfigFile, loadConfigFile } from './config-file.js'
import { readEnv, type EnvValue } from './env-options.js'
import { OPTION_ROWS, rowOf } from './option-table.js'
import { getPath, isPlainObject, mergeOptions, type OptionTree } from './option-paths.js'
import { FRESH_TEMP_DIR, isProfileName, PROFILE_NAMES, PROFILES, type ProfileName } from './profiles.js'

/** Where an option's value came from (`cache.optionSources`): the call's options, a
 *  `LARDER_…` variable, the config file (its absolute path), the profile, `configure()`, or
 *  the default. */
export type OptionSource = 'default' | 'call' | 'configure' | `profile:${ProfileName}` | `env:${string}` | `file:${string}`

/** `Larder.open({ config })`: which sources besides the call's own options are read. */
export interface ConfigChoice {
  /** `LARDER_…` variables (and `LARDER_PROFILE`, then `NODE_ENV`, for the profile): `true`
   *  reads `process.env`; an object is read instead of it. Default true. */
  env?: boolean | Readonly<Record<string, string | undefined>>
  /** The config file: `true` finds `larder.config.json` or `larder.config.mjs` from `cwd` up
   *  to the filesystem root; a path reads that file; `false`, none. Default true. */
  file?: boolean | string
  /** Where the search for the file starts. Default `process.cwd()`. */
  cwd?: string
}

/** The options a cache opens with, and where each came from. */
export interface LayeredOptions {
  resolved: ResolvedOptions
  /** Every source merged, before defaults, with `dir` absolute: what configure() merges a
   *  partial over and validates again. */
  input: OptionTree
  sources: Record<string, OptionSource>
  profile: ProfileName | undefined
  configFile: string | undefined
  /** The `test` profile's fresh directory, which close() removes. */
  tempDir: string | undefined
}

interface Layer {
  source: OptionSource
  tree: OptionTree
}

const CHOICE_NAMES = new Set(['env', 'file', 'cwd'])

/**
 * Merges the sources of a cache's options, highest first: the call's options > the environment
 * > the config file > the profile > the defaults, one option at a time. The environment and
 * the file are read only when the call asks (`config: true` or `config: {…}`; the CLI and
 * `larder serve` always do): a library that changed behaviour because of a variable its host
 * application never meant for it would be a surprise, so an application opts in. A `profile`
 * named in the call always applies.
 *
 * The merged options go through resolveOptions, the one validator, once. A mistake is reported
 * with its source: `LARDER_MAX_SIZE="5 gigs": …`, `larder.config.json: maxSize: …`, so the
 * operator knows what to fix. Nothing is written before this returns (the `test` profile's
 * temp directory is made just before validation and removed if it fails).
 */
export async function layerOptions(options: unknown): Promise<LayeredOptions> {
  if (options === undefined) options = {}
  if (!isPlainObject(options)) {
    // Not a tree of options (a class instance, say): validated as given, by the one validator.
    return {
      resolved: resolveOptions(options),
      input: options as OptionTree,
      sources: defaultSources(),
      profile: undefined,
      configFile: undefined,
      tempDir: undefined,
    }
  }
  const { profile: callProfile, config, ...call } = options
  const choice = configChoice(config)
  const envVars = choice === undefined || choice.env === false ? undefined : typeof choice.env === 'object' ? choice.env : process.env
  const env = envVars === undefined ? undefined : readEnv(envVars)
  const envProfile = env?.options.profile
  delete env?.options.profile
  const file = choice === undefined || choice.file === false ? undefined : await readFile(choice)
  const fileProfile = file?.options.profile
  if (file !== undefined) delete file.options.profile

  const layers: Layer[] = [{ source: 'call', tree: call }]
  if (env !== undefined) layers.push({ source: `env:`, tree: env.options })
  if (file !== undefined) layers.push({ source: `file:${file.file}`, tree: file.options })
  const profile = pickProfile(
    [
      { value: callProfile, source: 'profile' },
      { value: envProfile, source: `${env?.read.get('profile')?.variable}=${JSON.stringify(env?.read.get('profile')?.raw)}` },
      { value: fileProfile, source: file === undefined ? '' : `${displayFile(file.file)}: profile` },
    ],
    envVars?.NODE_ENV,
  )
  if (profile !== undefined) layers.push({ source: `profile:${profile}`, tree: PROFILES[profile] })

  let merged: OptionTree = {}
  for (const layer of [...layers].reverse()) merged = mergeOptions(merged, layer.tree)
  let tempDir: string | undefined
  if (merged.dir === FRESH_TEMP_DIR) {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-test-'))
    merged.dir = tempDir
  }
  let resolved: ResolvedOptions
  try {
    resolved = resolveOptions(merged)
  } catch (error) {
    if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true })
    throw attributed(error, layers, env?.read)
  }
  const sources = defaultSources()
  for (const row of OPTION_ROWS) {
    const layer = layers.find((l) => decides(l.tree, row.path))
    if (layer !== undefined) sources[row.path] = layer.source === 'env:' ? `env:${envVariable(env!.read, row.path)}` : layer.source
  }
  if (profile !== undefined)
    sources.profile =
      callProfile !== undefined
        ? 'call'
        : envProfile !== undefined
          ? `env:LARDER_PROFILE`
          : fileProfile !== undefined
            ? `file:${file!.file}`
            : 'env:NODE_ENV'
  return { resolved, input: { ...merged, dir: resolved.dir }, sources, profile, configFile: file?.file, tempDir }
}

/** Whether a source's `tree` decides the option at `path`: it sets it, or turns a group above
 *  it off (`maintenance: false` leaves `maintenance.interval` at its default, whatever a source
 *  below sets; `true` keeps what is below, as the merge does). */
function decides(tree: OptionTree, path: string): boolean {
  if (getPath(tree, path) !== undefined) return true
  const parts = path.split('.')
  for (let depth = 1; depth < parts.length; depth++) {
    const above = getPath(tree, parts.slice(0, depth).join('.'))
    if (above !== undefined && above !== true && !isPlainObject(above)) return true
  }
  return false
}

/** The variable that set `path`, or (for a group: `memory`) one that set a field of it, or
 *  (for a field: `maintenance.interval`) the one that set its group. */
function envVariable(read: Map<string, EnvValue>, path: string): string {
  const own = read.get(path)
  if (own !== undefined) return own.variable
  for (const [field, value] of read) if (field.startsWith(path + '.') || path.startsWith(field + '.')) return value.variable
  return 'environment'
}

/** Every option at 'default'. */
function defaultSources(): Record<string, OptionSource> {
  return Object.fromEntries(OPTION_ROWS.map((row) => [row.path, 'default']))
}

function configChoice(config: unknown): ConfigChoice | undefined {
  if (config === undefined || config === false) return undefined
  if (config === true) return {}
  if (!isPlainObject(config)) throw invalidConfig('expected true, false or { env?, file?, cwd? }')
  for (const name of Object.keys(config)) if (!CHOICE_NAMES.has(name)) throw invalidConfig(`unknown option (known: env, file, cwd)`, name)
  const { env, file, cwd } = config
  if (env !== undefined && typeof env !== 'boolean' && !isPlainObject(env))
    throw invalidConfig('expected a boolean or an object of variables', 'env')
  // Read as process.env's are, as text: a number or boolean in place of one was a bare
  // TypeError from the reader. The value is not shown (it may be a key).
  if (isPlainObject(env))
    for (const [name, value] of Object.entries(env))
      if ((name.startsWith('LARDER_') || name === 'NODE_ENV') && value !== undefined && typeof value !== 'string')
        throw invalidConfig(
          `expected a string, as an environment variable holds, got a ${value === null ? 'null' : typeof value}`,
          `env.${name}`,
        )
  if (file !== undefined && typeof file !== 'boolean' && (typeof file !== 'string' || file === ''))
    throw invalidConfig('expected a boolean or a path', 'file')
  if (cwd !== undefined && (typeof cwd !== 'string' || cwd === '')) throw invalidConfig('expected a directory path', 'cwd')
  return config
}

async function readFile(choice: ConfigChoice): Promise<{ file: string; options: OptionTree } | undefined> {
  const file =
    typeof choice.file === 'string' ? path.resolve(choice.cwd ?? process.cwd(), choice.file) : findConfigFile(choice.cwd ?? process.cwd())
  return file === undefined ? undefined : loadConfigFile(file)
}

/** The profile: the first given of the call's, `LARDER_PROFILE`, the file's; else `NODE_ENV`
 *  when it names one (`NODE_ENV=staging` means no profile). */
function pickProfile(given: { value: unknown; source: string }[], nodeEnv: string | undefined): ProfileName | undefined {
  for (const { value, source } of given) {
    if (value === undefined) continue
    if (isProfileName(value)) return value
    const shown = shownValue(value, 'json')
    throw new LarderError(
      'ERR_INVALID_OPTION',
      `${source === 'profile' ? '' : `${source}: `}Invalid option "profile": expected one of ${PROFILE_NAMES.join(', ')}, got ${shown}`,
      { field: 'profile' },
    )
  }
  return isProfileName(nodeEnv) ? nodeEnv : undefined
}

/** A validation error, its message prefixed with the source of the value it is about. */
function attributed(error: unknown, layers: Layer[], envRead: Map<string, EnvValue> | undefined): unknown {
  if (!(error instanceof LarderError) || error.field === undefined) return error
  const field = error.field
  for (let at = field; at !== ''; at = at.includes('.') ? at.slice(0, at.lastIndexOf('.')) : '') {
    // `options`: an unknown name shaped like a key, which options.ts does not show (nor can
    // this), found in the source holding it.
    const layer =
      at === 'options' ? layers.find((l) => Object.keys(l.tree).some(keyShaped)) : layers.find((l) => getPath(l.tree, at) !== undefined)
    if (layer === undefined) continue
    if (layer.source === 'call') return error
    let prefix: string
    if (layer.source === 'env:') {
      const read = envRead?.get(at)
      const secret = rowOf(at)?.secret === true
      prefix =
        read === undefined
          ? `${envVariable(envRead!, at)}: ${at}`
          : `${read.variable}=${secret ? '(hidden)' : at.endsWith('.url') && typeof read.raw === 'string' ? JSON.stringify(shownUrl(read.raw)) : withoutCredentials(JSON.stringify(read.raw))}`
    } else if (layer.source.startsWith('file:')) prefix = `${displayFile(layer.source.slice('file:'.length))}: ${at}`
    else prefix = `${layer.source.replace(':', ' ')}: ${at}`
    return new LarderError(error.code, `${prefix}: ${error.message}`, { field, cause: error })
  }
  return error
}

function invalidConfig(message: string, field?: string): LarderError {
  const name = field === undefined ? 'config' : `config.${field}`
  return new LarderError('ERR_INVALID_OPTION', `Invalid option "${name}": ${message}`, { field: name })
}
