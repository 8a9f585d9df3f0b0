import { InvalidArgumentError, Option, type Command } from 'commander'
import { isLarderError } from '../errors.js'
import { MAX_TIMER_MS, parseDuration, parseSize } from '../options.js'
import { validateTags } from '../validate.js'
import { CliFailure, EXIT } from './context.js'
import { FALSE_WORDS, TRUE_WORDS } from './json-mode.js'

/**
 * Parsers for option values, in the form commander takes. A bad value throws commander's
 * InvalidArgumentError, which it reports as a one-line usage error naming the option
 * (exit code 2), never as a stack trace. Sizes and durations use the library's own parsers,
 * so `larder prune --max-size 1.5GB` accepts exactly what `maxSize: '1.5GB'` does.
 */

export function sizeArgument(value: string): number {
  return rethrow(() => parseSize(value, 'size'), `not a size: use bytes or a size such as 500MB, 1.5GB, 1GiB`)
}

export function durationArgument(value: string): number {
  return rethrow(() => parseDuration(value, 'duration'), `not a duration: use milliseconds or a duration such as 90s, 15m, 7d`)
}

/** A duration that becomes a timer (`--idle-timeout`): at most 24 days, as timerDuration. */
export function timerDurationArgument(value: string): number {
  const ms = durationArgument(value)
  if (ms > MAX_TIMER_MS) throw new InvalidArgumentError(`at most 24 days (Node's timers hold no longer)`)
  return ms
}

/** `--dir`: an empty path (an unset variable in a script, `--dir "$CACHE"`) is a mistake, not
 *  the current directory, where `set` and `serve` made a cache; as the config file's `dir: ""`. */
export function dirArgument(value: string): string {
  if (value === '') throw new InvalidArgumentError('an empty path: say --dir . for the current directory')
  return value
}

export function countArgument(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('not a whole number')
  return n
}

/** For repeatable options (`--tag a --tag b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

export function choice<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`choose one of ${choices.join(', ')}`)
    return value as T
  }
}

/** `--tag`, repeatable: each checked as the library checks a tag (validateTags), so a bad one
 *  is named by the flag the user typed (`--tag ""`), not by the library's field (`tags[0]`); its
 *  code stays the library's (ERR_INVALID_VALUE, exit 2), and nothing is opened or written. */
export function collectTag(value: string, previous: string[] | undefined): string[] {
  try {
    validateTags([value], 'tag')
  } catch (error) {
    if (!isLarderError(error)) throw error
    const reason = error.message.replace(/^Invalid tag\[0\]: /, '')
    throw new CliFailure(`--tag ${JSON.stringify(value)}: ${reason}`, EXIT.usage, error.code)
  }
  return collect(value, previous)
}

function rethrow<T>(parse: () => T, message: string): T {
  try {
    return parse()
  } catch (error) {
    if (isLarderError(error)) throw new InvalidArgumentError(message)
    throw error
  }
}

/** A boolean from an environment variable: 1/true/yes/on or 0/false/no/off, any case;
 *  anything else is a usage error naming the variable. */
export function parseBoolean(raw: string, variable: string): boolean {
  const value = raw.trim().toLowerCase()
  if (TRUE_WORDS.has(value)) return true
  if (FALSE_WORDS.has(value)) return false
  throw new CliFailure(`${variable}=${JSON.stringify(raw)}: expected 1, true, yes or on, or 0, false, no or off`, EXIT.usage, 'ERR_USAGE')
}

/** Flags whose value may come from an environment variable, by the variable's name. */
const BOOLEAN_ENV = new WeakMap<Option, string>()

/**
 * A flag that may also be set by an environment variable, and its negation (`--no-json` for
 * `--json`): a variable left set (`LARDER_JSON=1` exported in a CI file or a shell profile) can
 * be switched off for one run, as every other option's variable can be overridden by its flag.
 * The last of the two given wins; given neither, the variable decides (applyBooleanEnv), then
 * `defaultValue`. commander's own `.env()` turns a flag on whenever its variable is set, to
 * anything ("0" and "false" included), so these are read by `applyBooleanEnv` instead, with
 * `parseBoolean`.
 */
export function booleanOptions(flags: string, description: string, variable: string, defaultValue?: boolean): [Option, Option] {
  const option = new Option(flags, `${description} (env: ${variable}, 1/0, true/false, yes/no or on/off)`)
  if (defaultValue !== undefined) option.default(defaultValue)
  BOOLEAN_ENV.set(option, variable)
  const long = option.long!.replace(/^--/, '')
  return [option, new Option(`--no-${long}`, `the opposite of --${long}, whatever ${variable} says`)]
}

/** Sets the flags of `command` and its parents that the command line left unset from their
 *  environment variables (see booleanOptions). */
export function applyBooleanEnv(command: Command): void {
  for (let c: Command | null = command; c !== null; c = c.parent) {
    for (const option of c.options) {
      const variable = BOOLEAN_ENV.get(option)
      const raw = variable === undefined ? undefined : process.env[variable]
      if (raw === undefined || c.getOptionValueSource(option.attributeName()) === 'cli') continue
      c.setOptionValueWithSource(option.attributeName(), parseBoolean(raw, variable!), 'env')
    }
  }
}
