import { keysFromEnv } from '../crypto/keys.js'
import { envName, OPTION_ROWS, type EnvParser } from './option-table.js'
import { setPath, type OptionTree } from './option-paths.js'

/** One option read from the environment: the variable and its text, for error messages. */
export interface EnvValue {
  variable: string
  raw: string
}

export interface EnvLayer {
  options: OptionTree
  /** Option path → the variable it came from. */
  read: Map<string, EnvValue>
}

const TRUE = new Set(['true', '1', 'yes', 'on'])
const FALSE = new Set(['false', '0', 'no', 'off'])
/** A number as JSON (a config file) writes it, or as code does (`.9`, `5.`): the same value
 *  from every source (`1e3` in a file is 1000, so it is from LARDER_MAX_ENTRIES too). */
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i

/**
 * The options set in `env`: every row of the declaration table that may come from the
 * environment, read from its `LARDER_…` variable. An empty variable counts as unset (shells
 * and CI files often export `VAR=` to mean "nothing"). A value a parser does not recognise is
 * passed on as its text, so that resolveOptions, the one validator, refuses it and names the
 * variable (layered-options.ts).
 */
export function readEnv(env: Readonly<Record<string, string | undefined>>): EnvLayer {
  const options: OptionTree = {}
  const read = new Map<string, EnvValue>()
  for (const row of OPTION_ROWS) {
    if (row.env === false) continue
    const variable = envName(row.path)
    const raw = env[variable]
    if (raw === undefined || raw.trim() === '') continue
    if (row.env === 'keyring') {
      read.set(row.path, { variable, raw })
      // Keys and the active key's default come as one (checked here: an error must name the
      // variable, never echo a key); LARDER_ENCRYPTION_ACTIVE_KEY, its own row, may override.
      const { keys, activeKey } = keysFromEnv(env)!
      setPath(options, row.path, keys)
      setPath(options, 'encryption.activeKey', activeKey)
      read.set('encryption.activeKey', { variable, raw: activeKey })
      continue
    }
    // Under a group the environment turned off (LARDER_MAINTENANCE=false), a field's variable
    // is not in force: not recorded, so optionSources names the group's variable.
    if (setPath(options, row.path, parseEnv(row.env, raw.trim()))) read.set(row.path, { variable, raw })
  }
  return { options, read }
}

function parseEnv(parser: EnvParser, text: string): unknown {
  const lower = text.toLowerCase()
  switch (parser) {
    case 'text':
      return text
    case 'number':
      return NUMBER.test(text) ? Number(text) : text
    case 'boolean':
      return TRUE.has(lower) ? true : FALSE.has(lower) ? false : text
    case 'switch':
      return TRUE.has(lower) ? {} : FALSE.has(lower) ? false : text
    case 'keyring':
      return text // read whole by readEnv
    case 'list':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '')
  }
}
