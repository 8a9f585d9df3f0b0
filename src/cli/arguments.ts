import { InvalidArgumentError } from 'commander'
import { isLarderError } from '../errors.js'
import { parseDuration, parseSize } from '../options.js'

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

function rethrow<T>(parse: () => T, message: string): T {
  try {
    return parse()
  } catch (error) {
    if (isLarderError(error)) throw new InvalidArgumentError(message)
    throw error
  }
}
